//! `run` in-process against the embedded server (port 0) and an external one: counts, bytes
//! and histograms must agree with what was asked for and with what the server saw.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{ESTABLISHED, config, heavy, kernel_sockets};
use tcpbench::config::{ServerClose, ServerConfig};
use tcpbench::report::Report;
use tcpbench::server::EchoServer;

fn run(flags: &[&str]) -> Report {
    let _guard = heavy();
    let report = tcpbench::run(&config(flags), true).expect("run completes");
    common::assert_schema(&serde_json::to_value(&report).unwrap());
    report
}

/// Every connection succeeded, every phase counted each one, every byte came back.
fn assert_clean(r: &Report, conns: u64, requests: u64) {
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    assert_eq!(r.totals.attempted, conns);
    assert_eq!(r.totals.succeeded, conns);
    assert_eq!(r.totals.failed, 0);
    assert_eq!(r.latency.connect.count, conns);
    assert_eq!(r.latency.echo.count, conns * requests);
    assert_eq!(r.latency.close.count, conns);
    assert_eq!(r.latency.total.count, conns);
    // The histogram inside the report holds the same count as its summary.
    assert_eq!(r.latency.total.hdr.0.len(), conns);
    let payload = r.config.payload as u64;
    assert_eq!(r.totals.bytes_sent, conns * requests * payload);
    let server = r.server.as_ref().expect("embedded server counters");
    assert_eq!(server.accepted, conns);
    assert_eq!(
        server.bytes_in, r.totals.bytes_sent,
        "server read what the client sent"
    );
    assert!(r.rate_cps > 0.0 && !r.interrupted);
}

#[test]
fn client_close_echoes_everything() {
    let r = run(&["--conns", "2000", "--close", "client"]);
    assert_clean(&r, 2000, 1);
    assert_eq!(r.totals.bytes_received, r.totals.bytes_sent);
    assert_eq!(r.config.socket.close.to_string(), "client");
}

#[test]
fn server_close_is_served_by_first_policy() {
    let r = run(&["--conns", "2000", "--close", "server", "--requests", "2"]);
    assert_clean(&r, 2000, 2);
    assert_eq!(r.totals.bytes_received, r.totals.bytes_sent);
    let tcpbench::config::Target::Embedded(s) = &r.config.target else {
        panic!("embedded")
    };
    assert_eq!(s.close, ServerClose::First);
    assert_eq!(
        s.close_after,
        Some(128),
        "the server closes after all the client sends"
    );
}

#[test]
fn rst_close_resets_the_server_side() {
    let r = run(&["--conns", "2000", "--close", "rst"]);
    assert_clean(&r, 2000, 1);
    // The server was still reading when the client's RST arrived: it saw every reset.
    assert_eq!(r.server.as_ref().unwrap().resets, 2000);
}

#[test]
fn farewell_bytes_arrive_after_the_clients_fin() {
    let r = run(&[
        "--conns",
        "1000",
        "--server-farewell",
        "5",
        "--payload",
        "10",
    ]);
    assert_clean(&r, 1000, 1);
    assert_eq!(r.totals.bytes_received, r.totals.bytes_sent + 5 * 1000);
    assert_eq!(
        r.server.as_ref().unwrap().bytes_out,
        r.totals.bytes_received
    );
}

#[test]
fn connect_only_sends_nothing() {
    let r = run(&["--conns", "1000", "--requests", "0"]);
    assert_clean(&r, 1000, 0);
    assert_eq!(r.totals.bytes_received, 0);
}

#[test]
fn large_payloads_and_many_requests_verify() {
    let r = run(&[
        "--conns",
        "200",
        "--payload",
        "100000",
        "--requests",
        "3",
        "--concurrency",
        "8",
    ]);
    assert_clean(&r, 200, 3);
    assert_eq!(r.totals.bytes_received, 200 * 3 * 100_000);
}

#[test]
fn open_loop_reports_latency_from_schedule() {
    let r = run(&["--conns", "500", "--rate", "2000"]);
    assert_clean(&r, 500, 1);
    // The last connection is scheduled at 499/2000 s: the run cannot be shorter.
    assert!(r.duration_s >= 0.249, "duration {}", r.duration_s);
    let s = r.latency_from_schedule.as_ref().expect("open loop has it");
    assert_eq!(s.total.count, 500);
    assert!(s.total.max_us >= r.latency.total.min_us);
    // Every start's lag is recorded, and no start is taken before its schedule's instant:
    // from the schedule, a connection takes at least as long as its own connect phase.
    let lag = r
        .latency
        .start_lag
        .as_ref()
        .expect("open loop has a start lag");
    assert_eq!(lag.count, 500);
    assert!(s.connect.min_us >= r.latency.connect.min_us, "{s:?}");
}

#[test]
fn an_open_loop_that_cannot_keep_up_says_it_queued() {
    // One worker, 20,000 starts a second: nearly every start waits for that worker.
    let r = run(&["--conns", "300", "--rate", "20000", "--concurrency", "1"]);
    assert_clean(&r, 300, 1);
    let s = r.latency_from_schedule.as_ref().unwrap();
    assert!(s.queued >= 200, "queued {} of 300", s.queued);
    let lag = r.latency.start_lag.as_ref().unwrap();
    // The 300th start is due at 15 ms; served one after another they end far later.
    assert!(lag.max_us > 1000.0, "{lag:?}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("all 1 workers were busy")),
        "{:?}",
        r.warnings
    );
    let text = tcpbench::report::text::render(&r);
    assert!(
        text.contains("waited for a free worker (all 1 in flight)"),
        "{text}"
    );
}

#[test]
fn each_handshake_has_the_kernels_rtt_unless_turned_off() {
    let r = run(&["--conns", "300", "--close", "rst"]);
    assert_eq!(r.totals.succeeded, 300);
    let k = &r.latency.handshake_rtt;
    assert_eq!(k.count, 300, "one TCP_INFO sample per connection");
    // The kernel's RTT is part of the handshake the client timed around it.
    assert!(k.p50_us <= r.latency.connect.p50_us, "{k:?}");
    assert_eq!(r.totals.syn_retransmitted, 0, "no SYN is lost on loopback");
    assert!(r.latency.start_lag.is_none(), "closed loop has no schedule");

    let off = run(&["--conns", "100", "--close", "rst", "--no-tcp-info"]);
    assert_eq!(off.latency.handshake_rtt.count, 0);
    assert!(!off.config.socket.tcp_info);
}

#[test]
fn duration_bound_stops_by_itself() {
    let r = run(&["--duration", "300ms", "--concurrency", "4"]);
    assert!(r.totals.attempted > 0);
    assert_eq!(r.totals.succeeded, r.totals.attempted);
    assert!(
        r.duration_s >= 0.3 && r.duration_s < 20.0,
        "duration {}",
        r.duration_s
    );
    assert_eq!(
        r.config.bounds.conns, None,
        "--duration alone leaves the count open"
    );
}

#[test]
fn warmup_connections_are_not_counted() {
    let r = run(&["--conns", "500", "--warmup", "300"]);
    assert_clean_except_server(&r, 500);
    assert_eq!(
        r.server.as_ref().unwrap().accepted,
        800,
        "the server saw the warmup too"
    );
}

/// A default echo server of our own on `listen`, outside the run.
fn echo_server(listen: &str) -> EchoServer {
    EchoServer::start(ServerConfig {
        listen: listen.parse().unwrap(),
        ..ServerConfig::default()
    })
    .unwrap()
}

fn assert_clean_except_server(r: &Report, conns: u64) {
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    assert_eq!(r.totals.succeeded, conns);
    assert_eq!(r.latency.total.count, conns);
}

#[test]
fn external_target_and_source_addresses() {
    let server = echo_server("127.0.0.1:0");
    let target = server.local_addr().to_string();
    let r = run(&[
        "--target",
        &target,
        "--conns",
        "1000",
        "--bind",
        "127.0.0.2-127.0.0.3",
    ]);
    let totals = server.stop();
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    assert_eq!(r.totals.succeeded, 1000);
    assert!(r.server.is_none());
    assert_eq!(totals.accepted, 1000);
    assert_eq!(totals.bytes_in, r.totals.bytes_sent);
}

#[test]
fn many_server_workers_on_one_listener_or_with_reuseport() {
    let shared = run(&[
        "--conns",
        "1000",
        "--server-workers",
        "2",
        "--server-no-reuseport",
    ]);
    assert_clean(&shared, 1000, 1);
    let reuseport = run(&[
        "--conns",
        "1000",
        "--server-workers",
        "2",
        "--server-reuseport",
    ]);
    assert_clean(&reuseport, 1000, 1);
}

#[test]
fn client_nowait_closes_without_reading_the_servers_fin() {
    let r = run(&["--conns", "2000", "--close", "client-nowait"]);
    assert_clean(&r, 2000, 1);
    assert_eq!(r.totals.bytes_received, r.totals.bytes_sent);
}

#[test]
fn hold_keeps_connections_open_at_once() {
    let _guard = heavy();
    let cfg = config(&[
        "--conns",
        "300",
        "--concurrency",
        "300",
        "--hold",
        "1s",
        "--requests",
        "0",
    ]);
    // Watch the kernel's table for established sockets of the embedded server while it runs.
    let done = AtomicBool::new(false);
    let peak = AtomicUsize::new(0);
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let mut by_port = std::collections::HashMap::<u16, usize>::new();
                for k in kernel_sockets().iter().filter(|k| k.state == ESTABLISHED) {
                    *by_port.entry(k.remote_port).or_default() += 1;
                }
                let most = by_port.values().copied().max().unwrap_or(0);
                peak.fetch_max(most, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        let r = tcpbench::run(&cfg, true).expect("run completes");
        done.store(true, Ordering::Relaxed);
        r
    });
    assert_eq!(report.totals.succeeded, 300);
    // HdrHistogram keeps 3 significant digits: near 1 s a bucket is ~0.5 ms wide.
    assert!(
        report.latency.total.min_us >= 999_000.0,
        "every connection was held 1 s"
    );
    assert!(
        peak.load(Ordering::Relaxed) >= 300,
        "peak established to one port: {}",
        peak.load(Ordering::Relaxed)
    );
}

#[test]
fn kernel_counters_cpu_and_sysctls_are_reported() {
    // OutRsts counts RSTs sent, namespace-wide; this binary's load tests run one at a time.
    // (TIME_WAIT figures are checked in tests/kernel.rs, in namespaces of their own: here a
    // host whose TIME_WAIT table is full would skip them.)
    let rst = run(&["--conns", "1000", "--close", "rst"]);
    assert!(
        rst.kernel.counters["OutRsts"] >= 1000,
        "{:?}",
        rst.kernel.counters
    );
    assert!(rst.kernel.counters["ActiveOpens"] >= 1000);
    assert!(rst.cpu.user_s + rst.cpu.sys_s > 0.0);
    assert!(rst.cpu.us_per_conn > 0.0);
    assert!(
        rst.kernel
            .sysctl
            .contains_key("net.ipv4.ip_local_port_range")
    );
}

#[test]
fn requests_larger_than_the_socket_buffers_do_not_deadlock() {
    // The client reads the echo while it writes: 16 MiB fills both ends' buffers many times.
    let r = run(&[
        "--conns",
        "4",
        "--concurrency",
        "2",
        "--payload",
        "16777216",
        "--io-timeout",
        "20s",
    ]);
    assert_clean(&r, 4, 1);
    assert_eq!(r.totals.bytes_received, 4 * 16_777_216);
}

#[test]
fn a_server_reset_is_counted_as_reset() {
    let r = run(&[
        "--conns",
        "300",
        "--close",
        "client",
        "--server-close",
        "rst",
        // All 300 fail: without a limit of their own, the run stops at the 100th.
        "--max-errors",
        "1000",
    ]);
    assert_eq!(r.totals.failed, 300, "{:?}", r.errors);
    assert!(
        r.errors
            .iter()
            .all(|e| e.kind == tcpbench::failure::ErrorKind::Reset),
        "{:?}",
        r.errors
    );
}
