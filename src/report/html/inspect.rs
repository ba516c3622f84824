//! Reading a rendered report back: the checks tests and scripts make on what a browser shows.

/// Each `<svg>…</svg>` of a document: one per chart.
pub fn charts(html: &str) -> Vec<&str> {
    html.split("<svg")
        .skip(1)
        .map(|s| s.split("</svg>").next().unwrap_or(""))
        .collect()
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    tag[start..].split('"').next()
}

/// The data lines of a chart: coloured polylines with at least `min_points` points (the
/// mesh is grey and legend glyphs are rectangles).
pub fn data_lines(svg: &str, min_points: usize) -> usize {
    svg.split("<polyline")
        .skip(1)
        .map(|t| t.split('>').next().unwrap_or(""))
        .filter(|t| {
            let n = attr(t, "points").unwrap_or("").split_whitespace().count();
            !grey(attr(t, "stroke").unwrap_or("")) && n >= min_points
        })
        .count()
}

/// Whether a colour attribute is a grey (or black or white): the mesh, the frame and the
/// legend's box are, no series is.
fn grey(colour: &str) -> bool {
    let c = colour.to_ascii_lowercase();
    !(c.len() == 7 && c.starts_with('#')) || (c[1..3] == c[3..5] && c[3..5] == c[5..7])
}

/// The coloured elements `<tag …>` of a chart, by their fill: `circle` and `polygon` are the
/// marks of data points (and of a legend entry for marks), `rect` the legend's line glyphs.
pub fn coloured(svg: &str, tag: &str) -> usize {
    svg.split(&format!("<{tag} "))
        .skip(1)
        .map(|t| t.split('>').next().unwrap_or(""))
        .filter(|t| !grey(attr(t, "fill").unwrap_or("none")))
        .count()
}
