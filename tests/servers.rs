//! The real-server launchers (tests/common/servers.rs) and the templates in reports/servers/:
//! nginx and redis-server start as this test's own processes on a free loopback port, answer
//! what tcpbench's decoders frame, count what they saw, and are gone after drop.
//!
//! Each test is skipped, visibly, when its server is not installed, and fails instead when
//! env CI is set (.ci/run installs nginx-light and redis-server).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::servers::{Nginx, NginxBody, NginxConf, Redis, RedisConf, Server, fill, require};
use tcpbench::load::proto::{Decoder, HttpSpec, Method, Progress, ProtoError, Protocol, RespSpec};

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    // Bounds every read below: a stuck server fails the test instead of hanging it.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads one response through `d`: its bytes, or the decoder's error.
fn exchange(s: &mut TcpStream, d: &mut Decoder, request: &[u8]) -> Result<Vec<u8>, ProtoError> {
    s.write_all(request).unwrap();
    d.reset();
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    loop {
        let n = s.read(&mut buf).unwrap();
        let progress = if n == 0 { d.eof()? } else { d.feed(&buf[..n])? };
        match progress {
            Progress::NeedMore => got.extend_from_slice(&buf[..n]),
            Progress::Complete { consumed, extra } => {
                assert_eq!(extra, 0, "the server sent more than one response");
                got.extend_from_slice(&buf[..consumed]);
                return Ok(got);
            }
        }
    }
}

/// Whether the server closed `s` (read gives EOF) within the read timeout.
fn closed_by_peer(s: &mut TcpStream) -> bool {
    matches!(s.read(&mut [0u8; 64]), Ok(0))
}

fn http() -> Protocol {
    Protocol::Http(
        HttpSpec::new(
            Method::Get,
            "/",
            "localhost",
            &["User-Agent: tcpbench-test".into()],
            None,
        )
        .unwrap(),
    )
}

fn request(p: &Protocol, i: u64, last: bool, close_by_server: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    p.request(i, last, close_by_server, &mut buf);
    buf
}

/// The PIDs whose parent is `pid` (nginx's workers).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
                after.split_whitespace().nth(1) == Some(&pid.to_string())
            })
        })
        .collect()
}

/// Whether `cond` holds within 2 s (the kernel may finish a close in a softirq later).
fn eventually(cond: impl Fn() -> bool) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while !cond() {
        if std::time::Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Sockets of this namespace in `state` whose local port is `port` (from /proc/net/tcp).
fn sockets_on(port: u16, state: u8) -> usize {
    common::kernel_sockets()
        .iter()
        .filter(|s| s.local_port == port && s.state == state)
        .count()
}

#[test]
fn nginx_answers_keep_alive_and_closing_requests_and_logs_each() {
    let Some(bin) = Nginx::binary() else { return };
    let nginx = Nginx::start(&bin, &NginxConf::default()).unwrap();
    let p = http();
    let mut d = p.decoder(1 << 20);
    // Three requests on one connection; the last asks for close, so nginx closes first.
    let mut s = connect(nginx.addr());
    for i in 0..3 {
        let body = exchange(&mut s, &mut d, &request(&p, i, i == 2, true)).unwrap();
        assert!(
            body.starts_with(b"HTTP/1.1 200 OK\r\n") && body.ends_with(b"\r\n\r\nok"),
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(d.peer_closes(), i == 2, "request {i}");
    }
    assert!(
        closed_by_peer(&mut s),
        "nginx closes after Connection: close"
    );
    // Two more connections of one request each, closed by us.
    for _ in 0..2 {
        let mut s = connect(nginx.addr());
        exchange(&mut s, &mut d, &request(&p, 0, true, false)).unwrap();
    }
    assert_eq!(nginx.wait_access_count(5, Duration::from_secs(5)), 5);
    // A 404 is the decoder's HttpStatus, and nginx logs it too.
    let missing =
        Protocol::Http(HttpSpec::new(Method::Get, "/missing", "h", &[], Some(200)).unwrap());
    let static_conf = NginxConf {
        body: NginxBody::Static(b"<p>static page</p>\n".to_vec()),
        ..NginxConf::default()
    };
    let page = Nginx::start(&bin, &static_conf).unwrap();
    let mut s = connect(page.addr());
    let got = exchange(&mut s, &mut d, &request(&p, 0, false, false)).unwrap();
    assert!(
        got.ends_with(b"\r\n\r\n<p>static page</p>\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let mut d404 = missing.decoder(1 << 20);
    assert_eq!(
        exchange(&mut s, &mut d404, &request(&missing, 1, false, false)),
        Err(ProtoError::HttpStatus(404))
    );
    assert_eq!(page.wait_access_count(2, Duration::from_secs(5)), 2);
    assert_eq!(nginx.access_count(), 5, "each nginx has its own log");
}

#[test]
fn nginx_and_its_workers_are_gone_after_drop() {
    let Some(bin) = Nginx::binary() else { return };
    let conf = NginxConf {
        workers: 2,
        reuseport: true,
        ..NginxConf::default()
    };
    let nginx = Nginx::start(&bin, &conf).unwrap();
    let (master, port) = (nginx.server.pid(), nginx.server.port());
    // nginx listens before it forks its workers.
    assert!(
        eventually(|| children(master).len() == 2),
        "worker_processes 2"
    );
    let workers = children(master);
    // reuseport: one listening socket per worker.
    assert_eq!(sockets_on(port, 10), 2);
    drop(nginx);
    assert!(!alive(master), "master {master} still runs");
    for w in workers {
        assert!(!alive(w), "worker {w} still runs");
    }
    assert_eq!(
        sockets_on(port, 10),
        0,
        "nothing listens on {port} any more"
    );
}

#[test]
fn a_server_that_cannot_start_is_an_error_with_its_output() {
    let Some(bin) = Nginx::binary() else { return };
    let broken = "events {}\nhttp { server { listen 127.0.0.1:{port}; bogus_directive on; } }\n";
    let e = Nginx::start_template(&bin, broken, None)
        .err()
        .expect("nginx refuses the config");
    let text = e.to_string();
    assert!(
        text.contains("exited with") && text.contains("bogus_directive"),
        "{text}"
    );
}

#[test]
fn redis_answers_ping_and_its_stats_count_our_connections_and_commands() {
    let Some(bin) = Redis::binary() else { return };
    let mut redis = Redis::start(&bin, &RedisConf::default()).unwrap();
    let before = redis.stats().unwrap();
    let (conns, pings) = (3u64, 4u64);
    let ping = Protocol::Resp(RespSpec::ping());
    let mut d = ping.decoder(1 << 20);
    for _ in 0..conns {
        let mut s = connect(redis.addr());
        for i in 0..pings {
            assert_eq!(
                exchange(&mut s, &mut d, &request(&ping, i, i + 1 == pings, false)).unwrap(),
                b"+PONG\r\n"
            );
        }
    }
    // Any command's reply is framed; an error reply is the decoder's RespError.
    let mut s = connect(redis.addr());
    let get = Protocol::Resp(RespSpec::command("GET no-such-key").unwrap());
    assert_eq!(
        exchange(&mut s, &mut d, &request(&get, 0, false, false)).unwrap(),
        b"$-1\r\n"
    );
    let bad = Protocol::Resp(RespSpec::command("NOSUCHCOMMAND a").unwrap());
    match exchange(&mut s, &mut d, &request(&bad, 0, false, false)) {
        Err(ProtoError::RespError(text)) => {
            assert!(text.starts_with("ERR unknown command"), "{text}")
        }
        other => panic!("{other:?}"),
    }
    let after = redis.stats().unwrap();
    assert_eq!(
        after.total_connections_received - before.total_connections_received,
        conns + 1
    );
    // Ours, the GET, and the INFO that took `before` (counted after its reply). Redis does
    // not count an unknown command.
    assert_eq!(
        after.total_commands_processed - before.total_commands_processed,
        conns * pings + 1 + 1
    );
}

#[test]
fn redis_is_gone_after_drop() {
    let Some(bin) = Redis::binary() else { return };
    let redis = Redis::start(
        &bin,
        &RedisConf {
            tcp_backlog: Some(128),
        },
    )
    .unwrap();
    let (pid, port) = (redis.server.pid(), redis.server.port());
    assert!(alive(pid));
    drop(redis);
    assert!(!alive(pid));
    assert_eq!(sockets_on(port, 10), 0);
}

fn templates(prefix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/servers");
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".conf")
        })
        .collect();
    all.sort();
    all
}

#[test]
fn nginx_accepts_every_template_and_each_serves() {
    let Some(bin) = Nginx::binary() else { return };
    let files = templates("nginx-");
    assert!(files.len() >= 6, "{files:?}");
    for file in files {
        let template = std::fs::read_to_string(&file).unwrap();
        assert!(
            template.contains("{dir}") && template.contains("{port}"),
            "{file:?}"
        );
        // `nginx -t`, as the matrix's users would check it.
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, fill(&template, dir.path(), 1)).unwrap();
        let t = std::process::Command::new(&bin)
            .arg("-t")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .output()
            .unwrap();
        assert!(
            t.status.success(),
            "{file:?}: {}",
            String::from_utf8_lossy(&t.stderr)
        );
        // And it serves.
        let nginx = Nginx::start_template(&bin, &template, None).unwrap();
        let p = http();
        let mut s = connect(nginx.addr());
        exchange(&mut s, &mut p.decoder(1 << 20), &request(&p, 0, true, true)).unwrap();
        assert_eq!(
            nginx.wait_access_count(1, Duration::from_secs(5)),
            1,
            "{file:?}"
        );
    }
}

#[test]
fn the_close_changing_templates_change_the_close() {
    let Some(bin) = Nginx::binary() else { return };
    let read = |name: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("reports/servers")
                .join(name),
        )
        .unwrap()
    };
    let p = http();
    // keepalive_timeout 0: nginx closes after a keep-alive request, and holds TIME_WAIT.
    let nginx = Nginx::start_template(&bin, &read("nginx-keepalive-off.conf"), None).unwrap();
    let mut s = connect(nginx.addr());
    let mut d = p.decoder(1 << 20);
    exchange(&mut s, &mut d, &request(&p, 0, false, false)).unwrap();
    assert!(d.peer_closes(), "nginx says Connection: close");
    assert!(closed_by_peer(&mut s));
    drop(s);
    let port = nginx.server.port();
    assert!(
        eventually(|| sockets_on(port, common::TIME_WAIT) >= 1),
        "the server side holds TIME_WAIT"
    );
    // reset_timedout_connection on: /444 ends in an RST, not a FIN.
    let nginx = Nginx::start_template(&bin, &read("nginx-reset-timedout.conf"), None).unwrap();
    let mut s = connect(nginx.addr());
    s.write_all(b"GET /444 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let e = s.read(&mut [0u8; 64]).expect_err("an RST, not a FIN");
    assert_eq!(e.kind(), ErrorKind::ConnectionReset);
    // The baseline closes /444 with a FIN.
    let plain = read("nginx-backlog511.conf").replace(
        "location / {",
        "location = /444 { return 444; }\n        location / {",
    );
    let nginx = Nginx::start_template(&bin, &plain, None).unwrap();
    let mut s = connect(nginx.addr());
    s.write_all(b"GET /444 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(closed_by_peer(&mut s));
}

#[test]
fn redis_takes_every_template_and_its_tcp_backlog() {
    let Some(bin) = Redis::binary() else { return };
    let files = templates("redis-");
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let template = std::fs::read_to_string(&file).unwrap();
        let backlog = template
            .lines()
            .find_map(|l| l.strip_prefix("tcp-backlog "))
            .unwrap_or_else(|| panic!("{file:?} sets tcp-backlog"))
            .trim()
            .to_string();
        let mut redis = Redis::start_template(&bin, &template).unwrap();
        assert_eq!(
            redis.command(&["CONFIG", "GET", "tcp-backlog"]).unwrap(),
            format!("tcp-backlog\n{backlog}")
        );
        assert_eq!(redis.command(&["PING"]).unwrap(), "PONG");
        assert!(
            redis.server.dir().join("redis.pid").exists(),
            "{file:?}: pidfile in its dir"
        );
    }
}

#[test]
fn launched_servers_live_in_their_own_folders() {
    let Some(bin) = Redis::binary() else { return };
    let a = Redis::start(&bin, &RedisConf::default()).unwrap();
    let b = Redis::start(&bin, &RedisConf::default()).unwrap();
    let dirs: [&Server; 2] = [&a.server, &b.server];
    assert_ne!(dirs[0].port(), dirs[1].port());
    assert_ne!(dirs[0].dir(), dirs[1].dir());
    let dir = dirs[0].dir().to_path_buf();
    drop(a);
    assert!(!dir.exists(), "the folder goes with the server");
}

#[test]
fn a_missing_server_skips_the_test_or_fails_it_under_ci() {
    let missing =
        std::panic::catch_unwind(|| require("tcpbench-no-such-server", "no-such-package"));
    match std::env::var_os("CI") {
        Some(_) => assert!(missing.is_err(), "under CI a missing server fails the test"),
        None => assert!(matches!(missing, Ok(None)), "without CI it is skipped"),
    }
    assert!(common::servers::find_binary("sh").is_some());
}

#[test]
fn a_port_taken_before_the_server_binds_it_is_retried_on_another() {
    let Some(bin) = Redis::binary() else { return };
    // The first launch takes its own port away, as another process would between the
    // launcher's release and the server's bind.
    let thief = std::cell::RefCell::new(Vec::new());
    let launch = |dir: &Path, port: u16| {
        let mut taken = thief.borrow_mut();
        if taken.is_empty() {
            taken.push(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
        }
        Ok([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
        ]
        .iter()
        .map(Into::into)
        .chain([dir.as_os_str().to_owned()])
        .collect())
    };
    let server = Server::start("redis", &bin, &launch).unwrap();
    let stolen = thief.borrow()[0].local_addr().unwrap().port();
    assert_ne!(server.port(), stolen, "started on another port");
    let mut s = connect(server.addr());
    s.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
}
