//! Real servers as a test's own processes: nginx and redis-server, each in a fresh tempdir,
//! on a free loopback port, with a configuration the launcher writes; stopped by PID on
//! drop. Never the system service, never a fixed port.
//!
//! A launcher picks a port by binding 127.0.0.1:0 and releasing it, starts the server on
//! it, and waits (bounded) until a LISTEN socket on that port belongs to the server's own
//! process; a server that lost the port to someone else is started again on another. Each
//! server runs in a process group of its own (its PID), so nginx's workers are stopped with
//! their master: SIGTERM to the group, then SIGKILL after a grace. If the test process dies
//! first, the server gets SIGTERM from the kernel (PR_SET_PDEATHSIG; it follows the thread
//! that started it, so start and drop a server on the same thread).
//!
//! Readers say what the server saw: nginx's access-log line count, Redis `INFO stats`.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to listen.
const READY: Duration = Duration::from_secs(10);
/// How long a stopping server may take after SIGTERM before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(3);
/// Ports tried before a launcher gives up.
const PORT_TRIES: usize = 5;

/// The path of `name` on PATH or in the sbin folders (nginx lives in /usr/sbin).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The binary `name` (from Debian's `package`), or `None` after saying the test is skipped.
/// Under CI (env CI set) a missing binary fails the test instead: .ci/run installs it.
pub fn require(name: &str, package: &str) -> Option<PathBuf> {
    if let Some(p) = find_binary(name) {
        return Some(p);
    }
    super::require(&format!("{name} (apt-get install {package})"), false);
    None
}

/// `template` with `{dir}` and `{port}` filled in.
pub fn fill(template: &str, dir: &Path, port: u16) -> String {
    template
        .replace("{dir}", &dir.display().to_string())
        .replace("{port}", &port.to_string())
}

/// A loopback port free a moment ago.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A running server process and its folder.
pub struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    /// The server's stdout and stderr.
    output: PathBuf,
    /// Dropped after the process is stopped (fields drop in order).
    dir: tempfile::TempDir,
}

/// How a server is started on a port: the arguments, after writing what it needs in `dir`.
pub type Launch<'a> = dyn Fn(&Path, u16) -> io::Result<Vec<OsString>> + 'a;

impl Server {
    /// Starts `binary` (its output to `{dir}/{name}.out`) with the arguments `launch` gives
    /// for a fresh port, until one start listens; the error holds the tail of the server's
    /// output. Any server that takes its port as an argument or in a file can be run so.
    pub fn start(name: &'static str, binary: &Path, launch: &Launch) -> io::Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tcpbench-{name}-"))
            .tempdir()?;
        // nginx's workers run as nobody: they must reach static files in here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        let output = dir.path().join(format!("{name}.out"));
        let mut last = String::new();
        for _ in 0..PORT_TRIES {
            let port = free_port()?;
            let args = launch(dir.path(), port)?;
            let log = std::fs::File::create(&output)?;
            let mut cmd = Command::new(binary);
            cmd.args(&args)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0);
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = cmd.spawn()?;
            match wait_listening(&mut child, port) {
                Ok(()) => {
                    return Ok(Server {
                        name,
                        child,
                        port,
                        output,
                        dir,
                    });
                }
                Err(e) => {
                    stop(&mut child);
                    // nginx says why in its error log, Redis on stdout.
                    let error_log = tail(&dir.path().join("error.log"), 10);
                    last = format!("{e}; its output ends:\n{}\n{error_log}", tail(&output, 10));
                    // Someone took the port between our release and the server's bind: retry.
                    if !last.contains("in use") {
                        return Err(io::Error::other(format!("{name}: {last}")));
                    }
                }
            }
        }
        Err(io::Error::other(format!(
            "{name}: no free port in {PORT_TRIES} tries; {last}"
        )))
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `lines` lines of the server's stdout and stderr.
    pub fn output_tail(&self, lines: usize) -> String {
        tail(&self.output, lines)
    }

    /// Whether the server process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child);
        if std::thread::panicking() {
            eprintln!("{} output:\n{}", self.name, self.output_tail(20));
        }
    }
}

/// Waits until a LISTEN socket on `port` belongs to `child`.
fn wait_listening(child: &mut Child, port: u16) -> io::Result<()> {
    let until = Instant::now() + READY;
    while Instant::now() < until {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "exited with {status} before it listened"
            )));
        }
        if listener_inode(port).is_some_and(|i| owns_socket(child.id(), i)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(io::Error::other(format!(
        "not listening on port {port} after {READY:?}"
    )))
}

/// SIGTERM to `child`'s process group, SIGKILL after [`GRACE`], then reaps it.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let group = -(child.id() as i32);
    // SAFETY: kill(2) on our child's process group; no memory is involved.
    unsafe { libc::kill(group, libc::SIGTERM) };
    let until = Instant::now() + GRACE;
    // Polled without reaping: while the leader is unreaped its PID, the group id, stays ours.
    while Instant::now() < until && !exited(child.id()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: as above; this also ends workers that outlived their master.
    unsafe { libc::kill(group, libc::SIGKILL) };
    let _ = child.wait();
}

/// Whether process `pid` has exited (a zombie not yet reaped, or gone).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

/// The inode of the IPv4 socket listening on 127.0.0.1:`port` (or 0.0.0.0:`port`).
fn listener_inode(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && local.iter().any(|l| l == f[1]) && f[3] == "0A")
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

/// Whether process `pid` holds the socket with `inode`.
fn owns_socket(pid: u32, inode: u64) -> bool {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()))
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What nginx answers on `/`.
#[derive(Clone, Debug)]
pub enum NginxBody {
    /// `return 200 "TEXT"`.
    Return(String),
    /// A static file served from `{dir}/www/index.html`.
    Static(Vec<u8>),
}

/// The nginx configuration the launcher writes.
#[derive(Clone, Debug)]
pub struct NginxConf {
    /// `listen ... backlog=N`.
    pub backlog: u32,
    /// `listen ... reuseport`: one listening socket per worker.
    pub reuseport: bool,
    pub workers: u32,
    pub body: NginxBody,
    /// More directives for the `server` block, as `lingering_close off;`.
    pub server_extra: String,
}

impl Default for NginxConf {
    fn default() -> Self {
        NginxConf {
            backlog: 511,
            reuseport: false,
            workers: 1,
            body: NginxBody::Return("ok".into()),
            server_extra: String::new(),
        }
    }
}

impl NginxConf {
    /// The configuration, with `{dir}` and `{port}` to fill.
    pub fn render(&self) -> String {
        let location = match &self.body {
            NginxBody::Return(text) => format!("return 200 \"{text}\";"),
            NginxBody::Static(_) => "root {dir}/www;".to_string(),
        };
        format!(
            "worker_processes {workers};
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log notice;
events {{ worker_connections 4096; }}
http {{
    access_log {{dir}}/access.log;
    client_body_temp_path {{dir}}/body;
    proxy_temp_path {{dir}}/proxy;
    fastcgi_temp_path {{dir}}/fastcgi;
    uwsgi_temp_path {{dir}}/uwsgi;
    scgi_temp_path {{dir}}/scgi;
    server {{
        listen 127.0.0.1:{{port}} backlog={backlog}{reuseport};
        {extra}
        location / {{ {location} }}
    }}
}}
",
            workers = self.workers,
            backlog = self.backlog,
            reuseport = if self.reuseport { " reuseport" } else { "" },
            extra = self.server_extra,
        )
    }
}

/// nginx, started as `nginx -p {dir} -c nginx.conf -e {dir}/error.log -g 'daemon off;'`.
pub struct Nginx {
    pub server: Server,
}

impl Nginx {
    /// The nginx binary, or `None` after saying the test is skipped.
    pub fn binary() -> Option<PathBuf> {
        require("nginx", "nginx-light")
    }

    /// Starts nginx with `conf`.
    pub fn start(binary: &Path, conf: &NginxConf) -> io::Result<Nginx> {
        let page = match &conf.body {
            NginxBody::Static(bytes) => Some(bytes.clone()),
            NginxBody::Return(_) => None,
        };
        Nginx::start_template(binary, &conf.render(), page.as_deref())
    }

    /// Starts nginx with a configuration `template` (as in reports/servers/), `{dir}` and
    /// `{port}` filled in; `page`, if given, is written to `{dir}/www/index.html`.
    pub fn start_template(binary: &Path, template: &str, page: Option<&[u8]>) -> io::Result<Nginx> {
        let launch = |dir: &Path, port: u16| -> io::Result<Vec<OsString>> {
            if let Some(page) = page {
                std::fs::create_dir_all(dir.join("www"))?;
                std::fs::write(dir.join("www/index.html"), page)?;
            }
            std::fs::write(dir.join("nginx.conf"), fill(template, dir, port))?;
            let error_log = dir.join("error.log");
            Ok(vec![
                "-p".into(),
                dir.into(),
                "-c".into(),
                "nginx.conf".into(),
                "-e".into(),
                error_log.into(),
                "-g".into(),
                "daemon off;".into(),
            ])
        };
        Server::start("nginx", binary, &launch).map(|server| Nginx { server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Requests nginx has logged: the access log's lines.
    pub fn access_count(&self) -> usize {
        std::fs::read_to_string(self.server.dir().join("access.log"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// The access-log count once it reaches `at_least`, or what it is after `limit`. nginx
    /// logs a request after its response is sent, so a client may see it first.
    pub fn wait_access_count(&self, at_least: usize, limit: Duration) -> usize {
        let until = Instant::now() + limit;
        loop {
            let n = self.access_count();
            if n >= at_least || Instant::now() >= until {
                return n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last `lines` lines of nginx's error log.
    pub fn error_log(&self, lines: usize) -> String {
        tail(&self.server.dir().join("error.log"), lines)
    }
}

/// The redis-server options the launcher passes.
#[derive(Clone, Debug, Default)]
pub struct RedisConf {
    /// `--tcp-backlog N`; Redis's default is 511.
    pub tcp_backlog: Option<u32>,
}

/// The counters of Redis `INFO stats` the tests read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RedisStats {
    /// Connections accepted, this reader's own connection included.
    pub total_connections_received: u64,
    /// Commands processed; an INFO is counted after its reply, so each reading includes the
    /// reading before it.
    pub total_commands_processed: u64,
}

/// redis-server, started as `redis-server --port P --bind 127.0.0.1 --save '' --appendonly no
/// --dir {dir}` (or with a configuration file).
pub struct Redis {
    pub server: Server,
    /// The connection `stats` reads INFO on, opened at the first reading and kept, so
    /// readings add no connections after the first.
    stats_conn: Option<TcpStream>,
}

impl Redis {
    /// The redis-server binary, or `None` after saying the test is skipped.
    pub fn binary() -> Option<PathBuf> {
        require("redis-server", "redis-server")
    }

    pub fn start(binary: &Path, conf: &RedisConf) -> io::Result<Redis> {
        let launch = |dir: &Path, port: u16| -> io::Result<Vec<OsString>> {
            let mut args: Vec<OsString> = vec![
                "--port".into(),
                port.to_string().into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                "".into(),
                "--appendonly".into(),
                "no".into(),
                "--daemonize".into(),
                "no".into(),
                "--dir".into(),
                dir.into(),
            ];
            if let Some(n) = conf.tcp_backlog {
                args.extend(["--tcp-backlog".into(), n.to_string().into()]);
            }
            Ok(args)
        };
        Server::start("redis", binary, &launch).map(|server| Redis {
            server,
            stats_conn: None,
        })
    }

    /// Starts redis-server with a configuration file `template` (as in reports/servers/),
    /// `{dir}` and `{port}` filled in.
    pub fn start_template(binary: &Path, template: &str) -> io::Result<Redis> {
        let launch = |dir: &Path, port: u16| -> io::Result<Vec<OsString>> {
            let file = dir.join("redis.conf");
            std::fs::write(&file, fill(template, dir, port))?;
            Ok(vec![file.into()])
        };
        Server::start("redis", binary, &launch).map(|server| Redis {
            server,
            stats_conn: None,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Reads `INFO stats`.
    pub fn stats(&mut self) -> io::Result<RedisStats> {
        let info = self.command(&["INFO", "stats"])?;
        let field = |name: &str| -> io::Result<u64> {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
                .ok_or_else(|| io::Error::other(format!("INFO stats has no {name}")))
        };
        Ok(RedisStats {
            total_connections_received: field("total_connections_received")?,
            total_commands_processed: field("total_commands_processed")?,
        })
    }

    /// Sends one command on the stats connection and reads its reply (see [`read_reply`]).
    pub fn command(&mut self, words: &[&str]) -> io::Result<String> {
        if self.stats_conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            self.stats_conn = Some(s);
        }
        let conn = self.stats_conn.as_mut().expect("connected above");
        conn.write_all(&resp_array(words))?;
        read_reply(conn)
    }
}

/// `words` as a RESP array of bulk strings.
pub fn resp_array(words: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    out
}

/// Reads one reply: a `+`/`:` line's text, a `$` bulk string, an array's elements one per
/// line (a null is empty); `-` is an error.
fn read_reply(conn: &mut TcpStream) -> io::Result<String> {
    let line = read_line(conn)?;
    match line.split_at_checked(1) {
        Some(("+" | ":", rest)) => Ok(rest.to_string()),
        Some(("$" | "*", "-1")) => Ok(String::new()),
        Some(("*", n)) => {
            let n: usize = n
                .parse()
                .map_err(|_| io::Error::other("bad array length"))?;
            let items: io::Result<Vec<String>> = (0..n).map(|_| read_reply(conn)).collect();
            Ok(items?.join("\n"))
        }
        Some(("-", rest)) => Err(io::Error::other(format!("redis replied -{rest}"))),
        Some(("$", len)) => {
            let len: usize = len
                .parse()
                .map_err(|_| io::Error::other("bad bulk length"))?;
            let mut body = vec![0; len + 2];
            conn.read_exact(&mut body)?;
            body.truncate(len);
            String::from_utf8(body).map_err(|_| io::Error::other("bulk reply is not UTF-8"))
        }
        _ => Err(io::Error::other(format!("unexpected reply line {line:?}"))),
    }
}

/// One CRLF-ended line, read a byte at a time (replies are short; nothing is over-read).
fn read_line(conn: &mut TcpStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "redis closed"));
        }
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| io::Error::other("reply line is not UTF-8"))
}
