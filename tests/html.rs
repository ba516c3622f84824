//! The HTML report of a real run, as a browser sees it: headless Chromium loads the file and
//! dumps the DOM it built; every chart must be there with its data lines and legend.
//! A visible skip when no Chromium is on PATH (`common::require`), and under CI a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tcpbench::report::html::inspect::{self, charts as svgs};
use tcpbench::report::html::{self, Series};

/// The first Chromium binary on PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// `chromium --headless --dump-dom file://…` in a window of `size` pixels: the DOM after
/// parsing (and after the page's scripts ran), as Chromium serialises it.
fn dump_dom(chromium: &Path, file: &Path, profile: &Path, size: (u32, u32)) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let dom = reader.join().unwrap().expect("chromium's output is UTF-8");
    assert!(status.success(), "chromium failed: {status}");
    dom
}

fn data_lines(svg: &str) -> usize {
    inspect::data_lines(svg, 1)
}

#[test]
fn chromium_renders_every_chart_of_a_real_run() {
    let report = {
        let _g = common::heavy();
        let cfg = common::config(&["--conns", "2000", "--close", "client"]);
        tcpbench::run(&cfg, true).expect("run completes")
    };
    let html = html::render(
        "tcpbench <run>",
        "<table><tr><th>x</th></tr><tr><td class=\"num\">1</td></tr></table>",
        &[
            Series {
                label: "a",
                report: &report,
            },
            Series {
                label: "b",
                report: &report,
            },
        ],
    );
    // What we wrote: the checks that do not need a browser.
    assert_eq!(svgs(&html).len(), 6);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    std::fs::write(&file, &html).unwrap();
    // To look at it: TCPBENCH_HTML_OUT=/tmp/report.html cargo test --test html
    if let Some(out) = std::env::var_os("TCPBENCH_HTML_OUT") {
        std::fs::write(out, &html).unwrap();
    }

    let found = chromium();
    if !common::require(
        "chromium on PATH (apt-get install chromium)",
        found.is_some(),
    ) {
        return;
    }
    let chromium = found.unwrap();
    let dom = dump_dom(&chromium, &file, &dir.path().join("profile"), (1400, 3000));
    println!("{} rendered {} bytes of DOM", chromium.display(), dom.len());
    assert!(
        dom.contains("<title>tcpbench &lt;run&gt;</title>"),
        "{dom:.2000}"
    );
    assert!(dom.contains("<td class=\"num\">1</td>"));
    let charts = svgs(&dom);
    assert_eq!(charts.len(), 6, "{dom:.2000}");
    let captions = dom.matches("<figcaption>").count();
    assert_eq!(captions, 6);
    for (i, svg) in charts.iter().enumerate() {
        assert!(data_lines(svg) > 0, "chart {i} has no data line");
    }
    // Every chart: one line per series, legend "a" and "b".
    let legend = |svg: &str, label: &str| {
        svg.contains(&format!(">\n{label}\n</text>")) || svg.contains(&format!(">{label}</text>"))
    };
    for (i, svg) in charts.iter().enumerate() {
        assert!(data_lines(svg) >= 2, "chart {i}");
        assert!(legend(svg, "a") && legend(svg, "b"), "chart {i}");
    }
    // TIME_WAIT: each series' namespace total on every tick, the exact per-side counts as
    // marks, a circle per client-side count (and a triangle per server-side one).
    let ticks = report.tcp_states.samples.len();
    let exact = |side: fn(&tcpbench::observe::sampler::Sample) -> bool| {
        report.tcp_states.samples.iter().filter(|s| side(s)).count()
    };
    assert!(ticks > 2, "{:?}", report.tcp_states);
    assert_eq!(inspect::data_lines(charts[4], ticks), 2);
    assert_eq!(
        inspect::coloured(charts[4], "circle"),
        2 * exact(|s| s.client.is_some())
    );
    assert_eq!(
        inspect::coloured(charts[4], "polygon"),
        2 * exact(|s| s.server.is_some())
    );
    assert!(!dom.contains("no data"));
}

/// A script that measures the page as laid out and leaves the result in the DOM for
/// --dump-dom: `<output id="layout">` holding `key=value` lines.
const MEASURE: &str = r#"<script>
(function () {
  const out = [];
  const doc = document.documentElement;
  out.push("viewport=" + doc.clientWidth + "x" + window.innerHeight);
  document.querySelectorAll("pre").forEach(function (p, i) {
    out.push("pre" + i + ".overflow=" + (p.scrollWidth - p.clientWidth));
  });
  document.querySelectorAll("figure.chart").forEach(function (f, i) {
    const r = f.getBoundingClientRect();
    out.push("figure" + i + ".right=" + Math.round(r.right + window.scrollX));
    out.push("figure" + i + ".bottom=" + Math.round(r.bottom + window.scrollY));
  });
  out.push("page.width=" + doc.scrollWidth);
  const o = document.createElement("output");
  o.id = "layout";
  o.textContent = out.join("\n");
  document.body.appendChild(o);
})();
</script>
"#;

/// The `key=value` lines the [`MEASURE`] script left in the DOM.
fn layout(dom: &str) -> std::collections::BTreeMap<String, String> {
    let text = dom
        .split("<output id=\"layout\">")
        .nth(1)
        .and_then(|s| s.split("</output>").next())
        .unwrap_or_else(|| panic!("the script left no layout: {dom:.2000}"));
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(layout: &std::collections::BTreeMap<String, String>, key: &str) -> i64 {
    layout
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {layout:?}"))
        .parse()
        .unwrap()
}

/// A matrix page of four scenarios and a run page with its text summary, as a browser lays
/// them out: at 1400x3000 every chart of the matrix (the rate chart last) is on the screen;
/// at 1400 and at 800 pixels wide nothing sticks out sideways and the summary's `<pre>`
/// wraps instead of hiding its long lines behind a scrollbar.
#[test]
fn pages_fit_the_window() {
    let report = {
        let _g = common::heavy();
        let cfg = common::config(&["--conns", "2000", "--close", "client"]);
        tcpbench::run(&cfg, true).expect("run completes")
    };
    let found = chromium();
    if !common::require(
        "chromium on PATH (apt-get install chromium)",
        found.is_some(),
    ) {
        return;
    }
    let chromium = found.unwrap();
    let names = ["client", "server", "rst", "linger 1s"];
    let mut run = report.clone();
    run.warnings.push(format!(
        "preflight: {}",
        "a long warning that must wrap ".repeat(12)
    ));
    let m = tcpbench::matrix::Matrix {
        schema: tcpbench::matrix::SCHEMA.into(),
        file: "reports/scenarios/close-modes.toml".into(),
        scenarios: names
            .iter()
            .map(|n| tcpbench::matrix::Outcome {
                name: n.to_string(),
                args: ["--conns", "20000", "--concurrency", "16", "--isolate"]
                    .map(String::from)
                    .to_vec(),
                report: run.clone(),
                server: None,
            })
            .collect(),
        failed: vec![],
        interrupted: false,
    };
    let series: Vec<Series> = m
        .scenarios
        .iter()
        .map(|s| Series {
            label: &s.name,
            report: &s.report,
        })
        .collect();
    let matrix_page = html::render(
        "tcpbench matrix",
        &tcpbench::matrix::render_html_table(&m),
        &series,
    );
    let summary = tcpbench::report::table::escape(&tcpbench::report::text::render(&run));
    // The header's longest line, as a run with many flags prints it.
    let summary = format!("{}\n{summary}", "config: --flag value ".repeat(20));
    let run_page = html::render(
        "tcpbench run",
        &format!("<pre>{summary}</pre>"),
        &[Series {
            label: "run",
            report: &run,
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, page) in [("matrix", &matrix_page), ("run", &run_page)] {
        let file = dir.path().join(format!("{name}.html"));
        std::fs::write(&file, page.replace("</body>", &format!("{MEASURE}</body>"))).unwrap();
        for width in [1400, 800] {
            let dom = dump_dom(&chromium, &file, &dir.path().join("profile"), (width, 3000));
            let l = layout(&dom);
            println!("{name} at {width}: {l:?}");
            let inner: i64 = l["viewport"].split('x').next().unwrap().parse().unwrap();
            assert!(inner <= width as i64 && inner > width as i64 / 2, "{l:?}");
            assert!(
                num(&l, "page.width") <= inner,
                "{name} at {width}: wider than the window: {l:?}"
            );
            for i in 0..6 {
                assert!(
                    num(&l, &format!("figure{i}.right")) <= inner,
                    "{name} at {width}: chart {i}: {l:?}"
                );
            }
            if name == "run" {
                assert_eq!(
                    num(&l, "pre0.overflow"),
                    0,
                    "{name} at {width}: the summary scrolls: {l:?}"
                );
            }
            if name == "matrix" && width == 1400 {
                assert!(
                    num(&l, "figure5.bottom") <= 3000,
                    "the rate chart is cut off: {l:?}"
                );
            }
        }
    }
}
