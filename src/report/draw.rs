//! The report's figures, drawn with plotters once per backend: SVG (for the HTML page and
//! `figures/*.svg`) and PNG (`figures/*.png`). Text is set in DejaVu Sans, embedded in the
//! binary and rasterised by ab_glyph, so no system font library is needed.
//!
//! Each figure is a value holding its data (computed by the caller from result files) that
//! implements [`Draw`]; [`render`] turns it into a [`Figure`]. Digit images are pictures:
//! blitted into the PNG, and embedded in the SVG as a small PNG data URI.

use base64::Engine as _;
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use super::numbers::three_digits;
use crate::doc::Figure;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Tableau 10: distinct, colour-blind-aware hues, one per configuration.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
pub(super) const MISTAKE: RGBColor = RGBColor(214, 39, 40);
pub(super) const INK: RGBColor = RGBColor(31, 35, 40);
pub(super) const MUTED: RGBColor = RGBColor(110, 119, 129);

/// The colour of configuration `i`.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// An RGB image placed on a figure at pixel position (x, y).
pub struct Picture {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// A figure that can draw itself on any plotters backend.
pub trait Draw {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Images under the drawing (digits).
    fn pictures(&self) -> Vec<Picture> {
        Vec::new()
    }
    /// Draws on a white area (the background is already there).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the embedded font is a valid TrueType file"));
    });
}

/// Draws `figure` as SVG and PNG.
pub fn render(name: &str, caption: String, figure: &impl Draw) -> Result<Figure, ReportError> {
    register_font();
    let (w, h) = figure.size();
    let failed = |e: String| ReportError::Figure {
        name: name.to_string(),
        reason: e,
    };
    let pictures = figure.pictures();

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        figure.draw(&root).map_err(|e| failed(e.to_string()))?;
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    // The background and the pictures go first, under everything plotters drew.
    let mut under = format!("<rect width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n");
    for p in &pictures {
        let data = base64::engine::general_purpose::STANDARD
            .encode(encode_png(&p.rgb, p.width, p.height)?);
        under += &format!(
            "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" \
             style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{data}\"/>\n",
            p.x, p.y, p.width, p.height
        );
    }
    let open = svg
        .find("<svg")
        .and_then(|s| svg[s..].find('>').map(|e| s + e + 1))
        .ok_or_else(|| failed("plotters wrote no <svg> element".into()))?;
    svg.insert_str(open, &format!("\n{under}"));

    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        for p in &pictures {
            let element = BitMapElement::with_ref((p.x, p.y), (p.width, p.height), &p.rgb)
                .ok_or_else(|| failed("picture buffer of the wrong size".into()))?;
            root.draw(&element).map_err(|e| failed(e.to_string()))?;
        }
        figure.draw(&root).map_err(|e| failed(e.to_string()))?;
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    Ok(Figure {
        name: name.to_string(),
        caption,
        svg,
        png: encode_png(&buf, w, h)?,
    })
}

/// PNG bytes of an 8-bit RGB image.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ReportError> {
    let mut out = Vec::new();
    let err = |e: png::EncodingError| ReportError::Figure {
        name: "png".into(),
        reason: e.to_string(),
    };
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Best);
        let mut writer = encoder.write_header().map_err(err)?;
        writer.write_image_data(rgb).map_err(err)?;
        writer.finish().map_err(err)?;
    }
    Ok(out)
}

/// The figures' font at `size` pixels, in ink colour.
pub(crate) fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&INK)
}

pub(super) fn centered(size: u32) -> TextStyle<'static> {
    font(size).pos(Pos::new(HPos::Center, VPos::Center))
}

// ---------------------------------------------------------------------------------------------
// Curves over epochs

/// One configuration's curve: the mean over seeds and a band (min to max over seeds).
#[derive(Clone, Debug)]
pub struct Curve {
    pub name: String,
    pub color: usize,
    pub epochs: Vec<f64>,
    pub mean: Vec<f64>,
    pub low: Vec<f64>,
    pub high: Vec<f64>,
}

/// A panel's vertical axis: what it shows, its range, and whether on a log scale.
#[derive(Clone, Debug)]
pub struct Axis {
    pub desc: String,
    pub range: (f64, f64),
    pub log: bool,
}

impl Curve {
    /// A curve with no points yet.
    pub fn new(name: &str, color: usize) -> Curve {
        Curve {
            name: name.to_string(),
            color,
            epochs: Vec::new(),
            mean: Vec::new(),
            low: Vec::new(),
            high: Vec::new(),
        }
    }
}

/// Two panels of curves side by side (training and validation, or two quantities).
pub struct Curves {
    pub titles: [String; 2],
    pub axes: [Axis; 2],
    pub panels: [Vec<Curve>; 2],
    /// The horizontal axis: "epoch" unless it says otherwise.
    pub x_desc: &'static str,
    /// Where the legend goes: near the top (falling curves) or the bottom (rising ones).
    pub legend_low: bool,
}

impl Curves {
    /// Two panels on one vertical axis.
    pub fn shared(
        titles: [String; 2],
        axis: Axis,
        panels: [Vec<Curve>; 2],
        legend_low: bool,
    ) -> Curves {
        Curves {
            titles,
            axes: [axis.clone(), axis],
            panels,
            x_desc: "epoch",
            legend_low,
        }
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        title: &str,
        axis: &Axis,
        curves: &[Curve],
    ) -> DrawResult<DB> {
        let max_epoch = curves
            .iter()
            .flat_map(|c| c.epochs.iter().copied())
            .fold(1.0f64, f64::max);
        let min_epoch = curves
            .iter()
            .flat_map(|c| c.epochs.iter().copied())
            .fold(1.0f64, f64::min);
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(title, font(18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64);
        let (lo, hi) = axis.range;
        let x_range = if max_epoch > min_epoch {
            min_epoch..max_epoch
        } else {
            min_epoch - 0.5..min_epoch + 0.5
        };
        let clamp = |v: f64| v.clamp(lo, hi);
        macro_rules! draw_on {
            ($chart:ident) => {{
                $chart
                    .configure_mesh()
                    .x_desc(self.x_desc)
                    .x_label_formatter(&|v| {
                        if (v - v.round()).abs() < 1e-6 {
                            format!("{v:.0}")
                        } else {
                            format!("{v:.1}")
                        }
                    })
                    .y_labels(8)
                    .y_label_formatter(&|v| tick(*v))
                    .y_desc(axis.desc.as_str())
                    .label_style(font(13))
                    .axis_desc_style(font(14))
                    .light_line_style(TRANSPARENT)
                    .bold_line_style(RGBColor(215, 220, 225))
                    .draw()?;
                for c in curves {
                    let col = color(c.color);
                    if c.epochs.len() > 1 {
                        let mut band: Vec<(f64, f64)> = c
                            .epochs
                            .iter()
                            .zip(&c.high)
                            .map(|(&e, &v)| (e, clamp(v)))
                            .collect();
                        band.extend(
                            c.epochs
                                .iter()
                                .zip(&c.low)
                                .rev()
                                .map(|(&e, &v)| (e, clamp(v))),
                        );
                        $chart.draw_series(std::iter::once(Polygon::new(band, col.mix(0.18))))?;
                    }
                    let line: Vec<(f64, f64)> = c
                        .epochs
                        .iter()
                        .zip(&c.mean)
                        .map(|(&e, &v)| (e, clamp(v)))
                        .collect();
                    $chart
                        .draw_series(LineSeries::new(line.clone(), col.stroke_width(2)))?
                        .label(c.name.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(3))
                        });
                    if line.len() == 1 {
                        $chart
                            .draw_series(line.iter().map(|&p| Circle::new(p, 4, col.filled())))?;
                    }
                }
                $chart
                    .configure_series_labels()
                    .position(if self.legend_low {
                        SeriesLabelPosition::LowerRight
                    } else {
                        SeriesLabelPosition::UpperRight
                    })
                    .label_font(font(13))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 205, 210))
                    .draw()?;
            }};
        }
        if axis.log {
            let mut chart = builder.build_cartesian_2d(x_range, (lo..hi).log_scale())?;
            draw_on!(chart);
        } else {
            let mut chart = builder.build_cartesian_2d(x_range, lo..hi)?;
            draw_on!(chart);
        }
        Ok(())
    }
}

impl Draw for Curves {
    fn size(&self) -> (u32, u32) {
        (1100, 460)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (left, right) = root.split_horizontally(550);
        self.panel(&left, &self.titles[0], &self.axes[0], &self.panels[0])?;
        self.panel(&right, &self.titles[1], &self.axes[1], &self.panels[1])
    }
}

// ---------------------------------------------------------------------------------------------
// Intervals per configuration

/// One row of a dot plot: a mean with its interval.
#[derive(Clone, Debug)]
pub struct Interval {
    pub name: String,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Drawn in the configuration's colour (else grey): e.g. tied with the best.
    pub highlight: bool,
    pub color: usize,
    /// Text right of the row, e.g. significance-group letters or "3/5 reached".
    pub note: String,
}

pub struct DotPanel {
    pub title: String,
    pub x_desc: String,
    /// Top to bottom.
    pub rows: Vec<Interval>,
    pub x_range: (f64, f64),
}

/// Panels of horizontal dot plots with interval bars.
pub struct DotPlot {
    pub panels: Vec<DotPanel>,
}

impl DotPlot {
    fn panel<DB: DrawingBackend>(
        area: &DrawingArea<DB, Shift>,
        panel: &DotPanel,
    ) -> DrawResult<DB> {
        let n = panel.rows.len().max(1) as i32;
        let names: Vec<String> = panel.rows.iter().map(|r| r.name.clone()).collect();
        let (lo, hi) = panel.x_range;
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title.as_str(), font(18))
            .margin(12)
            .margin_right(90)
            .x_label_area_size(40)
            .y_label_area_size(130)
            .build_cartesian_2d(lo..hi, (0..n - 1).into_segmented())?;
        // (An integer range includes its end: rows 0 ..= n - 1.)
        // Row 0 is drawn at the top.
        let row = |i: usize| SegmentValue::CenterOf(n - 1 - i as i32);
        chart
            .configure_mesh()
            .x_desc(panel.x_desc.as_str())
            .y_labels(n as usize)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(k) => {
                    names.get((n - 1 - k) as usize).cloned().unwrap_or_default()
                }
                _ => String::new(),
            })
            .x_label_formatter(&|v| tick(*v))
            .label_style(font(13))
            .axis_desc_style(font(14))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 220, 225))
            .draw()?;
        for (i, r) in panel.rows.iter().enumerate() {
            let col = if r.highlight { color(r.color) } else { MUTED };
            let y = row(i);
            if !r.note.is_empty() {
                // Right of the plot, in the area's own pixel coordinates.
                let style = font(13).color(&col).pos(Pos::new(HPos::Left, VPos::Center));
                let (xs, ys) = area.get_pixel_range();
                let (_, py) = chart.backend_coord(&(hi, y.clone()));
                let at = (xs.end - xs.start - 86, py - ys.start);
                area.draw(&Text::new(r.note.clone(), at, style))?;
            }
            if !r.mean.is_finite() {
                continue;
            }
            if r.mean < lo || r.mean > hi {
                let x = if r.mean < lo { lo } else { hi };
                let text = format!("off scale: {}", three_digits(r.mean));
                let style = font(13).color(&col).pos(Pos::new(
                    if r.mean < lo { HPos::Left } else { HPos::Right },
                    VPos::Center,
                ));
                chart.draw_series(std::iter::once(Text::new(text, (x, y.clone()), style)))?;
                continue;
            }
            let (a, b) = (r.low.max(lo), r.high.min(hi));
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(a, y.clone()), (b, y.clone())],
                col.stroke_width(3),
            )))?;
            let marker = if r.highlight {
                col.filled()
            } else {
                col.stroke_width(2)
            };
            chart.draw_series(std::iter::once(Circle::new((r.mean, y.clone()), 6, marker)))?;
        }
        Ok(())
    }
}

impl Draw for DotPlot {
    fn size(&self) -> (u32, u32) {
        let rows = self.panels.iter().map(|p| p.rows.len()).max().unwrap_or(1) as u32;
        let width = if self.panels.len() > 1 { 1100 } else { 900 };
        (width, 110 + 34 * rows.max(2))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let areas = root.split_evenly((1, self.panels.len().max(1)));
        for (area, panel) in areas.iter().zip(&self.panels) {
            Self::panel(area, panel)?;
        }
        Ok(())
    }
}

/// An axis tick: short, without binary noise (0.3, not 0.30000000000000004).
fn tick(v: f64) -> String {
    // Below a ten-thousandth (log axes of small quantities) four decimals would read 0.
    if v != 0.0 && v.abs() < 1e-4 {
        return format!("{v:.0e}");
    }
    if v.abs() >= 1e6 {
        return format!("{v:.0e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Lines: learning-rate sensitivity and the 2x2 interaction plot

/// A point of a line: x, y and optionally an interval (low, high) drawn as a bar.
pub type LinePoint = (f64, f64, Option<(f64, f64)>);

#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub color: usize,
    pub points: Vec<LinePoint>,
    /// A point to ring (the chosen learning rate).
    pub marked: Option<(f64, f64)>,
}

pub struct Lines {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub series: Vec<Series>,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    pub log_x: bool,
    /// Names for x = 0 and x = 1 (a categorical axis), or none for a numeric one.
    pub x_names: Option<[String; 2]>,
}

impl Draw for Lines {
    fn size(&self) -> (u32, u32) {
        (900, 520)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(self.title.as_str(), font(18))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70);
        let (x0, x1) = self.x_range;
        let (y0, y1) = self.y_range;
        macro_rules! draw_on {
            ($chart:ident) => {{
                let names = self.x_names.clone();
                let mut mesh = $chart.configure_mesh();
                mesh.x_desc(self.x_desc.as_str())
                    .y_desc(self.y_desc.as_str())
                    .label_style(font(13))
                    .axis_desc_style(font(14))
                    .light_line_style(TRANSPARENT)
                    .bold_line_style(RGBColor(215, 220, 225));
                let fmt = move |v: &f64| match &names {
                    Some(n) if (v - 0.0).abs() < 1e-9 => n[0].clone(),
                    Some(n) if (v - 1.0).abs() < 1e-9 => n[1].clone(),
                    Some(_) => String::new(),
                    None => tick(*v),
                };
                if self.x_names.is_some() {
                    mesh.x_labels(3).x_label_formatter(&fmt).draw()?;
                } else {
                    mesh.draw()?;
                }
                for s in &self.series {
                    let col = color(s.color);
                    let line: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
                    $chart
                        .draw_series(LineSeries::new(line.clone(), col.stroke_width(2)))?
                        .label(s.name.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(3))
                        });
                    $chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, col.filled())))?;
                    for &(x, _, ci) in &s.points {
                        if let Some((lo, hi)) = ci {
                            $chart.draw_series(std::iter::once(PathElement::new(
                                vec![(x, lo), (x, hi)],
                                col.stroke_width(2),
                            )))?;
                        }
                    }
                    if let Some(p) = s.marked {
                        $chart.draw_series(std::iter::once(Circle::new(
                            p,
                            9,
                            col.stroke_width(2),
                        )))?;
                    }
                }
                $chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::LowerRight)
                    .label_font(font(13))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 205, 210))
                    .draw()?;
            }};
        }
        if self.log_x {
            let mut chart = builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?;
            draw_on!(chart);
        } else {
            let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
            draw_on!(chart);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Digits
