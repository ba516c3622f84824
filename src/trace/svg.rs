//! The ladder of a [`Trace`] as an SVG picture, drawn with plotters' SVG backend: the two
//! ends' timelines, each segment an arrow sloping down from its sender to its receiver (time
//! passes on the way) with its label, each state written beside its end's timeline, then the
//! close and the verdicts. Rows are in time order, one per event, not to scale: on loopback
//! a whole connection takes less time than the gaps a scale would need.
//!
//! The result is a whole `<svg>` document (with its xmlns) that also reads as inline SVG
//! inside an HTML page.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ladder::label;
use super::model::{Observed, Segment, Side, StateChange, Trace};

const WIDTH: u32 = 1000;
const CLIENT_X: i32 = 250;
const SERVER_X: i32 = 750;
/// Where the first row is, and the height of each.
const TOP: i32 = 120;
const ROW: i32 = 34;
/// How far an arrow falls from its sender to its receiver.
const FALL: i32 = 16;
const LINE: i32 = 18;
const FONT: f64 = 14.0;

const SYN: RGBColor = RGBColor(0x2E, 0x7D, 0x32);
const FIN: RGBColor = RGBColor(0x1F, 0x5F, 0xA8);
const RST: RGBColor = RGBColor(0xC6, 0x28, 0x28);
const PLAIN: RGBColor = RGBColor(0x44, 0x44, 0x44);
const GREY: RGBColor = RGBColor(0x88, 0x88, 0x88);

fn colour(s: &Segment) -> RGBColor {
    if s.has("RST") {
        RST
    } else if s.has("SYN") {
        SYN
    } else if s.has("FIN") {
        FIN
    } else {
        PLAIN
    }
}

fn x_of(side: Side) -> i32 {
    match side {
        Side::Client => CLIENT_X,
        Side::Server => SERVER_X,
    }
}

enum Row<'a> {
    Segment(&'a Segment),
    State(&'a StateChange),
}

/// The trace as a standalone SVG document.
pub fn render_svg(t: &Trace) -> String {
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, t) {
        // A String backend does not fail in practice; say so in a picture if it does.
        return format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\"><text x=\"10\" \
             y=\"25\">cannot draw the trace: {}</text></svg>",
            crate::report::table::escape(&e.to_string())
        );
    }
    svg
}

fn text_style(size: f64, colour: &RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle {
        font: ("sans-serif", size).into_font(),
        color: colour.to_backend_color(),
        pos: Pos::new(h, v),
    }
}

/// Left-aligned text, centred on its y.
fn left(size: f64, colour: &RGBColor) -> TextStyle<'static> {
    text_style(size, colour, HPos::Left, VPos::Center)
}

fn draw(svg: &mut String, t: &Trace) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let mut rows: Vec<(f64, Row)> = t
        .segments
        .iter()
        .map(|s| (s.t_us, Row::Segment(s)))
        .chain(t.states.iter().map(|s| (s.t_us, Row::State(s))))
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ladder_end = TOP + rows.len() as i32 * ROW;
    let starred = t.states.iter().any(|s| s.observed != Observed::Tracepoint);
    let footer = i32::from(starred) + 1 + t.time_wait.len().max(1) as i32 + t.checks.len() as i32;
    let height = (ladder_end + 30 + footer * LINE + 12) as u32;

    let root = SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        format!(
            "connection {} of {}: client {} -> server {}, close {}",
            t.conn, t.conns, t.client, t.server, t.close
        ),
        (10, 18),
        left(FONT + 2.0, &BLACK),
    ))?;
    root.draw(&Text::new(
        format!("states: {}", t.states_source.describe()),
        (10, 40),
        left(FONT - 2.0, &GREY),
    ))?;
    let head = |side: Side, name: &str, addr: std::net::SocketAddr| {
        Text::new(
            format!("{name} {addr}"),
            (x_of(side), TOP - 36),
            text_style(FONT + 1.0, &BLACK, HPos::Center, VPos::Center),
        )
    };
    root.draw(&head(Side::Client, "client", t.client))?;
    root.draw(&head(Side::Server, "server", t.server))?;
    root.draw(&Text::new(
        "t (µs)",
        (10, TOP - 36),
        left(FONT - 1.0, &GREY),
    ))?;
    for side in [Side::Client, Side::Server] {
        let x = x_of(side);
        root.draw(&PathElement::new(
            vec![(x, TOP - 22), (x, ladder_end)],
            BLACK.stroke_width(2),
        ))?;
        // Where the end starts: the state its first change left (CLOSED, LISTEN).
        if let Some(from) = t
            .states
            .iter()
            .find(|s| s.side == side)
            .and_then(|s| s.from.as_ref())
        {
            let (h, dx) = match side {
                Side::Client => (HPos::Right, -10),
                Side::Server => (HPos::Left, 10),
            };
            root.draw(&Text::new(
                from.clone(),
                (x + dx, TOP - 14),
                text_style(FONT - 1.0, &GREY, h, VPos::Center),
            ))?;
        }
    }

    for (i, (t_us, row)) in rows.iter().enumerate() {
        let y = TOP + i as i32 * ROW;
        root.draw(&Text::new(
            format!("{t_us:.1}"),
            (10, y + ROW / 3),
            left(FONT - 2.0, &GREY),
        ))?;
        match row {
            Row::Segment(s) => draw_segment(&root, s, y)?,
            Row::State(s) => {
                let x = x_of(s.side);
                let (h, dx) = match s.side {
                    Side::Client => (HPos::Right, -10),
                    Side::Server => (HPos::Left, 10),
                };
                let mark = if s.observed == Observed::Tracepoint {
                    ""
                } else {
                    " *"
                };
                root.draw(&Circle::new((x, y + ROW / 3), 4, BLACK.filled()))?;
                root.draw(&Text::new(
                    format!("{}{mark}", s.state),
                    (x + dx, y + ROW / 3),
                    text_style(FONT, &BLACK, h, VPos::Center),
                ))?;
            }
        }
    }

    let mut y = ladder_end + 30;
    let mut line = |text: String, c: &RGBColor| {
        let r = root.draw(&Text::new(text, (10, y), left(FONT - 1.0, c)));
        y += LINE;
        r
    };
    if starred {
        line(
            "* seen by sock_diag (TIME_WAIT: where the full socket went to CLOSE)".into(),
            &GREY,
        )?;
    }
    let td = &t.teardown;
    line(
        format!(
            "close: {:?}, {} segment(s){}",
            td.kind,
            td.segments,
            td.first_fin
                .map_or(String::new(), |s| format!(", first FIN from the {s}"))
        ),
        &BLACK,
    )?;
    if t.time_wait.is_empty() {
        line("TIME_WAIT: neither side".into(), &BLACK)?;
    }
    for tw in &t.time_wait {
        line(
            format!(
                "TIME_WAIT: the {} from {:.1} µs, {:.1} s{}",
                tw.side,
                tw.t_us,
                tw.seconds(),
                if tw.measured_s.is_some() {
                    " (measured)"
                } else {
                    " (kernel timer)"
                }
            ),
            &BLACK,
        )?;
    }
    for c in &t.checks {
        let (verdict, colour) = match c.holds {
            Some(true) => ("holds", SYN),
            Some(false) => ("FAILS", RST),
            None => ("n/a", GREY),
        };
        line(format!("{verdict}  ({}) {}", c.id, c.claim), &colour)?;
    }
    root.present()?;
    Ok(())
}

/// An arrow from the sender's timeline to the receiver's, falling [`FALL`] px, labelled.
fn draw_segment<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    s: &Segment,
    y: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let c = colour(s);
    let (x1, x2) = (x_of(s.from), x_of(s.from.peer()));
    let (y1, y2) = (y + 4, y + 4 + FALL);
    root.draw(&PathElement::new(
        vec![(x1, y1), (x2, y2)],
        c.stroke_width(2),
    ))?;
    // The head: a triangle whose tip is on the receiver's timeline.
    let (dx, dy) = ((x2 - x1) as f64, (y2 - y1) as f64);
    let len = dx.hypot(dy);
    let (ux, uy) = (dx / len, dy / len);
    let back = |k: f64, side: f64| {
        (
            (x2 as f64 - ux * k - uy * side).round() as i32,
            (y2 as f64 - uy * k + ux * side).round() as i32,
        )
    };
    root.draw(&Polygon::new(
        vec![(x2, y2), back(12.0, 5.0), back(12.0, -5.0)],
        c.filled(),
    ))?;
    root.draw(&Text::new(
        label(s),
        ((x1 + x2) / 2, (y1 + y2) / 2 - 3),
        text_style(FONT - 1.0, &c, HPos::Center, VPos::Bottom),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_standalone_ladder() {
        let t = crate::trace::ladder::tests::sample();
        let svg = render_svg(&t);
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        // Every segment's label and every state is there, the timelines and the arrows.
        for s in &t.segments {
            assert!(svg.contains(&label(s)), "no label {:?}", label(s));
        }
        for st in [
            "SYN_SENT",
            "ESTABLISHED",
            "FIN_WAIT1",
            "CLOSE_WAIT",
            "LAST_ACK",
            "TIME_WAIT *",
        ] {
            assert!(svg.contains(st), "no {st}");
        }
        assert!(svg.matches("<polygon").count() >= t.segments.len());
        assert!(svg.contains("FAILS  (4)"));
        // Embeddable: a page can hold it inline.
        let page = format!("<!doctype html><html><body>{svg}</body></html>");
        assert_eq!(crate::report::html::inspect::charts(&page).len(), 1);
    }
}
