//! The crate's shape, checked: the `use` graph between top-level modules has no circle, and
//! the lower layers never reach up (config knows nothing of cli, load and server nothing of
//! report, nothing below commands knows commands). Read from the sources, tests excluded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the crate's top-level modules its non-test code names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let top = top.trim_end_matches(".rs").to_string();
            if top == "main" || top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let deps = g.entry(top.clone()).or_default();
            for line in code.lines() {
                let line = line.split("//").next().unwrap_or("");
                for part in line.split("crate::").skip(1) {
                    let name: String = part
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != top {
                        deps.insert(name);
                    }
                }
            }
        }
    }
    // Names that are items of lib.rs (crate::run, crate::isolate), not modules.
    let modules: BTreeSet<String> = g.keys().cloned().collect();
    for deps in g.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    g
}

/// A path from `from` back to itself, if there is one.
fn circle(g: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_string(), vec![from.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in g.get(&node).into_iter().flatten() {
            if next == from {
                let mut p = path.clone();
                p.push(next.clone());
                return Some(p);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_circle() {
    let g = graph();
    assert!(g.len() > 10, "the sources were not found: {g:?}");
    for m in g.keys() {
        if let Some(c) = circle(&g, m) {
            panic!("a circle of imports: {}", c.join(" -> "));
        }
    }
}

#[test]
fn lower_layers_do_not_reach_up() {
    let g = graph();
    let forbidden: [(&str, &[&str]); 7] = [
        (
            "config",
            &["cli", "load", "server", "report", "commands", "output"],
        ),
        (
            "failure",
            &["load", "server", "report", "stats", "cli", "config"],
        ),
        ("stats", &["load", "report", "cli", "commands"]),
        (
            "load",
            &["report", "cli", "commands", "output", "compare", "matrix"],
        ),
        ("server", &["report", "cli", "commands", "output", "load"]),
        (
            "report",
            &["cli", "commands", "output", "compare", "matrix"],
        ),
        // cli is an edge: its resolve may use the parsers below it, never what runs it.
        ("cli", &["commands", "output", "report", "matrix"]),
    ];
    for (low, above) in forbidden {
        let deps = g.get(low).cloned().unwrap_or_default();
        for a in above {
            assert!(!deps.contains(*a), "{low} reaches up to {a}: {deps:?}");
        }
    }
    for (m, deps) in &g {
        assert!(
            m == "commands" || !deps.contains("commands"),
            "{m} reaches up to commands"
        );
    }
}
