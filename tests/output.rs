//! Output safety as a user meets it: paths checked before the run, devices, FIFOs and
//! symlinks left what they were, `-` as standard output, no temp files left, a closed
//! standard output or a failing write never losing the report.

mod common;

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, heavy};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The report a file (or a pipe's contents) holds.
fn report(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The names of those `paths` that are in `dir`, sorted: what `names(dir)` must be.
fn only(dir: &Path, paths: &[&Path]) -> Vec<String> {
    let mut v: Vec<String> = paths
        .iter()
        .filter(|p| p.parent() == Some(dir))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A character device node like /dev/null (1,3) or /dev/full (1,7), made in `dir` (root) so
/// a writer that replaced it would harm nothing but the test. Without the privilege to make
/// one, the system's own: a process that cannot mknod cannot replace /dev's nodes either.
fn char_device(dir: &Path, name: &str, minor: u32) -> PathBuf {
    let path = dir.join(name);
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path; mknod creates the node or fails.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, minor)) };
    if r == 0 {
        return path;
    }
    let e = std::io::Error::last_os_error();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "mknod {name}: {e}");
    let system = Path::new("/dev").join(name);
    assert!(fs::metadata(&system).unwrap().file_type().is_char_device());
    system
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// The read end of the FIFO at `path`, opened without blocking (before the writer starts:
/// tcpbench refuses a FIFO with no reader).
fn fifo_reader(path: &Path) -> fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

/// What a writer puts into the FIFO `f` reads until it closes it; a writer that never
/// comes (one that replaced the FIFO) ends the wait at `limit`.
fn read_fifo(mut f: fs::File, limit: Duration) -> Vec<u8> {
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    let started = Instant::now();
    while started.elapsed() < limit {
        match f.read(&mut buf) {
            // No writer yet (EOF before any byte), or none any more.
            Ok(0) if got.is_empty() => std::thread::sleep(Duration::from_millis(10)),
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("reading the FIFO: {e}"),
        }
    }
    got
}

/// A quick run against the embedded server.
const RUN: [&str; 3] = ["-n", "200", "-q"];

#[test]
fn a_missing_folder_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    // A target that counts what reaches it: nothing may.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let addr = target.local_addr().unwrap().to_string();
    let scenarios = dir.path().join("m.toml");
    fs::write(&scenarios, "[[scenario]]\nname = \"a\"\nconns = 10\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--target",
                &addr,
                "--duration",
                "5s",
                "--json",
                "/nonexistent/x.json",
            ],
            "--json /nonexistent/x.json: folder /nonexistent does not exist",
        ),
        (
            vec![
                "--target",
                &addr,
                "--duration",
                "5s",
                "--markdown",
                "/nonexistent/x.md",
            ],
            "--markdown /nonexistent/x.md: folder /nonexistent does not exist",
        ),
        (
            vec![
                "--target",
                &addr,
                "--duration",
                "5s",
                "--hgrm",
                "/nonexistent/h",
            ],
            "--hgrm /nonexistent/h: folder /nonexistent does not exist",
        ),
        (
            vec![
                "--target",
                &addr,
                "--duration",
                "5s",
                "--json",
                s(dir.path()),
            ],
            "is a folder",
        ),
        (
            vec![
                "matrix",
                s(&scenarios),
                "--target",
                &addr,
                "--html",
                "/nonexistent/m.html",
            ],
            "--html /nonexistent/m.html: folder /nonexistent does not exist",
        ),
        (
            vec![
                "compare",
                "a.json",
                "b.json",
                "--html",
                "/nonexistent/c.html",
            ],
            "--html /nonexistent/c.html: folder /nonexistent does not exist",
        ),
        (
            vec!["merge", "a.json", "-o", "/nonexistent/m.json"],
            "--output /nonexistent/m.json: folder /nonexistent does not exist",
        ),
        (
            vec!["rebind", "--json", "/nonexistent/r.json"],
            "--json /nonexistent/r.json: folder /nonexistent does not exist",
        ),
        (
            vec!["trace", "--svg", "/nonexistent/t.svg"],
            "--svg /nonexistent/t.svg: folder /nonexistent does not exist",
        ),
    ];
    for (args, says) in cases {
        let started = Instant::now();
        let out = bin().args(&args).output().unwrap();
        let took = started.elapsed();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(took < Duration::from_secs(1), "{args:?} took {took:?}");
    }
    assert_eq!(
        target.accept().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::WouldBlock),
        "no connection reached the target"
    );
}

#[test]
fn an_unwritable_file_is_refused_before_the_run() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let json = dir.path().join("r.json");
    fs::write(&json, "old").unwrap();
    fs::set_permissions(&json, fs::Permissions::from_mode(0o444)).unwrap();
    let mut cmd = bin();
    // SAFETY: geteuid only reads this process's id.
    if unsafe { libc::geteuid() } == 0 {
        // Root may write anything: the refusal is tried as nobody.
        cmd.uid(65534).gid(65534);
    }
    let started = Instant::now();
    let out = cmd
        .args(["--duration", "5s", "--json", s(&json)])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("--json {}: cannot be written", s(&json))),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(fs::read_to_string(&json).unwrap(), "old");
}

#[test]
fn devices_and_fifos_stay_what_they_were_and_receive_the_report() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let null = char_device(dir.path(), "null", 3);
    let rdev = fs::metadata(&null).unwrap().rdev();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let reader = {
        let f = fifo_reader(&fifo);
        std::thread::spawn(move || read_fifo(f, Duration::from_secs(30)))
    };
    let out = bin()
        .args(RUN)
        .args(["--json", s(&null), "--markdown", s(&fifo)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let markdown = String::from_utf8(reader.join().unwrap()).unwrap();
    assert!(
        markdown.contains("200"),
        "the FIFO got the report: {markdown}"
    );
    let m = fs::symlink_metadata(&null).unwrap();
    assert!(
        m.file_type().is_char_device(),
        "the device is still a device"
    );
    assert_eq!(m.rdev(), rdev);
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(
        names(dir.path()),
        only(dir.path(), &[&fifo, &null]),
        "nothing else was made"
    );
}

#[test]
fn a_symlink_stays_and_its_target_gets_the_report() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.json");
    fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink("target.json", &link).unwrap();
    let out = bin().args(RUN).args(["--json", s(&link)]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("target.json"));
    let r = report(&fs::read(&target).unwrap());
    assert_eq!(r["totals"]["attempted"], 200);
    assert_eq!(names(dir.path()), ["link.json", "target.json"]);
}

#[test]
fn a_dash_is_standard_output() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(RUN)
        .args(["--json", "-"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let r = report(&out.stdout);
    assert_eq!(r["totals"]["succeeded"], 200);
    // The summary moved to standard error, out of the JSON's way.
    assert!(
        stderr_of(&out).contains("200 attempted"),
        "{}",
        stderr_of(&out)
    );
    assert!(names(dir.path()).is_empty(), "no file named -");
}

#[test]
fn stale_temp_files_of_killed_writers_are_removed_and_none_are_left() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    // What an earlier tcpbench killed with -9 during its write left behind.
    let stale = dir.path().join(format!(".r.json.tmp.{dead}"));
    fs::write(&stale, "{\"half").unwrap();
    let json = dir.path().join("r.json");
    let out = bin().args(RUN).args(["--json", s(&json)]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(
        report(&fs::read(&json).unwrap())["totals"]["attempted"],
        200
    );
    assert_eq!(names(dir.path()), ["r.json"], "no temp file, old or new");
}

#[test]
fn a_closed_standard_output_still_writes_the_report() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    // `tcpbench -n 200 -q --json r.json | true`: the reader is gone before the summary.
    let mut child = bin()
        .args(RUN)
        .args(["--json", s(&json)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        report(&fs::read(&json).unwrap())["totals"]["attempted"],
        200
    );
}

#[test]
fn a_failing_write_leaves_the_others_written_and_exits_3() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let full = char_device(dir.path(), "full", 7);
    let json = dir.path().join("r.json");
    let out = bin()
        .args(RUN)
        .args(["--markdown", s(&full), "--json", s(&json)])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("--markdown {}: cannot write", s(&full))),
        "{err}"
    );
    assert_eq!(
        report(&fs::read(&json).unwrap())["totals"]["attempted"],
        200
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("200 attempted"));
    assert!(
        fs::symlink_metadata(&full)
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert_eq!(
        names(dir.path()),
        only(dir.path(), &[&full, &json]),
        "the JSON was written: no fallback"
    );

    // The JSON itself failing: it is kept in a fallback file, named on stderr.
    let out = bin()
        .args(RUN)
        .args(["--json", s(&full)])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let kept = err
        .lines()
        .find_map(|l| l.strip_prefix("tcpbench: the JSON report is kept in "))
        .unwrap_or_else(|| panic!("no fallback named: {err}"));
    assert_eq!(
        Path::new(kept).parent(),
        Some(fs::canonicalize(dir.path()).unwrap().as_path())
    );
    assert_eq!(report(&fs::read(kept).unwrap())["totals"]["attempted"], 200);
}

#[test]
fn merge_and_compare_write_through_the_same_rules() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = bin().args(RUN).args(["--json", s(&json)]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let null = char_device(dir.path(), "null", 3);
    let out = bin()
        .args(["merge", s(&json), "-o", "-", "--html", s(&null)])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(report(&out.stdout)["totals"]["attempted"], 200);
    assert!(
        fs::symlink_metadata(&null)
            .unwrap()
            .file_type()
            .is_char_device()
    );
    let out = bin()
        .args(["compare", s(&json), s(&json), "--html", "-"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("<!DOCTYPE html>"));
    assert!(stderr_of(&out).contains("PASS"), "{}", stderr_of(&out));
}

/// The exit status of `child` within `limit`, or `None` after killing it (a hang).
fn wait_for(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

/// Runs tcpbench with `args` in `dir` and checks it refused at once, before any run: exit 2
/// and one line that contains `says`.
fn refused(dir: &Path, args: &[&str], says: &str) {
    let started = Instant::now();
    let mut child = bin()
        .args(["--duration", "5s", "-q"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_for(&mut child, Duration::from_secs(10));
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert!(status.is_some(), "{args:?} hung: {err}");
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{args:?} ran: {took:?}");
}

#[test]
fn a_fifo_with_no_reader_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("f");
    mkfifo(&fifo);
    refused(
        dir.path(),
        &["--json", "f"],
        "--json f: a FIFO with no reader yet; start the reader first",
    );
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(names(dir.path()), ["f"]);
}

/// Whether process `pid` holds `path` open.
fn holds_open(pid: u32, path: &Path) -> bool {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|to| to == path))
        })
        .unwrap_or(false)
}

#[test]
fn a_fifo_whose_reader_left_fails_its_write_instead_of_hanging() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let fifo = fs::canonicalize(dir.path()).unwrap().join("f");
    mkfifo(&fifo);
    let reader = fifo_reader(&fifo);
    let mut child = bin()
        .args([
            "--rate",
            "200",
            "--duration",
            "2s",
            "-q",
            "--json",
            s(&fifo),
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The check holds the FIFO open through the run, so a reader sees no end of file.
    let started = Instant::now();
    while !holds_open(child.id(), &fifo) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let held = holds_open(child.id(), &fifo);
    drop(reader);
    let status = wait_for(&mut child, Duration::from_secs(60));
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert!(held, "the FIFO was not held open during the run: {err}");
    assert!(
        status.is_some(),
        "the write hung on a FIFO with no reader: {err}"
    );
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("the FIFO has no reader"), "{err}");
    let kept = err
        .lines()
        .find_map(|l| l.strip_prefix("tcpbench: the JSON report is kept in "))
        .unwrap_or_else(|| panic!("no fallback named: {err}"));
    assert!(report(&fs::read(kept).unwrap())["totals"]["attempted"].as_u64() > Some(0));
}

#[test]
fn an_output_that_is_an_input_is_refused() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.json");
    let out = bin().args(RUN).args(["--json", s(&a)]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let original = fs::read(&a).unwrap();
    fs::write(dir.path().join("in1.json"), &original).unwrap();
    fs::write(dir.path().join("in2.json"), &original).unwrap();
    fs::hard_link(dir.path().join("in2.json"), dir.path().join("hard.json")).unwrap();
    let toml = "[[scenario]]\nname = \"a\"\nconns = 10\n";
    fs::write(dir.path().join("m.toml"), toml).unwrap();
    let before = names(dir.path());
    let cases: [(&[&str], &str); 4] = [
        (
            &["compare", "a.json", "a.json", "--html", "a.json"],
            "--html a.json: is the input a.json",
        ),
        (
            &["merge", "in1.json", "in2.json", "--html", "in1.json"],
            "--html in1.json: is the input in1.json",
        ),
        (
            &["merge", "in1.json", "in2.json", "-o", "./hard.json"],
            "--output ./hard.json: is the input in2.json",
        ),
        (
            &["matrix", "m.toml", "--json", "m.toml"],
            "--json m.toml: is the input m.toml",
        ),
    ];
    for (args, says) in cases {
        let out = bin().args(args).current_dir(dir.path()).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    for name in ["a.json", "in1.json", "in2.json"] {
        assert_eq!(fs::read(dir.path().join(name)).unwrap(), original, "{name}");
    }
    assert_eq!(fs::read_to_string(dir.path().join("m.toml")).unwrap(), toml);
    assert_eq!(names(dir.path()), before, "nothing was written");
}

#[test]
fn two_spellings_of_one_path_are_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let abs = fs::canonicalize(dir.path()).unwrap();
    let x = abs.join("x.json");
    fs::write(&x, "old").unwrap();
    std::os::unix::fs::symlink("x.json", abs.join("link.json")).unwrap();
    fs::hard_link(&x, abs.join("hard.json")).unwrap();
    fs::create_dir(abs.join("hh")).unwrap();
    let before = names(&abs);
    let abs_x = s(&x).to_string();
    let missing_abs = s(&abs.join("new.json")).to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["--json", "x.json", "--html", "./x.json"],
        vec!["--json", "x.json", "--markdown", &abs_x],
        vec!["--json", "new.json", "--markdown", &missing_abs],
        vec!["--json", "x.json", "--html", "link.json"],
        vec!["--json", "x.json", "--html", "hard.json"],
        vec!["--json", "hh/total.hgrm", "--hgrm", "hh"],
        vec!["--json", "hh/../x.json", "--html", "x.json"],
        // A folder --hgrm would create, and a file on its name.
        vec!["--json", "nohh", "--hgrm", "nohh"],
        vec!["--json", "nohh", "--hgrm", "./nohh/"],
    ];
    for args in &cases {
        refused(&abs, args, "already writes to the same file");
    }
    assert_eq!(fs::read_to_string(&x).unwrap(), "old");
    assert_eq!(names(&abs), before, "nothing was written");
}

#[test]
fn a_report_lost_on_a_broken_standard_output_is_a_failed_write() {
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    // `tcpbench -n 200 -q --json - | (exec <&-; sleep 1)`: the JSON reader is gone.
    let mut child = bin()
        .args(RUN)
        .args(["--json", "-"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--json -: cannot write"), "{err}");
    let kept = err
        .lines()
        .find_map(|l| l.strip_prefix("tcpbench: the JSON report is kept in "))
        .unwrap_or_else(|| panic!("no fallback named: {err}"));
    assert_eq!(report(&fs::read(kept).unwrap())["totals"]["attempted"], 200);

    // The same through a process substitution whose reader closed its end at once.
    let script = format!(
        "exec 3> >(exec <&-; sleep 2); exec {} -n 200 -q --json /dev/fd/3",
        env!("CARGO_BIN_EXE_tcpbench")
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--json /dev/fd/3: cannot write"), "{err}");
    assert!(err.contains("the JSON report is kept in"), "{err}");
}

#[test]
fn paths_that_cannot_be_files_are_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("x.json"), "old").unwrap();
    mkfifo(&dir.path().join("fifo"));
    let _sock = std::os::unix::net::UnixListener::bind(dir.path().join("us.sock")).unwrap();
    let before = names(dir.path());
    let cases: [(&[&str], &str); 4] = [
        (
            &["--json", "nothere/"],
            "--json nothere/: a path ending in / names a folder",
        ),
        (
            &["--json", "x.json/"],
            "--json x.json/: a path ending in / names a folder",
        ),
        (
            &["--markdown", "fifo/"],
            "--markdown fifo/: a path ending in / names a folder",
        ),
        (
            &["--json", "us.sock"],
            "--json us.sock: is a Unix socket, which cannot be opened as a file",
        ),
    ];
    for (args, says) in cases {
        refused(dir.path(), args, says);
    }
    assert_eq!(
        fs::read_to_string(dir.path().join("x.json")).unwrap(),
        "old"
    );
    let sock = fs::symlink_metadata(dir.path().join("us.sock")).unwrap();
    assert!(sock.file_type().is_socket());
    assert_eq!(names(dir.path()), before, "nothing was made");
}

#[test]
fn a_replaced_file_keeps_its_owner_and_mode() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid only reads this process's id.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED a_replaced_file_keeps_its_owner_and_mode: needs root to own a file as another user"
        );
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        return;
    }
    let _guard = heavy();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    fs::write(&json, "old").unwrap();
    std::os::unix::fs::chown(&json, Some(65534), Some(65534)).unwrap();
    fs::set_permissions(&json, fs::Permissions::from_mode(0o640)).unwrap();
    let out = bin().args(RUN).args(["--json", s(&json)]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let m = fs::metadata(&json).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65534), "the owner is kept");
    assert_eq!(m.permissions().mode() & 0o7777, 0o640, "the mode is kept");
    assert_eq!(
        report(&fs::read(&json).unwrap())["totals"]["attempted"],
        200
    );
}
