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
            let stroke = attr(t, "stroke").unwrap_or("").to_ascii_lowercase();
            let grey =
                stroke.len() == 7 && stroke[1..3] == stroke[3..5] && stroke[3..5] == stroke[5..7];
            let n = attr(t, "points").unwrap_or("").split_whitespace().count();
            !grey && n >= min_points
        })
        .count()
}
