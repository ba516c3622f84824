//! Python tools the tests check against, each pip-installed into a venv of its own under
//! target/ on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `bin/EXE` of the venv `name` under the test target's temp dir, with `package` (pinned)
/// pip-installed; `works` says whether the tool is there and right. A venv left half-made by
/// an interrupted run is made again. `Err` says why it could not be had (pip's last line:
/// no network, no such version).
pub fn tool(
    name: &str,
    package: &str,
    exe: &str,
    works: impl Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let path = venv.join("bin").join(exe);
    if works(&path) {
        return Ok(path);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("{cmd:?} failed: {}", last.trim()))
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--timeout",
        "30",
        package,
    ]))?;
    if works(&path) {
        Ok(path)
    } else {
        Err(format!(
            "{} does not work after pip installed {package}",
            path.display()
        ))
    }
}
