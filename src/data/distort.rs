//! The paper's distortions (LeCun et al. 1998, the results on MNIST, with examples in its
//! Fig. 7): each training image, at every pass, goes through a random planar affine
//! transformation — horizontal and vertical translation, scaling, squeezing (horizontal
//! compression with vertical elongation, or the reverse) and horizontal shearing. The passage
//! gives the kinds, not their ranges; lenet draws each parameter uniformly from
//! [`RANGES`]: shifts of up to 2 pixels, scaling by 0.9 to 1.1, squeezing by 0.9 to 1.1 and
//! shears of up to 0.15 (a pixel's horizontal shift per row from the centre), which keep a
//! 20 x 20 digit inside its 28 x 28 frame.
//!
//! Each image's transformation comes from a generator seeded by the run's distortion seed,
//! the pass and the image's index alone, so it does not depend on the batch, the threads or
//! an interruption. The image is resampled bilinearly (background outside the frame) about
//! its centre; the identity gives the image back exactly.

use crate::rng::{Purpose, Rng, splitmix64};

/// The ranges each parameter is drawn from: (translation in pixels, scale, squeeze, shear).
pub const RANGES: Ranges = Ranges {
    shift: 2.0,
    scale: (0.9, 1.1),
    squeeze: (0.9, 1.1),
    shear: 0.15,
};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranges {
    /// Largest horizontal and vertical translation, in pixels.
    pub shift: f32,
    pub scale: (f32, f32),
    /// Horizontal factor s, vertical 1/s.
    pub squeeze: (f32, f32),
    /// Largest horizontal shift per row.
    pub shear: f32,
}

/// One image's distortion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distortion {
    pub dx: f32,
    pub dy: f32,
    pub scale: f32,
    pub squeeze: f32,
    pub shear: f32,
}

impl Distortion {
    pub const IDENTITY: Distortion = Distortion {
        dx: 0.0,
        dy: 0.0,
        scale: 1.0,
        squeeze: 1.0,
        shear: 0.0,
    };

    /// The distortion of image `index` at pass `epoch` of a run whose distortion seed is
    /// `seed`.
    pub fn draw(seed: u64, epoch: usize, index: usize) -> Distortion {
        let mut key = seed ^ splitmix64(&mut (epoch as u64).wrapping_mul(0x9E37_79B9));
        key ^= splitmix64(&mut (index as u64).wrapping_add(0xD157_0000));
        let mut rng = Rng::stream(key, Purpose::Distort);
        let r = RANGES;
        let mut between = |lo: f32, hi: f32| rng.uniform_range(lo, hi);
        Distortion {
            dx: between(-r.shift, r.shift),
            dy: between(-r.shift, r.shift),
            scale: between(r.scale.0, r.scale.1),
            squeeze: between(r.squeeze.0, r.squeeze.1),
            shear: between(-r.shear, r.shear),
        }
    }

    /// Where output pixel (row, col) reads from in the source, for an image of `rows` x `cols`
    /// transformed about its centre: the inverse of x' = scale squeeze (x + shear y) + dx,
    /// y' = scale / squeeze y + dy (x, y from the centre).
    fn source(&self, row: usize, col: usize, rows: usize, cols: usize) -> (f32, f32) {
        let (cy, cx) = ((rows as f32 - 1.0) / 2.0, (cols as f32 - 1.0) / 2.0);
        let (sx, sy) = (self.scale * self.squeeze, self.scale / self.squeeze);
        let y = (row as f32 - cy - self.dy) / sy;
        let x = (col as f32 - cx - self.dx) / sx - self.shear * y;
        (y + cy, x + cx)
    }

    /// `src` (`rows` x `cols` bytes) distorted, as values 0..=255, into `out`; the identity
    /// copies the bytes exactly.
    pub fn apply(&self, src: &[u8], rows: usize, cols: usize, out: &mut [f32]) {
        let at = |r: isize, c: isize| -> f32 {
            if r < 0 || c < 0 || r >= rows as isize || c >= cols as isize {
                0.0
            } else {
                src[r as usize * cols + c as usize] as f32
            }
        };
        for row in 0..rows {
            for col in 0..cols {
                let (y, x) = self.source(row, col, rows, cols);
                let (y0, x0) = (y.floor(), x.floor());
                let (fy, fx) = (y - y0, x - x0);
                let (r, c) = (y0 as isize, x0 as isize);
                let top = at(r, c) + fx * (at(r, c + 1) - at(r, c));
                let bottom = at(r + 1, c) + fx * (at(r + 1, c + 1) - at(r + 1, c));
                out[row * cols + col] = top + fy * (bottom - top);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Vec<u8> {
        (0..28 * 28).map(|i| (i * 37 % 251) as u8).collect()
    }

    #[test]
    fn the_identity_gives_the_image_back_exactly() {
        let src = image();
        let mut out = vec![0.0; 28 * 28];
        Distortion::IDENTITY.apply(&src, 28, 28, &mut out);
        assert!(out.iter().zip(&src).all(|(o, &s)| *o == s as f32));
    }

    #[test]
    fn a_shift_moves_pixels_where_it_should() {
        let src = image();
        let mut out = vec![0.0; 28 * 28];
        let shift = Distortion {
            dx: 2.0,
            dy: -1.0,
            ..Distortion::IDENTITY
        };
        shift.apply(&src, 28, 28, &mut out);
        // Output (r, c) shows source (r + 1, c - 2); what comes from outside is background.
        for r in 0..28 {
            for c in 0..28 {
                let want = if r + 1 < 28 && c >= 2 {
                    src[(r + 1) * 28 + c - 2] as f32
                } else {
                    0.0
                };
                assert_eq!(out[r * 28 + c], want, "({r}, {c})");
            }
        }
    }

    #[test]
    fn draws_stay_in_their_ranges_and_depend_on_the_pass_and_the_image() {
        let d = Distortion::draw(7, 3, 11);
        assert_eq!(d, Distortion::draw(7, 3, 11));
        assert_ne!(d, Distortion::draw(7, 4, 11));
        assert_ne!(d, Distortion::draw(7, 3, 12));
        for i in 0..1000 {
            let d = Distortion::draw(1, 0, i);
            assert!(d.dx.abs() <= 2.0 && d.dy.abs() <= 2.0 && d.shear.abs() <= 0.15);
            assert!((0.9..=1.1).contains(&d.scale) && (0.9..=1.1).contains(&d.squeeze));
        }
    }
}
