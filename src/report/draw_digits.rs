//! Pictures of digits: a grid of images with labels (mistakes in red), and the confusion
//! matrix. Each image is blitted into the PNG and embedded in the SVG as a small PNG data URI.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::{Draw, DrawResult, INK, MISTAKE, MUTED, Picture, centered};

/// One digit of a grid with the text under it.
#[derive(Clone, Debug)]
pub struct Digit {
    /// 28 x 28 grey levels, 0 background, 255 ink.
    pub pixels: Vec<u8>,
    pub label: String,
    /// Marked in red (a misclassified image).
    pub flagged: bool,
}

/// A grid of digits, `columns` wide.
pub struct DigitGrid {
    pub title: String,
    pub columns: usize,
    pub digits: Vec<Digit>,
}

const SCALE: usize = 3;
const SIDE: usize = 28 * SCALE;
const CELL_W: i32 = 104;
const CELL_H: i32 = 124;
const TOP: i32 = 40;

impl DigitGrid {
    fn origin(&self, i: usize) -> (i32, i32) {
        let (r, c) = (i / self.columns, i % self.columns);
        let left = (CELL_W - SIDE as i32) / 2;
        (12 + c as i32 * CELL_W + left, TOP + r as i32 * CELL_H)
    }
}

impl Draw for DigitGrid {
    fn size(&self) -> (u32, u32) {
        let rows = self.digits.len().div_ceil(self.columns.max(1)).max(1);
        (
            24 + self.columns as u32 * CELL_W as u32,
            TOP as u32 + rows as u32 * CELL_H as u32 + 8,
        )
    }

    fn pictures(&self) -> Vec<Picture> {
        self.digits
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut rgb = Vec::with_capacity(SIDE * SIDE * 3);
                for y in 0..SIDE {
                    for x in 0..SIDE {
                        let v = d.pixels.get((y / SCALE) * 28 + x / SCALE).copied();
                        let grey = 255 - v.unwrap_or(0);
                        rgb.extend([grey, grey, grey]);
                    }
                }
                let (x, y) = self.origin(i);
                Picture {
                    x,
                    y,
                    width: SIDE as u32,
                    height: SIDE as u32,
                    rgb,
                }
            })
            .collect()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (w, _) = self.size();
        root.draw(&Text::new(
            self.title.clone(),
            (w as i32 / 2, TOP / 2),
            centered(18),
        ))?;
        for (i, d) in self.digits.iter().enumerate() {
            let (x, y) = self.origin(i);
            let side = SIDE as i32;
            let frame = if d.flagged {
                MISTAKE.stroke_width(3)
            } else {
                RGBColor(200, 205, 210).stroke_width(1)
            };
            root.draw(&Rectangle::new(
                [(x - 1, y - 1), (x + side, y + side)],
                frame,
            ))?;
            // Labels longer than MNIST's longest ("7 (>99.9%), is 1") in a smaller size, to
            // fit their cell.
            let size = if d.label.chars().count() > 16 { 10 } else { 13 };
            let style = if d.flagged {
                centered(size).color(&MISTAKE)
            } else {
                centered(size)
            };
            root.draw(&Text::new(
                d.label.clone(),
                (x + side / 2, y + side + 16),
                style,
            ))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Confusion matrix

pub struct Confusion {
    pub title: String,
    /// counts[true][predicted]
    pub counts: [[u32; 10]; 10],
}

impl Draw for Confusion {
    fn size(&self) -> (u32, u32) {
        (640, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        const CELL: i32 = 50;
        let (x0, y0) = (110, 80);
        root.draw(&Text::new(self.title.clone(), (320, 24), centered(18)))?;
        root.draw(&Text::new(
            "predicted label",
            (x0 + 5 * CELL, y0 - 34),
            centered(14),
        ))?;
        root.draw(&Text::new(
            "true label",
            (x0 - 70, y0 + 5 * CELL),
            centered(14).transform(FontTransform::Rotate270),
        ))?;
        let off_max = (0..10)
            .flat_map(|t| (0..10).filter(move |&p| p != t).map(move |p| (t, p)))
            .map(|(t, p)| self.counts[t][p])
            .max()
            .unwrap_or(0)
            .max(1);
        for t in 0..10 {
            root.draw(&Text::new(
                t.to_string(),
                (x0 - 18, y0 + t as i32 * CELL + CELL / 2),
                centered(14),
            ))?;
            root.draw(&Text::new(
                t.to_string(),
                (x0 + t as i32 * CELL + CELL / 2, y0 - 14),
                centered(14),
            ))?;
            for p in 0..10 {
                let count = self.counts[t][p];
                // Correct predictions in blue; mistakes in red, shaded on their own scale
                // (they are 100 times rarer and would vanish on the diagonal's).
                let (fill, text) = if t == p {
                    (RGBColor(31, 119, 180).mix(0.85), WHITE)
                } else if count == 0 {
                    (WHITE.mix(1.0), MUTED)
                } else {
                    let a = 0.15 + 0.85 * (count as f64 / off_max as f64).sqrt();
                    (MISTAKE.mix(a), if a > 0.55 { WHITE } else { INK })
                };
                let (x, y) = (x0 + p as i32 * CELL, y0 + t as i32 * CELL);
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL, y + CELL)],
                    fill.filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL, y + CELL)],
                    RGBColor(225, 228, 232).stroke_width(1),
                ))?;
                root.draw(&Text::new(
                    count.to_string(),
                    (x + CELL / 2, y + CELL / 2),
                    centered(if count >= 1000 { 12 } else { 13 }).color(&text),
                ))?;
            }
        }
        Ok(())
    }
}
