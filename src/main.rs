use std::process::ExitCode;

/// Large buffers on cache lines: the kernels' loads then never straddle two.
#[global_allocator]
static ALLOC: lenet::alloc::CacheAligned = lenet::alloc::CacheAligned;

fn main() -> ExitCode {
    match lenet::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", lenet::cli::error_text(&e));
            ExitCode::FAILURE
        }
    }
}
