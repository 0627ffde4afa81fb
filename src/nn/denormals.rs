//! Denormal (subnormal) floats flushed to zero while training and evaluating.
//!
//! Adam's first moment decays by a factor 0.9 per step wherever a gradient is exactly zero (a
//! unit that never fires), and within a few hundred steps it passes through the subnormal
//! range, below 1.2e-38, on its way to zero. Intel processors compute with subnormal numbers
//! through a microcode assist of about a hundred cycles per instruction, which made Adam's
//! step much slower (BENCHMARKS.md). So training and
//! evaluation run with the processor's flush-to-zero and denormals-are-zero modes on, as
//! TensorFlow does by default and PyTorch does after `torch.set_flush_denormal(True)`.
//!
//! What that changes is below float32's precision: a value under 1.2e-38 reads and is written
//! as zero. An update of step size 1e-3 times such a moment is some twenty orders of magnitude
//! below one unit in the last place of any weight: after 3 epochs of the study's model with
//! Adam (2 with batch norm and dropout), the weights and metrics were the same bit
//! for bit with and without flushing, and the optimizer state, where a fifth of the first
//! moments of conv3 and fc1 were subnormal, differed by under 1.2e-37. Every thread runs in
//! the same mode, so results stay the same whatever the number of threads.
//!
//! The modes are per-thread processor state: [`FlushDenormals`] sets them on the calling
//! thread and on every thread of the current rayon pool, and puts back each thread's previous
//! state when dropped. Inside a team ([`crate::parallel::with_team`]), whose helpers hold the
//! pool's threads, it sets the calling thread's only: the helpers run with the state the
//! team's threads had when it formed. So it does where the calling thread runs its regions
//! alone ([`crate::parallel::serially`]). On processors other than x86-64 it does nothing.

/// While alive, subnormal floats are flushed to zero on the calling thread and on every
/// thread of the current rayon pool.
pub struct FlushDenormals {
    /// The calling thread's previous control word, and each pool thread's by index (none
    /// inside a team).
    #[cfg(target_arch = "x86_64")]
    previous: (u32, Option<Vec<u32>>),
}

#[cfg(target_arch = "x86_64")]
mod mxcsr {
    /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) flags.
    pub const FLUSH: u32 = 1 << 15 | 1 << 6;

    #[allow(deprecated)] // the replacement is inline assembly doing the same
    pub fn get() -> u32 {
        // SAFETY: reading MXCSR has no effect (SSE is part of x86-64).
        unsafe { std::arch::x86_64::_mm_getcsr() }
    }

    #[allow(deprecated)]
    pub fn set(word: u32) {
        // SAFETY: only the flush flags differ from a word read from MXCSR; they change how
        // subnormal floats are treated, nothing the compiler relies on.
        unsafe { std::arch::x86_64::_mm_setcsr(word) }
    }
}

impl FlushDenormals {
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let caller = mxcsr::get();
            mxcsr::set(caller | mxcsr::FLUSH);
            let alone = crate::parallel::in_team() || crate::parallel::inline();
            let pool = (!alone).then(|| {
                rayon::broadcast(|_| {
                    let before = mxcsr::get();
                    mxcsr::set(before | mxcsr::FLUSH);
                    before
                })
            });
            FlushDenormals {
                previous: (caller, pool),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {}
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        {
            let (caller, pool) = &self.previous;
            // The pool first: the caller may be one of its threads, and its own word, read
            // before any was set, is the one to keep.
            if let Some(pool) = pool {
                rayon::broadcast(|ctx| {
                    if let Some(&word) = pool.get(ctx.index()) {
                        mxcsr::set(word);
                    }
                });
            }
            mxcsr::set(*caller);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnormal_product() -> f32 {
        let tiny = std::hint::black_box(1e-30f32);
        tiny * std::hint::black_box(1e-10f32)
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn flushes_on_every_thread_and_restores() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        pool.install(|| {
            assert!(subnormal_product() > 0.0);
            {
                let _flush = FlushDenormals::new();
                assert_eq!(subnormal_product(), 0.0);
                let on_threads = rayon::broadcast(|_| subnormal_product());
                assert_eq!(on_threads, vec![0.0, 0.0]);
            }
            assert!(subnormal_product() > 0.0);
            let on_threads = rayon::broadcast(|_| subnormal_product());
            assert!(on_threads.iter().all(|&v| v > 0.0));
        });
        // A thread outside any pool is restored too.
        {
            let _flush = FlushDenormals::new();
            assert_eq!(subnormal_product(), 0.0);
        }
        assert!(subnormal_product() > 0.0);
    }
}
