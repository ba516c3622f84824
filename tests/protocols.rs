//! The connection cycle speaking each protocol (issue 14 §1, §3 and its faults): against
//! the embedded responders, against a real nginx and redis-server (tests/common/servers.rs),
//! and against servers written here that misbehave in one way each. Every run asserts on
//! our own counts and on what the server saw; every fault is a typed failure with a count,
//! within a bounded time, never a success.
//!
//! The real-server tests are skipped, visibly, when nginx or redis-server is missing, and
//! fail instead under CI.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::servers::{Nginx, NginxConf, Redis, RedisConf};
use common::{TIME_WAIT, bin, config, heavy, kernel_sockets};
use tcpbench::failure::ErrorKind;
use tcpbench::report::Report;

fn run(flags: &[&str]) -> Report {
    tcpbench::run(&config(flags), true).expect("run completes")
}

/// Every connection succeeded, with `requests` exchanges each.
fn assert_clean(r: &Report, conns: u64, requests: u64) {
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    assert_eq!(r.totals.attempted, conns);
    assert_eq!(r.totals.succeeded, conns);
    assert_eq!(r.latency.echo.count, conns * requests, "one exchange each");
    assert_eq!(r.latency.echo.hdr.0.len(), conns * requests);
    assert_eq!(r.totals.closes.total(), conns, "{:?}", r.totals.closes);
}

/// The failures of `kind`, summed over phases and statuses.
fn failures(r: &Report, kind: ErrorKind) -> u64 {
    r.errors
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.count)
        .sum()
}

/// Every connection failed, all as `kind`.
fn assert_all_failed(r: &Report, conns: u64, kind: ErrorKind) {
    assert_eq!(r.totals.attempted, conns, "{:?}", r.errors);
    assert_eq!(r.totals.succeeded, 0, "never a success: {:?}", r.errors);
    assert_eq!(failures(r, kind), conns, "{kind}: {:?}", r.errors);
    assert_eq!(r.latency.echo.count, 0);
}

/// TIME_WAIT sockets of this namespace with `port` as their local (server side) or remote
/// (client side) port.
fn time_wait_on(port: u16) -> (usize, usize) {
    let tw: Vec<_> = kernel_sockets()
        .into_iter()
        .filter(|s| s.state == TIME_WAIT)
        .collect();
    (
        tw.iter().filter(|s| s.remote_port == port).count(),
        tw.iter().filter(|s| s.local_port == port).count(),
    )
}

#[test]
fn each_protocol_against_the_embedded_responder() {
    let _g = heavy();
    let conns = 300u64;
    let n = conns.to_string();
    for (flags, requests) in [
        (vec!["--protocol", "echo"], 3u64),
        (vec!["--protocol", "http", "--http-path", "/x"], 3),
        (vec!["--protocol", "resp"], 3),
        (
            vec!["--protocol", "resp", "--resp-command", "PING hello"],
            2,
        ),
        (
            vec![
                "--protocol",
                "raw",
                "--send",
                "hi\\r\\n",
                "--expect-bytes",
                "4",
            ],
            2,
        ),
        (
            vec!["--protocol", "raw", "--send", "hex:0102", "--expect-close"],
            1,
        ),
    ] {
        let k = requests.to_string();
        let mut all = flags.clone();
        all.extend(["--conns", &n, "--requests", &k]);
        let r = run(&all);
        assert_clean(&r, conns, requests);
        let server = r.server.as_ref().unwrap();
        assert_eq!(server.accepted, conns, "{flags:?}");
        assert_eq!(server.bytes_in, r.totals.bytes_sent, "{flags:?}");
        assert_eq!(server.bytes_out, r.totals.bytes_received, "{flags:?}");
        let answers = match flags[1] {
            "http" | "resp" => conns * requests,
            _ => 0,
        };
        assert_eq!(server.answers, answers, "{flags:?}");
        let c = &r.totals.closes;
        if flags.contains(&"--expect-close") {
            // The embedded server closes after its echo: its FIN ends the response.
            assert_eq!(c.server_first, conns, "{flags:?}: {c:?}");
        } else {
            assert_eq!(c.client_first, conns, "{flags:?}: {c:?}");
        }
        println!(
            "{flags:?}: {:.0} conn/s, exchange p50 {:.1} µs",
            r.rate_cps, r.latency.echo.p50_us
        );
    }
}

#[test]
fn http_close_server_makes_the_embedded_server_close_first() {
    let _g = heavy();
    let r = run(&[
        "--protocol",
        "http",
        "--requests",
        "3",
        "--close",
        "server",
        "--conns",
        "300",
    ]);
    assert_clean(&r, 300, 3);
    assert_eq!(r.totals.closes.server_first, 300, "{:?}", r.totals.closes);
    // The server sent the first FIN, so TIME_WAIT is on its side only.
    assert!(r.time_wait.peak_server > 0, "{:?}", r.time_wait);
    assert_eq!(r.time_wait.peak_client, 0, "{:?}", r.time_wait);
    let rst = run(&["--protocol", "resp", "--close", "rst", "--conns", "200"]);
    assert_clean(&rst, 200, 1);
    assert_eq!(rst.totals.closes.rst_sent, 200, "{:?}", rst.totals.closes);
}

#[test]
fn an_unexpected_status_and_an_error_reply_from_the_embedded_responders_fail() {
    let _g = heavy();
    let r = run(&[
        "--protocol",
        "http",
        "--http-expect-status",
        "204",
        "--conns",
        "50",
        "--max-errors",
        "1000",
    ]);
    assert_all_failed(&r, 50, ErrorKind::HttpStatus);
    assert_eq!(r.errors[0].status, Some(200), "the status is in the entry");
    let r = run(&[
        "--protocol",
        "resp",
        "--resp-command",
        "NOSUCHCMD",
        "--conns",
        "50",
        "--max-errors",
        "1000",
    ]);
    assert_all_failed(&r, 50, ErrorKind::RespError);
}

/// A server written here: each connection in its own thread runs `serve`, `conns` of them.
/// Every socket has a 10 s timeout, so no thread outlives a test long.
fn serving(conns: usize, serve: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(conns) {
            let Ok(s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            std::thread::spawn(move || serve(s));
        }
    });
    addr
}

/// Reads one request head (to its empty line), or `false` at EOF.
fn read_head(s: &mut TcpStream) -> bool {
    let (mut got, mut buf) = (Vec::new(), [0u8; 1024]);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(n @ 1..) => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    true
}

/// Answers with `response`, then waits for the client to close.
fn answer_then_wait(mut s: TcpStream, response: &[u8]) {
    if read_head(&mut s) && s.write_all(response).is_ok() {
        let _ = s.read(&mut [0u8; 1024]);
    }
}

/// Runs `flags` against a server of `conns` connections that each get `serve`; returns
/// the report and how long the run took.
fn against(conns: usize, serve: fn(TcpStream), flags: &[&str]) -> (Report, Duration) {
    let addr = serving(conns, serve).to_string();
    let n = conns.to_string();
    let mut all = vec!["--target", &addr, "--conns", &n, "--max-errors", "1000"];
    all.extend(flags);
    let start = Instant::now();
    let r = run(&all);
    (r, start.elapsed())
}

#[test]
fn faults_are_typed_failures_within_a_bounded_time() {
    let _g = heavy();
    let http: &[&str] = &["--protocol", "http", "--concurrency", "4"];

    // A response over --max-response.
    fn big(s: TcpStream) {
        let body = vec![b'x'; 5000];
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        answer_then_wait(s, &[head.as_bytes(), &body].concat());
    }
    let flags = [http, &["--max-response", "1000"]].concat();
    let (r, _) = against(20, big, &flags);
    assert_all_failed(&r, 20, ErrorKind::ResponseTooLarge);

    // A response that never completes: the --io-timeout deadline ends it.
    fn stalls(s: TcpStream) {
        answer_then_wait(s, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
    }
    let flags = [http, &["--io-timeout", "300ms"]].concat();
    let (r, took) = against(8, stalls, &flags);
    assert_all_failed(&r, 8, ErrorKind::IoTimeout);
    assert!(
        took < Duration::from_secs(5),
        "8 x 300 ms over 4 took {took:?}"
    );
    assert!(
        r.latency.failed.min_us >= 300_000.0,
        "{:?}",
        r.latency.failed
    );

    // Garbage instead of a status line.
    fn garbage(s: TcpStream) {
        answer_then_wait(s, b"SSH-2.0-OpenSSH_9.2\r\n\r\n");
    }
    let (r, _) = against(20, garbage, http);
    assert_all_failed(&r, 20, ErrorKind::ProtocolError);

    // An error status, with its code in the entry.
    fn unavailable(s: TcpStream) {
        answer_then_wait(
            s,
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        );
    }
    let (r, _) = against(20, unavailable, http);
    assert_all_failed(&r, 20, ErrorKind::HttpStatus);
    assert_eq!(r.errors[0].status, Some(503));

    // The server closes in the middle of its response.
    fn cut(mut s: TcpStream) {
        if read_head(&mut s) {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        }
    }
    let (r, _) = against(20, cut, http);
    assert_all_failed(&r, 20, ErrorKind::ShortResponse);
    assert_eq!(r.totals.closes.server_first, 20, "{:?}", r.totals.closes);

    // A server that does not keep the connection alive, asked for three requests.
    fn one_only(s: TcpStream) {
        answer_then_wait(
            s,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        );
    }
    let flags = [http, &["--requests", "3"]].concat();
    let (r, _) = against(20, one_only, &flags);
    assert_all_failed(&r, 20, ErrorKind::ClosedEarly);

    // A RESP error reply, and a raw response that is not what --expect says.
    fn denied(mut s: TcpStream) {
        let mut buf = [0u8; 256];
        if matches!(s.read(&mut buf), Ok(1..)) && s.write_all(b"-NOAUTH denied\r\n").is_ok() {
            let _ = s.read(&mut buf);
        }
    }
    let (r, _) = against(20, denied, &["--protocol", "resp", "--concurrency", "4"]);
    assert_all_failed(&r, 20, ErrorKind::RespError);
    let raw = [
        "--protocol",
        "raw",
        "--send",
        "hello\\n",
        "--expect",
        "+OK",
        "--concurrency",
        "4",
    ];
    let (r, _) = against(20, denied, &raw);
    assert_all_failed(&r, 20, ErrorKind::ResponseMismatch);
}

#[test]
fn http_against_nginx_keep_alive_and_server_close() {
    let Some(binary) = Nginx::binary() else {
        return;
    };
    let _g = heavy();
    let conns = 300u64;
    let n = conns.to_string();
    for (requests, close) in [(1u64, "client"), (3, "client"), (3, "server")] {
        let nginx = Nginx::start(&binary, &NginxConf::default()).unwrap();
        let addr = nginx.addr().to_string();
        let k = requests.to_string();
        let r = run(&[
            "--target",
            &addr,
            "--protocol",
            "http",
            "--conns",
            &n,
            "--requests",
            &k,
            "--close",
            close,
        ]);
        assert_clean(&r, conns, requests);
        let logged = nginx.wait_access_count((conns * requests) as usize, Duration::from_secs(5));
        assert_eq!(logged as u64, conns * requests, "nginx logged each request");
        let (client_tw, server_tw) = time_wait_on(nginx.addr().port());
        let c = &r.totals.closes;
        if close == "server" {
            // Connection: close on the last request: nginx closed first, and holds TIME_WAIT.
            assert_eq!(c.server_first, conns, "{c:?}");
            assert_eq!(client_tw, 0, "no client-side TIME_WAIT");
            assert!(server_tw > 0, "nginx holds TIME_WAIT");
            assert!(r.time_wait.peak_server > 0 && r.time_wait.peak_client == 0);
        } else {
            assert_eq!(c.client_first, conns, "{c:?}");
            assert!(client_tw > 0, "the client holds TIME_WAIT");
            assert_eq!(server_tw, 0, "no server-side TIME_WAIT");
            assert!(r.time_wait.peak_client > 0 && r.time_wait.peak_server == 0);
        }
        println!(
            "nginx --requests {requests} --close {close}: {:.0} conn/s, exchange p50 {:.1} µs, \
             {logged} logged, TIME_WAIT client {client_tw} server {server_tw}",
            r.rate_cps, r.latency.echo.p50_us
        );
    }
}

#[test]
fn a_missing_page_on_nginx_is_http_status_404() {
    let Some(binary) = Nginx::binary() else {
        return;
    };
    let _g = heavy();
    let conf = NginxConf {
        body: common::servers::NginxBody::Static(b"page".to_vec()),
        ..NginxConf::default()
    };
    let nginx = Nginx::start(&binary, &conf).unwrap();
    let addr = nginx.addr().to_string();
    let r = run(&[
        "--target",
        &addr,
        "--protocol",
        "http",
        "--http-path",
        "/missing",
        "--conns",
        "40",
        "--max-errors",
        "1000",
    ]);
    assert_all_failed(&r, 40, ErrorKind::HttpStatus);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert_eq!(r.errors[0].status, Some(404));
    assert_eq!(nginx.wait_access_count(40, Duration::from_secs(5)), 40);
}

#[test]
fn resp_against_redis_moves_its_counters_by_what_we_sent() {
    let Some(binary) = Redis::binary() else {
        return;
    };
    let _g = heavy();
    let mut redis = Redis::start(&binary, &RedisConf::default()).unwrap();
    let addr = redis.addr().to_string();
    let before = redis.stats().unwrap();
    let r = run(&[
        "--target",
        &addr,
        "--protocol",
        "resp",
        "--conns",
        "300",
        "--requests",
        "3",
    ]);
    let after = redis.stats().unwrap();
    assert_clean(&r, 300, 3);
    assert_eq!(r.totals.closes.client_first, 300, "{:?}", r.totals.closes);
    assert_eq!(
        after.total_connections_received - before.total_connections_received,
        300
    );
    // The INFO of the first reading is counted after its reply: the second sees it.
    assert_eq!(
        after.total_commands_processed - before.total_commands_processed,
        300 * 3 + 1
    );
    let r = run(&[
        "--target",
        &addr,
        "--protocol",
        "resp",
        "--resp-command",
        "NOSUCHCMD",
        "--conns",
        "40",
        "--max-errors",
        "1000",
    ]);
    assert_all_failed(&r, 40, ErrorKind::RespError);
    let last = redis.stats().unwrap();
    assert_eq!(
        last.total_connections_received - after.total_connections_received,
        40
    );
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_protocol_flags_exit_2_with_one_line_naming_the_flag() {
    for (args, flag) in [
        (vec!["--http-path", "/x"], "--http-path"),
        (
            vec!["--protocol", "http", "--resp-command", "PING"],
            "--resp-command",
        ),
        (
            vec!["--protocol", "http", "--http-header", "NoColon"],
            "--http-header",
        ),
        (
            vec!["--protocol", "http", "--http-path", "x y"],
            "--http-path",
        ),
        (
            vec!["--protocol", "http", "--http-expect-status", "42"],
            "--http-expect-status",
        ),
        (
            vec!["--protocol", "resp", "--resp-command", "\"open"],
            "--resp-command",
        ),
        (vec!["--protocol", "raw"], "--send"),
        (vec!["--protocol", "raw", "--send", "x"], "--expect"),
        (
            vec!["--protocol", "raw", "--send", "\\q", "--expect-close"],
            "--send",
        ),
        (
            vec![
                "--protocol",
                "raw",
                "--send",
                "@/nonexistent/x",
                "--expect-close",
            ],
            "--send",
        ),
        (
            vec![
                "--protocol",
                "raw",
                "--send",
                "x",
                "--expect-close",
                "--requests",
                "2",
            ],
            "--expect-close",
        ),
        (
            vec!["--protocol", "raw", "--send", "x", "--expect-bytes", "0"],
            "--expect-bytes",
        ),
        (
            vec!["--protocol", "http", "--max-response", "0"],
            "--max-response",
        ),
        (vec!["trace", "--protocol", "raw"], "--send"),
    ] {
        let quiet = (args[0] != "trace").then_some("-q");
        let out = bin().args(&args).args(quiet).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?} should name {flag}: {err}");
    }
}

#[test]
fn serve_answers_http_and_resp_and_counts_the_answers() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let _g = heavy();
    for (protocol, answers) in [("http", "60 answers"), ("resp", "60 answers")] {
        let mut server = bin()
            .args(["serve", "--listen", "127.0.0.1:0", "--duration", "60s"])
            .args(["--protocol", protocol])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(server.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains(&format!("({protocol}, close wait")), "{line}");
        let addr = line
            .split_whitespace()
            .find(|w| w.starts_with("127.0.0.1:"))
            .expect(&line)
            .to_string();
        let out = bin()
            .args(["--target", &addr, "--protocol", protocol])
            .args(["--conns", "30", "--requests", "2", "-q"])
            .output()
            .unwrap();
        // SAFETY: signalling the child we spawned, by its pid.
        unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
        let done = server.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let summary = String::from_utf8_lossy(&done.stdout);
        assert!(
            summary.contains("accepted 30 connections") && summary.contains(answers),
            "{summary}"
        );
    }
}

#[test]
fn reports_without_the_protocol_fields_still_read() {
    let _g = heavy();
    let r = run(&["--protocol", "http", "--conns", "20", "--close", "server"]);
    let mut v = serde_json::to_value(&r).unwrap();
    // A v1 report written before protocols: none of the fields added for them.
    let config = v["config"].as_object_mut().unwrap();
    config.remove("protocol").unwrap();
    config.remove("max_response").unwrap();
    v["config"]["target"]["embedded"]
        .as_object_mut()
        .unwrap()
        .remove("protocol")
        .unwrap();
    v["totals"]
        .as_object_mut()
        .unwrap()
        .remove("closes")
        .unwrap();
    v["server"]
        .as_object_mut()
        .unwrap()
        .remove("answers")
        .unwrap();
    let old: Report = serde_json::from_value(v).unwrap();
    assert!(
        old.config.protocol.is_echo(),
        "what a report without it was"
    );
    assert_eq!(old.config.max_response, 1 << 20);
    assert_eq!(old.totals.closes.total(), 0);
    assert_eq!(old.totals.succeeded, 20);
}
