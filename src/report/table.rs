//! One table, three forms: aligned text for the terminal, Markdown for CI summaries and pull
//! requests, an HTML fragment for the HTML reports. `compare`, `matrix` and `--markdown`
//! build a [`Table`] and pick the form.

use std::fmt::Write;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// The first this many columns are labels (left-aligned); the rest are numbers.
    pub label_columns: usize,
}

impl Table {
    pub fn new(headers: impl IntoIterator<Item = impl Into<String>>) -> Table {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            label_columns: 1,
        }
    }

    pub fn row(&mut self, cells: impl IntoIterator<Item = impl Into<String>>) {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.headers.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].chars().count())
                    .chain([self.headers[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    pub fn to_text(&self) -> String {
        let widths = self.widths();
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                if c > 0 {
                    line.push_str("  ");
                }
                if c < self.label_columns {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                } else {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| {} |",
            self.headers
                .iter()
                .map(|h| cell(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let rule: Vec<&str> = (0..self.headers.len())
            .map(|c| {
                if c < self.label_columns {
                    "---"
                } else {
                    "---:"
                }
            })
            .collect();
        let _ = writeln!(out, "|{}|", rule.join("|"));
        for row in &self.rows {
            let _ = writeln!(
                out,
                "| {} |",
                row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
            );
        }
        out
    }

    pub fn to_html(&self) -> String {
        self.to_html_with(|_, _| None)
    }

    /// The HTML form with `class(row, column)` as the class of a body cell (a verdict's
    /// colour); a number column's cells keep `num` as well.
    pub fn to_html_with(&self, class: impl Fn(usize, usize) -> Option<&'static str>) -> String {
        let esc = escape;
        let mut out = String::from("<table>\n<thead><tr>");
        for h in &self.headers {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for (r, row) in self.rows.iter().enumerate() {
            out.push_str("<tr>");
            for (c, v) in row.iter().enumerate() {
                let classes: Vec<&str> = (c >= self.label_columns)
                    .then_some("num")
                    .into_iter()
                    .chain(class(r, c))
                    .collect();
                if classes.is_empty() {
                    let _ = write!(out, "<td>{}</td>", esc(v));
                } else {
                    let _ = write!(out, "<td class=\"{}\">{}</td>", classes.join(" "), esc(v));
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        out
    }
}

/// HTML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A figure for people: whole numbers from 1000 up, one decimal below, three below 1.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "-".into()
        } else {
            format!("{v}")
        };
    }
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 1.0 || a == 0.0 {
        let s = format!("{v:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(["figure", "a", "b"]);
        t.row(["rate_cps", "100", "2000"]);
        t.row(["x|<y>", "1", ""]);
        t
    }

    #[test]
    fn text_aligns_labels_left_and_numbers_right() {
        let text = sample().to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "figure      a     b");
        assert_eq!(lines[1], "rate_cps  100  2000");
    }

    #[test]
    fn markdown_escapes_pipes_and_right_aligns_numbers() {
        let md = sample().to_markdown();
        assert!(md.contains("|---|---:|---:|"), "{md}");
        assert!(md.contains("x\\|<y>"), "{md}");
    }

    #[test]
    fn html_escapes_cells() {
        let html = sample().to_html();
        assert!(html.contains("<td>x|&lt;y&gt;</td>"), "{html}");
        assert!(html.contains("<td class=\"num\">2000</td>"), "{html}");
        let html = sample().to_html_with(|r, c| (r == 1).then_some(["a", "b", "c"][c]));
        assert!(html.contains("<td>rate_cps</td>"), "{html}");
        assert!(html.contains("<td class=\"a\">x|&lt;y&gt;</td>"), "{html}");
        assert!(html.contains("<td class=\"num b\">1</td>"), "{html}");
    }

    #[test]
    fn numbers_keep_what_matters() {
        assert_eq!(number(65432.7), "65433");
        assert_eq!(number(18.84), "18.8");
        assert_eq!(number(7.0), "7");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.1234), "0.123");
        assert_eq!(number(f64::NAN), "-");
    }
}
