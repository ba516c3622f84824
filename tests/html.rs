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

/// `chromium --headless --dump-dom file://…`: the DOM after parsing, as Chromium serialises it.
fn dump_dom(chromium: &Path, file: &Path, profile: &Path) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
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
    let dom = dump_dom(&chromium, &file, &dir.path().join("profile"));
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
    // Latency and rate charts: one line per series, legend "a" and "b".
    for i in [0, 1, 2, 3, 5] {
        assert!(data_lines(charts[i]) >= 2, "chart {i}");
        assert!(charts[i].contains(">\na\n</text>") || charts[i].contains(">a</text>"));
        assert!(charts[i].contains(">\nb\n</text>") || charts[i].contains(">b</text>"));
    }
    // TIME_WAIT: the client side of both series (the server's when it was counted).
    assert!(charts[4].contains("a client") && charts[4].contains("b client"));
    if report.tcp_states.server_observed {
        assert!(charts[4].contains("a server") && charts[4].contains("b server"));
    }
    assert!(!dom.contains("no data"));
}
