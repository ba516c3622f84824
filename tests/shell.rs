//! `tcpbench completions` and `tcpbench man`: what a shell and man read.

mod common;

use common::bin;

fn stdout(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completion_parses_and_offers_the_flags_and_their_values() {
    let script = stdout(&["completions", "bash"]);
    for word in ["--close", "--conns", "client-nowait", "matrix", "compare"] {
        assert!(script.contains(word), "{word} is not offered");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tcpbench.bash");
    std::fs::write(&path, &script).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn zsh_and_fish_completions_name_the_subcommands() {
    for shell in ["zsh", "fish"] {
        let script = stdout(&["completions", shell]);
        assert!(
            script.contains("trace") && script.contains("close"),
            "{shell}"
        );
    }
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let page = stdout(&["man"]);
    assert!(
        page.contains(".TH tcpbench 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for sub in ["run", "serve", "compare", "matrix", "ab", "trace"] {
        assert!(page.contains(sub), "{sub}");
    }
}

#[test]
fn an_unknown_shell_is_one_line_with_the_choices() {
    let out = bin().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().count() == 1 && err.contains("bash"), "{err}");
}
