//! plotters glue: a [`Chart`] drawn as an SVG string, with our own ticks on both axes.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::LABEL_FONT;
use super::axis::Axis;
use super::charts::{Chart, Mark};

/// The radius of a mark (a sample known only where it was taken), in pixels.
const MARK_SIZE: i32 = 4;

/// A linear f64 axis with the ticks of an [`Axis`]. (plotters' own `with_key_points` keeps
/// `RangedCoordf64`'s `NoDefaultFormatting`, which leaves the mesh without a label formatter.)
pub(super) struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
    light: Vec<f64>,
}

impl Ticked {
    pub(super) fn new(axis: &Axis) -> Ticked {
        Ticked {
            inner: (axis.lo..axis.hi).into(),
            ticks: axis.ticks.clone(),
            light: axis.light.clone(),
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// Draws a chart as an SVG document (a string), with plotters.
pub(super) fn draw(chart: &Chart) -> Result<String, String> {
    let mut svg = String::new();
    draw_into(&mut svg, chart).map_err(|e| e.to_string())?;
    Ok(svg)
}

pub(super) fn draw_into(
    svg: &mut String,
    chart: &Chart,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let (x, y) = (&chart.x, &chart.y);
    let size = (chart.size.width, chart.size.height);
    let root = SVGBackend::with_string(svg, size).into_drawing_area();
    root.fill(&WHITE)?;
    let mut ctx = ChartBuilder::on(&root)
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(76)
        .build_cartesian_2d(Ticked::new(x), Ticked::new(y))?;
    let x_label = |v: &f64| x.label(*v);
    let y_label = |v: &f64| y.label(*v);
    ctx.configure_mesh()
        .x_desc(x.desc)
        .y_desc(y.desc)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style(("sans-serif", LABEL_FONT))
        .axis_desc_style(("sans-serif", LABEL_FONT))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(BLACK.mix(0.05))
        .axis_style(BLACK.mix(0.6))
        .draw()?;

    for line in &chart.lines {
        let c = line.colour;
        // Keep every point inside the plotting area: plotters does not clip paths.
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .map(|&(px, py)| (px.clamp(x.lo, x.hi), py.clamp(y.lo, y.hi)))
            .collect();
        let anno = match line.mark {
            Mark::Line => ctx.draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?,
            Mark::Circle => ctx.draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, MARK_SIZE, c.filled())),
            )?,
            Mark::Triangle => ctx.draw_series(
                points
                    .iter()
                    .map(|&p| TriangleMarker::new(p, MARK_SIZE + 1, c.filled())),
            )?,
        };
        // Legend glyphs are filled rectangles (a line) or a mark's own shape, so every
        // coloured <polyline> is data.
        if let Some(label) = &line.label {
            match line.mark {
                Mark::Line => anno.legend(move |(lx, ly)| {
                    EmptyElement::at((lx, ly)) + Rectangle::new([(0, -1), (24, 2)], c.filled())
                }),
                Mark::Circle => anno.legend(move |(lx, ly)| {
                    EmptyElement::at((lx, ly)) + Circle::new((12, 0), MARK_SIZE, c.filled())
                }),
                Mark::Triangle => anno.legend(move |(lx, ly)| {
                    EmptyElement::at((lx, ly))
                        + TriangleMarker::new((12, 0), MARK_SIZE + 1, c.filled())
                }),
            }
            .label(label.as_str());
        }
        if line.mark == Mark::Line && points.len() == 1 {
            // A one-point line is invisible: mark the point.
            ctx.draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, MARK_SIZE, c.filled())),
            )?;
        }
    }

    if chart.lines.is_empty() {
        let centre = ((x.lo + x.hi) / 2.0, (y.lo + y.hi) / 2.0);
        let grey = BLACK.mix(0.45);
        let style = TextStyle::from(("sans-serif", 22).into_font())
            .color(&grey)
            .pos(Pos::new(HPos::Center, VPos::Center));
        ctx.plotting_area()
            .draw(&Text::new("no data", centre, style))?;
    } else if chart.lines.iter().any(|l| l.label.is_some()) {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", LABEL_FONT))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
