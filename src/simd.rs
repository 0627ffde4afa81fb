//! Which vector instructions the engine uses, decided once per process, and the one piece of
//! machinery that compiles plain code for them.
//!
//! The hand-written kernels ([`crate::nn::kernels`]) and the loops compiled wide
//! (`avx512_variant!`) run where the processor has AVX-512F; everywhere else, and with
//! `LENET_SIMD=portable`, the portable loops run. Both give the same bits: every kernel sums
//! in the order its portable loop does.

/// Whether the AVX-512 paths run: the processor has AVX-512F and the environment variable
/// `LENET_SIMD` is not `portable` (which selects the portable paths everywhere, so they can be
/// tested on any machine). Checked once per process; always false off x86-64.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::env::var("LENET_SIMD").map_or(true, |v| v != "portable")
                && is_x86_feature_detected!("avx512f")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Lanes of an AVX-512 float32 vector.
#[cfg(target_arch = "x86_64")]
pub const LANES: usize = 16;

/// Mask of the lanes of vector `v` that fall inside `cols` columns.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn lane_mask(cols: usize, v: usize) -> std::arch::x86_64::__mmask16 {
    let left = cols.saturating_sub(v * LANES);
    if left >= LANES {
        0xFFFF
    } else {
        ((1u32 << left) - 1) as std::arch::x86_64::__mmask16
    }
}

/// Defines `fn $name(args) -> ret` that calls the `#[inline(always)]` function `$body`
/// compiled for AVX-512 when the processor has it ([`available`]), and as it is otherwise:
/// plain loops written for the compiler to vectorise then run 16 lanes wide instead of 4. The
/// compiler keeps the order of floating-point operations, so both give the same results.
macro_rules! avx512_variant {
    ($(#[$meta:meta])* $vis:vis fn $name:ident = $body:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if $crate::simd::available() {
                #[target_feature(enable = "avx512f")]
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                // SAFETY: AVX-512F is present (checked by `available`).
                return unsafe { wide($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use avx512_variant;
