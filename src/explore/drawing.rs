//! A drawing made into an MNIST digit, as MNIST's own digits were made (LeCun et al., the
//! MNIST page: "normalized to fit in a 20x20 pixel box while preserving their aspect ratio
//! ... centered in a 28x28 image by computing the center of mass of the pixels, and
//! translating the image so as to position this point at the center of the 28x28 field").
//!
//! Pixels are ink intensities in [0, 1] (0 the background, as in MNIST). The steps:
//! 1. the bounding box of the ink (pixels above [`INK`]);
//! 2. the box resampled so that its longer side is [`BOX`] pixels, aspect ratio kept, each
//!    new pixel the area-weighted mean of the pixels it covers (the anti-aliasing);
//! 3. the result placed in 28 x 28 so that its centre of mass falls on the field's centre
//!    (14, 14), rounded to whole pixels and kept inside the field.
//!
//! The network's preprocessing then pads the 28 x 28 image to 32 x 32.

use crate::data::IMAGE_SIDE;

/// Intensity above which a pixel counts as ink for the bounding box.
pub const INK: f32 = 0.01;

/// Side of the box a digit is scaled to fit.
pub const BOX: usize = 20;

/// Largest drawing side accepted.
pub const MAX_SIDE: usize = 512;

/// `pixels` (`height` rows of `width` intensities) as a 28 x 28 MNIST-style image, row by
/// row; a drawing with no ink is all background.
pub fn to_mnist(pixels: &[f32], width: usize, height: usize) -> Vec<f32> {
    assert_eq!(
        pixels.len(),
        width * height,
        "pixels of a {width} x {height} drawing"
    );
    let side = IMAGE_SIDE;
    let mut out = vec![0.0f32; side * side];
    let ink = |x: usize, y: usize| pixels[y * width + x] > INK;
    let rows: Vec<usize> = (0..height)
        .filter(|&y| (0..width).any(|x| ink(x, y)))
        .collect();
    let cols: Vec<usize> = (0..width)
        .filter(|&x| (0..height).any(|y| ink(x, y)))
        .collect();
    let (Some(&top), Some(&bottom), Some(&left), Some(&right)) =
        (rows.first(), rows.last(), cols.first(), cols.last())
    else {
        return out;
    };
    let (w, h) = (right - left + 1, bottom - top + 1);
    let scale = BOX as f64 / w.max(h) as f64;
    let (new_w, new_h) = (
        ((w as f64 * scale).round() as usize).clamp(1, BOX),
        ((h as f64 * scale).round() as usize).clamp(1, BOX),
    );
    // Separable area resampling: each output column (row) takes the source columns (rows) it
    // covers, weighted by the length of the overlap.
    let weights = |from: usize, to: usize| -> Vec<Vec<(usize, f64)>> {
        let step = from as f64 / to as f64;
        (0..to)
            .map(|o| {
                let (a, b) = (o as f64 * step, (o + 1) as f64 * step);
                (a.floor() as usize..(b.ceil() as usize).min(from))
                    .map(|s| (s, (b.min(s as f64 + 1.0) - a.max(s as f64)) / step))
                    .filter(|&(_, wt)| wt > 0.0)
                    .collect()
            })
            .collect()
    };
    let (wx, wy) = (weights(w, new_w), weights(h, new_h));
    let mut across = vec![0.0f64; h * new_w];
    for y in 0..h {
        let row = &pixels[(top + y) * width + left..][..w];
        for (x, ws) in wx.iter().enumerate() {
            across[y * new_w + x] = ws.iter().map(|&(s, wt)| wt * row[s] as f64).sum();
        }
    }
    let mut boxed = vec![0.0f64; new_h * new_w];
    for (y, ws) in wy.iter().enumerate() {
        for x in 0..new_w {
            boxed[y * new_w + x] = ws.iter().map(|&(s, wt)| wt * across[s * new_w + x]).sum();
        }
    }
    // The centre of mass, pixel centres at +0.5, and the shift that puts it at (14, 14).
    let mass: f64 = boxed.iter().sum();
    let (mut cx, mut cy) = (0.0, 0.0);
    for y in 0..new_h {
        for x in 0..new_w {
            let m = boxed[y * new_w + x];
            cx += m * (x as f64 + 0.5);
            cy += m * (y as f64 + 0.5);
        }
    }
    let centre = side as f64 / 2.0;
    let place =
        |c: f64, len: usize| ((centre - c / mass).round().max(0.0) as usize).min(side - len);
    let (ox, oy) = (place(cx, new_w), place(cy, new_h));
    for y in 0..new_h {
        for x in 0..new_w {
            out[(oy + y) * side + ox + x] = boxed[y * new_w + x].clamp(0.0, 1.0) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A w x h drawing with a filled rectangle of ink.
    fn rect(w: usize, h: usize, (x0, y0, x1, y1): (usize, usize, usize, usize)) -> Vec<f32> {
        let mut p = vec![0.0; w * h];
        for y in y0..y1 {
            for x in x0..x1 {
                p[y * w + x] = 1.0;
            }
        }
        p
    }

    fn bbox(img: &[f32]) -> (usize, usize, usize, usize) {
        let on: Vec<(usize, usize)> = (0..784)
            .filter(|&i| img[i] > 0.0)
            .map(|i| (i % 28, i / 28))
            .collect();
        let xs = on.iter().map(|p| p.0);
        let ys = on.iter().map(|p| p.1);
        (
            xs.clone().min().unwrap(),
            ys.clone().min().unwrap(),
            xs.max().unwrap(),
            ys.max().unwrap(),
        )
    }

    #[test]
    fn a_tall_stroke_fills_twenty_rows_and_keeps_its_aspect_ratio() {
        // 40 wide, 200 tall, anywhere in a 280 x 280 pad.
        let img = to_mnist(&rect(280, 280, (30, 50, 70, 250)), 280, 280);
        let (x0, y0, x1, y1) = bbox(&img);
        assert_eq!(y1 - y0 + 1, BOX);
        assert_eq!(x1 - x0 + 1, 4, "40 / 200 of 20 pixels");
        // Centred: the mass's centre at 14 in both directions.
        assert_eq!((x0 + x1 + 1) as f64 / 2.0, 14.0);
        assert_eq!((y0 + y1 + 1) as f64 / 2.0, 14.0);
        // Area resampling of solid ink stays solid ink.
        assert!(img.iter().all(|&v| v == 0.0 || (v - 1.0).abs() < 1e-6));
    }

    #[test]
    fn the_centre_of_mass_not_the_box_is_centred() {
        // An L: its bottom bar pulls the mass down, and so the image up.
        let mut p = rect(100, 100, (10, 10, 20, 90));
        for y in 80..90 {
            for x in 10..90 {
                p[y * 100 + x] = 1.0;
            }
        }
        let img = to_mnist(&p, 100, 100);
        let (_, y0, _, y1) = bbox(&img);
        assert_eq!(y1 - y0 + 1, BOX);
        assert!(
            y0 < 4,
            "the box moves up so that the mass is at the centre: {y0}"
        );
        let mass: f32 = img.iter().sum();
        let cy: f32 = (0..784)
            .map(|i| img[i] * ((i / 28) as f32 + 0.5))
            .sum::<f32>()
            / mass;
        assert!((cy - 14.0).abs() <= 0.5, "centre of mass at row {cy}");
    }

    #[test]
    fn an_empty_drawing_is_background_and_a_dot_stays_inside() {
        assert!(
            to_mnist(&vec![0.0; 50 * 60], 50, 60)
                .iter()
                .all(|&v| v == 0.0)
        );
        let img = to_mnist(&rect(10, 10, (9, 9, 10, 10)), 10, 10);
        assert_eq!(img.iter().filter(|&&v| v > 0.0).count(), BOX * BOX);
        // Faint pixels below the ink threshold do not widen the box.
        let mut p = rect(64, 64, (20, 8, 44, 56));
        p[0] = INK / 2.0;
        let (x0, y0, x1, y1) = bbox(&to_mnist(&p, 64, 64));
        assert_eq!((x1 - x0 + 1, y1 - y0 + 1), (10, 20));
    }
}
