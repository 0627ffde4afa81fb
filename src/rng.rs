//! A small, seedable random number generator: xoshiro256++ seeded through SplitMix64.
//!
//! lenet draws from one independent stream per purpose (initialisation, shuffling, dropout,
//! the validation split, the distortions), so that changing how one of them is used never
//! shifts the others.
//! Streams are derived from the run's seed and a purpose label with [`Rng::stream`].
//!
//! reference: Blackman & Vigna, "Scrambled linear pseudorandom number generators" (2021).

/// xoshiro256++: 256 bits of state, period 2^256 - 1, fast and statistically strong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

/// One step of SplitMix64: advances `state` and returns a well-mixed 64-bit value (the
/// seeding generator of xoshiro's authors).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a random stream is for; each purpose gets its own stream from the same seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Init,
    /// The order of the training images, shuffled anew every pass.
    Order,
    Dropout,
    Split,
    /// The training images' distortions (`--distort`).
    Distort,
}

/// One of a run's random streams that a study can vary alone ([`Purpose`]'s training ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stream {
    /// The initial weights.
    Init,
    /// The order of the training images.
    Order,
    /// Dropout's masks.
    Dropout,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::Init, Stream::Order, Stream::Dropout];

    /// The purpose whose generator this stream is.
    pub fn purpose(self) -> Purpose {
        match self {
            Stream::Init => Purpose::Init,
            Stream::Order => Purpose::Order,
            Stream::Dropout => Purpose::Dropout,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Init => "init",
            Stream::Order => "order",
            Stream::Dropout => "dropout",
        }
    }
}

impl Purpose {
    fn tag(self) -> u64 {
        match self {
            Purpose::Init => 0x1A17,
            Purpose::Order => 0x5F0F,
            Purpose::Dropout => 0xD809,
            Purpose::Split => 0x5B17,
            Purpose::Distort => 0xD157,
        }
    }
}

impl Rng {
    /// A generator whose whole state is derived from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    /// The stream for one purpose of the run seeded by `seed`.
    pub fn stream(seed: u64, purpose: Purpose) -> Self {
        let mut sm = purpose.tag();
        Rng::new(seed ^ splitmix64(&mut sm))
    }

    /// The raw state, for checkpoints.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A generator restored from [`Rng::state`].
    pub fn from_state(s: [u64; 4]) -> Self {
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[0]
            .wrapping_add(self.s[3])
            .rotate_left(23)
            .wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 24 random bits, the resolution of an f32.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [lo, hi).
    pub fn uniform_range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform_f32()
    }

    /// Uniform integer in [0, n), without modulo bias (Lemire's method).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        let n = n as u64;
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as usize;
            }
        }
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::stream(7, Purpose::Init);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::stream(7, Purpose::Init);
        let b: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        let mut other = Rng::stream(7, Purpose::Order);
        assert_ne!(a[0], other.next_u64());
    }

    #[test]
    fn uniform_is_in_range_with_the_right_mean() {
        let mut r = Rng::new(1);
        let n = 100_000;
        let mut sum = 0.0f64;
        for _ in 0..n {
            let u = r.uniform_f32();
            assert!((0.0..1.0).contains(&u));
            sum += u as f64;
        }
        assert!((sum / n as f64 - 0.5).abs() < 0.01);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut r = Rng::new(3);
        let mut v: Vec<usize> = (0..1000).collect();
        r.shuffle(&mut v);
        assert_ne!(v, (0..1000).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn below_covers_its_range() {
        let mut r = Rng::new(5);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[r.below(7)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
