//! An external server for a run to load: started on a fresh folder and port in the run's own
//! network namespace, waited for (bounded) until it listens, and always stopped.
//!
//! A [`ServerSpec`] is a command with placeholders, filled in at each start:
//!
//! - `{dir}`: a fresh folder for this start (pid files, logs, temp paths); removed after a
//!   clean stop, kept when the server failed and named in the error.
//! - `{port}`: a loopback port free a moment ago (bound on port 0 and released), or the
//!   ready address's own port when that is fixed.
//! - `{fill:PATH}`: the file at PATH with `{dir}` and `{port}` filled in, written into
//!   `{dir}` under its own name; the argument becomes the written file's path. This is how a
//!   configuration template of `reports/servers/` reaches the server.
//!
//! The process gets a process group of its own (nginx's workers are stopped with their
//! master) and, on Linux, `PR_SET_PDEATHSIG`: if tcpbench dies (a second Ctrl-C exits at
//! once, a SIGKILL), the kernel sends the server its stop signal. Otherwise [`Running::stop`]
//! (or its `Drop`) sends the stop signal to the group, waits a grace, then SIGKILLs it. Its
//! stdout and stderr go to `{dir}/server.out`; their tail is kept when it failed.
//!
//! The server and the ready check run on the calling thread's network namespace: under
//! `--isolate`, call [`ServerSpec::start`] on the thread that entered the namespace
//! ([`crate::run_with`]'s hook runs there).

mod proc;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use proc::listening;

/// Where a server listens unless told otherwise.
pub const DEFAULT_READY: &str = "127.0.0.1:{port}";
/// How long a server may take to listen unless told otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after its stop signal before it gets SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// Lines of the server's output kept when it failed.
pub const TAIL_LINES: usize = 20;
/// How often the ready and stop waits look again.
const POLL: Duration = Duration::from_millis(10);

/// The signals a server may be stopped with.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signal {
    #[serde(rename = "SIGTERM")]
    Term,
    #[serde(rename = "SIGINT")]
    Int,
    #[serde(rename = "SIGQUIT")]
    Quit,
    #[serde(rename = "SIGHUP")]
    Hup,
    #[serde(rename = "SIGUSR1")]
    Usr1,
    #[serde(rename = "SIGUSR2")]
    Usr2,
    #[serde(rename = "SIGKILL")]
    Kill,
}

impl Signal {
    const ALL: [(Signal, &'static str, i32); 7] = [
        (Signal::Term, "SIGTERM", libc::SIGTERM),
        (Signal::Int, "SIGINT", libc::SIGINT),
        (Signal::Quit, "SIGQUIT", libc::SIGQUIT),
        (Signal::Hup, "SIGHUP", libc::SIGHUP),
        (Signal::Usr1, "SIGUSR1", libc::SIGUSR1),
        (Signal::Usr2, "SIGUSR2", libc::SIGUSR2),
        (Signal::Kill, "SIGKILL", libc::SIGKILL),
    ];

    /// `SIGTERM`, `TERM` or `term`; the error lists the names taken.
    pub fn parse(s: &str) -> Result<Signal, String> {
        let up = s.trim().to_ascii_uppercase();
        let up = up.strip_prefix("SIG").unwrap_or(&up);
        Self::ALL
            .iter()
            .find(|(_, name, _)| name[3..] == *up)
            .map(|(sig, _, _)| *sig)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(_, n, _)| *n).collect();
                format!(
                    "'{s}' is not a stop signal; use one of {}",
                    names.join(", ")
                )
            })
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(s, _, _)| *s == self)
            .expect("listed")
            .1
    }

    fn number(self) -> i32 {
        Self::ALL
            .iter()
            .find(|(s, _, _)| *s == self)
            .expect("listed")
            .2
    }

    fn name_of(number: i32) -> String {
        Self::ALL
            .iter()
            .find(|(_, _, n)| *n == number)
            .map(|(_, name, _)| name.to_string())
            .unwrap_or_else(|| format!("signal {number}"))
    }
}

/// A server to start for a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerSpec {
    /// The program and its arguments, with `{dir}`, `{port}` and `{fill:PATH}` placeholders.
    pub command: Vec<String>,
    /// `HOST:PORT` the server listens on once it is ready; `{port}` allowed.
    pub ready: String,
    /// How long it may take to listen there.
    pub ready_timeout: Duration,
    /// The signal that asks it to stop.
    pub stop: Signal,
    /// How long it may take to exit after `stop` before SIGKILL.
    pub grace: Duration,
    /// The folder a relative `{fill:PATH}` is found in (a scenario file's own folder).
    pub base: PathBuf,
}

impl ServerSpec {
    /// A spec with the defaults: ready on 127.0.0.1:{port} within 10 s, stopped by SIGTERM
    /// with a 5 s grace, templates found from the current folder.
    pub fn new(command: Vec<String>) -> ServerSpec {
        ServerSpec {
            command,
            ready: DEFAULT_READY.into(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            stop: Signal::Term,
            grace: DEFAULT_GRACE,
            base: PathBuf::new(),
        }
    }

    /// The ready address with `port` for `{port}`.
    pub fn ready_addr(&self, port: u16) -> Result<SocketAddr, String> {
        let text = self.ready.replace("{port}", &port.to_string());
        crate::parse::target(&text)
    }

    /// Checks what can be checked before any start: a command, a ready address, templates
    /// that can be read. The message names the part at fault and the fix.
    pub fn check(&self) -> Result<(), String> {
        if self.command.first().is_none_or(|p| p.trim().is_empty()) {
            return Err("the command is empty; give the program and its arguments".into());
        }
        self.ready_addr(1)
            .map_err(|e| format!("ready: {e}; write HOST:PORT, e.g. 127.0.0.1:{{port}}"))?;
        for arg in &self.command {
            for path in fills(arg) {
                let p = self.base.join(path);
                std::fs::metadata(&p)
                    .map_err(|e| format!("{{fill:{path}}}: cannot read {} ({e})", p.display()))?;
            }
        }
        Ok(())
    }

    /// Starts the server and waits until it listens on the ready address. `interrupted` is
    /// asked while waiting; when it says yes the server is stopped and the start fails.
    pub fn start(&self, interrupted: &mut dyn FnMut() -> bool) -> Result<Running, LaunchError> {
        self.check().map_err(LaunchError::Setup)?;
        let fixed = self.ready_addr(0).map_err(LaunchError::Setup)?;
        let addr = if self.ready.contains("{port}") {
            let l = TcpListener::bind(SocketAddr::new(fixed.ip(), 0)).map_err(|e| {
                LaunchError::Setup(format!("cannot find a free port on {}: {e}", fixed.ip()))
            })?;
            let port = l
                .local_addr()
                .map_err(|e| LaunchError::Setup(e.to_string()))?;
            self.ready_addr(port.port()).map_err(LaunchError::Setup)?
        } else {
            fixed
        };
        if listening(addr) {
            return Err(LaunchError::Setup(format!(
                "something already listens on {addr}; stop it, or let the server take a free port with ready = \"127.0.0.1:{{port}}\""
            )));
        }
        let dir = fresh_dir().map_err(|e| {
            LaunchError::Setup(format!("cannot create a folder for the server: {e}"))
        })?;
        let command = self.fill(&dir, addr.port()).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
        })?;
        let output = dir.join("server.out");
        let child = spawn(&command, &dir, &output, self.stop).map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            LaunchError::Setup(format!("cannot start `{}`: {e}", command[0]))
        })?;
        let mut running = Running {
            child: Some(child),
            command,
            addr,
            dir,
            output,
            stop: self.stop,
            grace: self.grace,
        };
        let until = Instant::now() + self.ready_timeout;
        loop {
            if proc::exited(running.pid()) {
                let run = running.finish(Ending::BeforeReady);
                return Err(LaunchError::Failed(Box::new(run)));
            }
            if listening(addr) {
                return Ok(running);
            }
            if interrupted() {
                let run = running.finish(Ending::Interrupted);
                return Err(LaunchError::Interrupted(Box::new(run)));
            }
            if Instant::now() >= until {
                let run = running.finish(Ending::NotReady(self.ready_timeout));
                return Err(LaunchError::Failed(Box::new(run)));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The command with its placeholders filled in, templates written into `dir`.
    fn fill(&self, dir: &Path, port: u16) -> Result<Vec<String>, LaunchError> {
        let plain = |s: &str| {
            s.replace("{dir}", &dir.display().to_string())
                .replace("{port}", &port.to_string())
        };
        let mut out = Vec::with_capacity(self.command.len());
        for arg in &self.command {
            let mut arg = arg.clone();
            for path in fills(&arg.clone()) {
                let source = self.base.join(path);
                let text = std::fs::read_to_string(&source).map_err(|e| {
                    LaunchError::Setup(format!("cannot read {}: {e}", source.display()))
                })?;
                let name = source.file_name().unwrap_or(source.as_os_str());
                let written = dir.join(name);
                std::fs::write(&written, plain(&text)).map_err(|e| {
                    LaunchError::Setup(format!("cannot write {}: {e}", written.display()))
                })?;
                arg = arg.replace(&format!("{{fill:{path}}}"), &written.display().to_string());
            }
            out.push(plain(&arg));
        }
        Ok(out)
    }
}

/// The PATHs of the `{fill:PATH}` placeholders in `arg`.
fn fills(arg: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(at) = rest.find("{fill:") {
        let tail = &rest[at + 6..];
        let Some(end) = tail.find('}') else { break };
        out.push(&tail[..end]);
        rest = &tail[end + 1..];
    }
    out
}

/// A new private folder under the temp dir, readable by others (nginx's workers run as
/// nobody and may serve files from it).
fn fresh_dir() -> io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tcpbench-server-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::set_permissions(
                    &dir,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Starts `command` in `dir`, its output to `output`, in a process group of its own, told
/// `stop` by the kernel if the thread that started it ends first.
fn spawn(command: &[String], dir: &Path, output: &Path, stop: Signal) -> io::Result<Child> {
    let log = std::fs::File::create(output)?;
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        let sig = stop.number();
        // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, sig) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent died between fork and prctl: nobody would stop us.
                if libc::getppid() != parent {
                    return Err(io::Error::other("tcpbench exited while starting it"));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stop;
    cmd.spawn()
}

/// A server that listens; stopped by [`Running::stop`] or on drop.
#[derive(Debug)]
pub struct Running {
    /// `None` once reaped.
    child: Option<Child>,
    command: Vec<String>,
    addr: SocketAddr,
    dir: PathBuf,
    output: PathBuf,
    stop: Signal,
    grace: Duration,
}

/// How a server's life ended, as [`Running::finish`] is told.
enum Ending {
    /// Exited before it listened.
    BeforeReady,
    /// Did not listen within this long.
    NotReady(Duration),
    /// The user interrupted the wait.
    Interrupted,
    /// Stopped after the run.
    Stopped,
}

impl Running {
    /// The address it listens on: the run's target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Its `{dir}`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops it (stop signal to its group, SIGKILL after the grace) and says how it ended. A
    /// server that had ended on its own before this has failed.
    pub fn stop(mut self) -> ServerRun {
        self.finish(Ending::Stopped)
    }

    fn finish(&mut self, ending: Ending) -> ServerRun {
        let pid = self.pid();
        let ended_itself = proc::exited(pid);
        let (status, killed) = match self.child.take() {
            Some(child) => terminate(child, self.stop, self.grace),
            None => (None, false),
        };
        let addr = self.addr;
        let of = describe(status);
        let (exit, failed) = match ending {
            Ending::BeforeReady => (format!("exited ({of}) before it listened on {addr}"), true),
            Ending::NotReady(t) => (
                format!(
                    "not listening on {addr} after {}; stopped ({of})",
                    humantime::format_duration(t)
                ),
                true,
            ),
            Ending::Interrupted => (
                format!("interrupted before it listened; stopped ({of})"),
                true,
            ),
            Ending::Stopped if ended_itself => {
                (format!("ended on its own during the run ({of})"), true)
            }
            Ending::Stopped if killed => (
                format!(
                    "did not exit within {} of {}; killed ({of})",
                    humantime::format_duration(self.grace),
                    self.stop.name()
                ),
                true,
            ),
            Ending::Stopped => (format!("stopped by {} ({of})", self.stop.name()), false),
        };
        let tail = if failed {
            tail(&self.output, TAIL_LINES)
        } else {
            Vec::new()
        };
        let dir = if failed {
            Some(self.dir.display().to_string())
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
            None
        };
        ServerRun {
            command: self.command.clone(),
            pid,
            addr,
            exit,
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()).map(Signal::name_of),
            failed,
            tail,
            dir,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child, self.stop, self.grace);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `stop` to the child's process group, SIGKILL to it after `grace`, then reaps the child.
/// Returns its status and whether it had to be killed.
fn terminate(mut child: Child, stop: Signal, grace: Duration) -> (Option<ExitStatus>, bool) {
    let group = -(child.id() as libc::pid_t);
    let mut killed = false;
    // Polled without reaping: while the leader is unreaped, its PID (the group's id) stays ours.
    if !proc::exited(child.id()) {
        // SAFETY: kill(2) on our child's process group; no memory is involved.
        unsafe { libc::kill(group, stop.number()) };
        let until = Instant::now() + grace;
        while !proc::exited(child.id()) {
            if Instant::now() >= until {
                killed = true;
                break;
            }
            std::thread::sleep(POLL);
        }
    }
    // SAFETY: as above; this also ends any process of the group that outlived the leader.
    unsafe { libc::kill(group, libc::SIGKILL) };
    (child.wait().ok(), killed)
}

/// `exit 0`, `exit 1`, `killed by SIGTERM`.
fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(sig)) => format!("killed by {}", Signal::name_of(sig)),
            _ => s.to_string(),
        },
        None => "status unknown".into(),
    }
}

/// The last `n` lines of `path`.
fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// One start of a server, as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerRun {
    /// The command as run, placeholders filled in.
    pub command: Vec<String>,
    pub pid: u32,
    /// The address it was to listen on.
    pub addr: SocketAddr,
    /// How it ended, in words: `stopped by SIGTERM (exit 0)`, `exited (exit 1) before it
    /// listened on 127.0.0.1:40211`.
    pub exit: String,
    /// Its exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<String>,
    /// It did not listen in time, ended on its own, or had to be killed.
    pub failed: bool,
    /// When it failed: the last lines of its stdout and stderr.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<String>,
    /// When it failed: its `{dir}`, kept (its logs are there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// Before any process ran: the spec, the folder, the port, a template.
    #[error("server: {0}")]
    Setup(String),
    /// It ran and did not listen; the run says how, with its output's tail.
    #[error("server `{}` {}{}", shell_line(&.0.command), .0.exit, kept(.0))]
    Failed(Box<ServerRun>),
    /// Ctrl-C while waiting for it.
    #[error("server `{}` {}", shell_line(&.0.command), .0.exit)]
    Interrupted(Box<ServerRun>),
}

/// `words` as one line a shell would split back: words with spaces or quotes are quoted.
pub fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && !w.contains(|c: char| c.is_whitespace() || "'\"\\$;&|<>()*?#`".contains(c))
            {
                w.clone()
            } else if !w.contains('\'') {
                format!("'{w}'")
            } else {
                format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn kept(run: &ServerRun) -> String {
    run.dir
        .as_ref()
        .map(|d| format!("; its folder is kept: {d}"))
        .unwrap_or_default()
}

impl LaunchError {
    /// The server's run, when one was started.
    pub fn run(&self) -> Option<&ServerRun> {
        match self {
            LaunchError::Setup(_) => None,
            LaunchError::Failed(r) | LaunchError::Interrupted(r) => Some(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name() {
        assert_eq!(Signal::parse("SIGTERM"), Ok(Signal::Term));
        assert_eq!(Signal::parse("quit"), Ok(Signal::Quit));
        assert_eq!(Signal::parse("SIGKILL").unwrap().name(), "SIGKILL");
        let e = Signal::parse("SIGSTOP").unwrap_err();
        assert!(e.contains("SIGTERM, SIGINT"), "{e}");
    }

    #[test]
    fn commands_show_as_a_shell_would_split_them() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shell_line(&w(&["nginx", "-g", "daemon off;", "", "it's"])),
            "nginx -g 'daemon off;' '' \"it's\""
        );
        assert_eq!(
            crate::ab::split_args(&shell_line(&w(&["a b", "c;d", "x"]))).unwrap(),
            ["a b", "c;d", "x"]
        );
    }

    #[test]
    fn placeholders_are_found_and_checked() {
        assert_eq!(
            fills("-c {fill:a.conf} {fill:b/c.conf}"),
            ["a.conf", "b/c.conf"]
        );
        assert!(fills("{dir}/x {fill:").is_empty());
        let mut s = ServerSpec::new(vec![]);
        assert!(s.check().unwrap_err().contains("command is empty"));
        s.command = vec!["nginx".into(), "-c".into(), "{fill:nope.conf}".into()];
        assert!(
            s.check()
                .unwrap_err()
                .contains("{fill:nope.conf}: cannot read")
        );
        s.command.truncate(1);
        s.ready = "localhost".into();
        assert!(s.check().unwrap_err().starts_with("ready: "));
    }

    #[test]
    fn a_command_gets_its_folder_port_and_filled_templates() {
        let src = std::env::temp_dir().join(format!("tcpbench-fill-{}.conf", std::process::id()));
        std::fs::write(&src, "listen {port}; root {dir};\n").unwrap();
        let spec = ServerSpec {
            base: src.parent().unwrap().into(),
            ..ServerSpec::new(vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "cat {{fill:{}}}; exec sleep 30",
                    src.file_name().unwrap().to_str().unwrap()
                ),
            ])
        };
        let dir = fresh_dir().unwrap();
        let cmd = spec.fill(&dir, 4242).unwrap();
        let written = dir.join(src.file_name().unwrap());
        assert_eq!(cmd[2], format!("cat {}; exec sleep 30", written.display()));
        assert_eq!(
            std::fs::read_to_string(&written).unwrap(),
            format!("listen 4242; root {};\n", dir.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_file(&src).unwrap();
    }
}
