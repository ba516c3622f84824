//! `tcpbench::trace` against a real kernel: each close mode traced against the embedded
//! server, each in a fresh network namespace (its own lo, its own TIME_WAIT), asserting on
//! the segments the capture saw and the states the kernel reported.
//!
//! Needs root (AF_PACKET, a network namespace); without it each test is a visible skip
//! (`common::require`: `SKIPPED <test>: needs …`), and under CI a failure.

mod common;

use std::net::SocketAddr;

use tcpbench::config::{RunConfig, ServerConfig};
use tcpbench::server::EchoServer;
use tcpbench::trace::{
    self, Segment, Side, StateSource, TeardownKind, Trace, TraceError, TraceOptions,
};

/// Runs `trace` in a fresh network namespace, on a thread of its own; `cfg` is called
/// inside it (to start a server there first, if it wants). `None` when this machine does not
/// allow it, after saying why.
fn traced_with(cfg: impl FnOnce() -> RunConfig + Send, opts: TraceOptions) -> Option<Vec<Trace>> {
    let result: Result<_, String> = std::thread::scope(|s| {
        s.spawn(|| {
            tcpbench::observe::netns::enter_fresh()
                .map_err(|e| format!("root (CAP_SYS_ADMIN) for a network namespace; here: {e}"))?;
            Ok(trace::trace(&cfg(), &opts))
        })
        .join()
        .expect("the trace thread panicked")
    });
    match result {
        Err(why) => {
            common::require(&why, false);
            None
        }
        Ok(Err(TraceError::NotPermitted(why))) => {
            common::require(
                &format!("root or CAP_NET_RAW for the capture ({why})"),
                false,
            );
            None
        }
        Ok(Err(e)) => panic!("the trace failed: {e}"),
        Ok(Ok(traces)) => {
            for t in &traces {
                println!("{}", trace::render_text(t));
            }
            Some(traces)
        }
    }
}

fn traced(flags: &[&str]) -> Option<Trace> {
    let _heavy = common::heavy();
    let mut traces = traced_with(|| common::config(flags), TraceOptions::default())?;
    assert_eq!(traces.len(), 1);
    let t = traces.remove(0);
    assert_eq!(t.outcome, None, "the connection succeeded");
    assert_eq!(t.capture_drops, 0);
    Some(t)
}

/// "client SYN", "server SYN+ACK", … for every segment.
fn shape(t: &Trace) -> Vec<String> {
    t.segments
        .iter()
        .map(|s| format!("{} {}", s.from, s.flag_label()))
        .collect()
}

fn states(t: &Trace, side: Side) -> Vec<&str> {
    t.states
        .iter()
        .filter(|s| s.side == side)
        .map(|s| s.state.as_str())
        .collect()
}

fn first(t: &Trace, pred: impl Fn(&Segment) -> bool) -> usize {
    t.segments
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("no such segment in {:?}", shape(t)))
}

/// The handshake as the textbook draws it, checked from the raw numbers here and compared
/// with the trace's own verdicts.
fn assert_handshake(t: &Trace) {
    assert_eq!(
        shape(t)[..3],
        ["client SYN", "server SYN+ACK", "client ACK"],
        "{:?}",
        shape(t)
    );
    let (syn, synack, ack) = (&t.segments[0], &t.segments[1], &t.segments[2]);
    assert_eq!(synack.ack, syn.seq.wrapping_add(1));
    assert_eq!(ack.ack, synack.seq.wrapping_add(1));
    assert_eq!((syn.rel_seq, synack.rel_ack, ack.rel_ack), (0, 1, 1));
    assert_eq!(check(t, 1).holds, Some(true), "{}", check(t, 1).detail);
    assert!(syn.t_us == 0.0 && synack.t_us > 0.0 && ack.t_us >= synack.t_us);
}

/// Data both ways before the close: the request and its echo.
fn assert_echo(t: &Trace, payload: u32) {
    let data = |side: Side| -> u32 {
        t.segments
            .iter()
            .filter(|s| s.from == side && !s.has("FIN"))
            .map(|s| s.len)
            .sum()
    };
    assert_eq!(data(Side::Client), payload, "{:?}", shape(t));
    assert_eq!(data(Side::Server), payload, "{:?}", shape(t));
}

/// Every FIN acked with its seq+1, checked here from the numbers and by the trace.
fn assert_fins_acked(t: &Trace) {
    for (i, fin) in t.segments.iter().enumerate().filter(|(_, s)| s.has("FIN")) {
        let want = fin.seq.wrapping_add(fin.len).wrapping_add(1);
        let acked = t.segments[i + 1..]
            .iter()
            .any(|s| s.from != fin.from && s.has("ACK") && s.ack == want);
        assert!(
            acked,
            "the {}'s FIN is not acked with seq+1: {:?}",
            fin.from,
            shape(t)
        );
    }
    assert_eq!(check(t, 2).holds, Some(true), "{}", check(t, 2).detail);
}

fn check(t: &Trace, id: u8) -> &trace::Check {
    t.checks
        .iter()
        .find(|c| c.id == id)
        .expect("every check is there")
}

/// The orderly close by `active`: its FIN first, the peer's FIN after, the last segment
/// `active`'s ACK of it; TIME_WAIT on `active` only.
fn assert_orderly_close(t: &Trace, active: Side) {
    let passive = active.peer();
    let fin1 = first(t, |s| s.has("FIN"));
    assert_eq!(t.segments[fin1].from, active, "{:?}", shape(t));
    let fin2 = first(t, |s| s.has("FIN") && s.from == passive);
    assert!(fin2 > fin1);
    let last = t.segments.last().unwrap();
    assert_eq!(last.from, active);
    assert_eq!(last.flags, ["ACK"]);
    assert_eq!(last.ack, t.segments[fin2].end_seq());
    assert!(!t.segments.iter().any(|s| s.has("RST")));
    assert_fins_acked(t);

    assert_eq!(t.teardown.first_fin, Some(active));
    assert!(matches!(
        t.teardown.kind,
        TeardownKind::ThreeWay | TeardownKind::FourWay
    ));
    assert_eq!(
        check(t, 4).holds,
        Some(t.teardown.kind == TeardownKind::FourWay),
        "{}",
        check(t, 4).detail
    );
    let tw: Vec<Side> = t.time_wait.iter().map(|tw| tw.side).collect();
    assert_eq!(tw, [active], "TIME_WAIT only on the active closer");
    assert!(states(t, active).contains(&"TIME_WAIT"), "{:?}", t.states);
    assert!(!states(t, passive).contains(&"TIME_WAIT"), "{:?}", t.states);
    let tw = &t.time_wait[0];
    assert!(
        (55.0..=61.0).contains(&tw.seconds()),
        "Linux holds TIME_WAIT 60 s: {tw:?}"
    );
    assert_eq!(check(t, 5).holds, Some(true), "{}", check(t, 5).detail);
}

/// Each end's states as the tracepoint reports them (a sock_diag poll may miss short ones).
fn assert_states(t: &Trace, side: Side, want: &[&str]) {
    match t.states_source {
        StateSource::Tracepoint => assert_eq!(states(t, side), want, "the {side}'s states"),
        StateSource::SockDiagPoll => {
            let got = states(t, side);
            let mut it = want.iter();
            assert!(
                got.iter().all(|s| it.any(|w| w == s)),
                "the {side}'s polled states {got:?} are not in the order of {want:?}"
            );
        }
    }
}

#[test]
fn client_close_is_the_textbook_ladder() {
    let Some(t) = traced(&["--close", "client", "--payload", "100"]) else {
        return;
    };
    assert_handshake(&t);
    assert_echo(&t, 100);
    assert_orderly_close(&t, Side::Client);
    assert_states(
        &t,
        Side::Client,
        &[
            "SYN_SENT",
            "ESTABLISHED",
            "FIN_WAIT1",
            "FIN_WAIT2",
            "TIME_WAIT",
        ],
    );
    assert_states(
        &t,
        Side::Server,
        &[
            "SYN_RECV",
            "ESTABLISHED",
            "CLOSE_WAIT",
            "LAST_ACK",
            "CLOSED",
        ],
    );
    // The client entered FIN_WAIT1 before its FIN left, TIME_WAIT after the server's FIN.
    let at = |side: Side, state: &str| {
        t.states
            .iter()
            .find(|s| s.side == side && s.state == state)
            .map(|s| s.t_us)
            .unwrap()
    };
    let fin = first(&t, |s| s.has("FIN"));
    let server_fin = first(&t, |s| s.has("FIN") && s.from == Side::Server);
    assert!(at(Side::Client, "FIN_WAIT1") <= t.segments[fin].t_us);
    assert!(at(Side::Client, "TIME_WAIT") >= t.segments[server_fin].t_us - 1.0);
    let svg = trace::render_svg(&t);
    assert!(svg.starts_with("<svg") && svg.contains("TIME_WAIT"));
}

#[test]
fn client_nowait_close_leaves_time_wait_on_the_client() {
    let Some(t) = traced(&["--close", "client-nowait"]) else {
        return;
    };
    assert_handshake(&t);
    assert_echo(&t, 64);
    assert_orderly_close(&t, Side::Client);
}

#[test]
fn server_close_leaves_time_wait_on_the_server() {
    let Some(t) = traced(&["--close", "server"]) else {
        return;
    };
    assert_handshake(&t);
    assert_echo(&t, 64);
    assert_orderly_close(&t, Side::Server);
    assert_states(
        &t,
        Side::Client,
        &[
            "SYN_SENT",
            "ESTABLISHED",
            "CLOSE_WAIT",
            "LAST_ACK",
            "CLOSED",
        ],
    );
    assert_states(
        &t,
        Side::Server,
        &[
            "SYN_RECV",
            "ESTABLISHED",
            "FIN_WAIT1",
            "FIN_WAIT2",
            "TIME_WAIT",
        ],
    );
}

#[test]
fn rst_close_has_no_fin_and_no_time_wait() {
    let Some(t) = traced(&["--close", "rst"]) else {
        return;
    };
    assert_handshake(&t);
    assert_echo(&t, 64);
    let rst = first(&t, |s| s.has("RST"));
    assert_eq!(t.segments[rst].from, Side::Client);
    assert_eq!(
        rst,
        t.segments.len() - 1,
        "nothing after the RST: {:?}",
        shape(&t)
    );
    assert!(!t.segments.iter().any(|s| s.has("FIN")), "{:?}", shape(&t));
    assert_eq!(t.teardown.kind, TeardownKind::Rst);
    assert!(t.time_wait.is_empty());
    assert!(!t.states.iter().any(|s| s.state == "TIME_WAIT"));
    assert_states(&t, Side::Client, &["SYN_SENT", "ESTABLISHED", "CLOSED"]);
    assert_states(&t, Side::Server, &["SYN_RECV", "ESTABLISHED", "CLOSED"]);
    assert_eq!(check(&t, 2).holds, None, "no FIN to check");
    assert_eq!(
        check(&t, 4).holds,
        None,
        "an RST: no FIN close to count segments of"
    );
    assert_eq!(check(&t, 5).holds, Some(true), "{}", check(&t, 5).detail);
}

/// A farewell makes the server ack the client's FIN before its own FIN: the close takes
/// four segments, as in the textbook.
#[test]
fn a_half_close_farewell_makes_four_segments() {
    let Some(t) = traced(&["--close", "client", "--server-farewell", "10"]) else {
        return;
    };
    assert_orderly_close(&t, Side::Client);
    let fin = first(&t, |s| s.has("FIN"));
    let server_fin = first(&t, |s| s.has("FIN") && s.from == Side::Server);
    let farewell: u32 = t.segments[fin..server_fin]
        .iter()
        .filter(|s| s.from == Side::Server)
        .map(|s| s.len)
        .sum();
    assert_eq!(farewell, 10, "{:?}", shape(&t));
}

#[test]
fn several_connections_compare_their_isns() {
    let _heavy = common::heavy();
    let opts = TraceOptions {
        conns: 3,
        ..TraceOptions::default()
    };
    let Some(traces) = traced_with(|| common::config(&["--close", "client"]), opts) else {
        return;
    };
    assert_eq!(traces.len(), 3);
    let ports: std::collections::BTreeSet<u16> = traces.iter().map(|t| t.client.port()).collect();
    assert_eq!(ports.len(), 3, "one 4-tuple each");
    for (i, t) in traces.iter().enumerate() {
        assert_eq!((t.conn, t.conns), (i as u32 + 1, 3));
        assert_handshake(t);
        let c = check(t, 3);
        assert_eq!(c.holds, Some(true), "{}", c.detail);
        assert!(c.detail.starts_with("3 connections"), "{}", c.detail);
    }
}

/// IPv6 through an external loopback target.
#[test]
fn an_ipv6_loopback_target() {
    let _heavy = common::heavy();
    let server = std::sync::Mutex::new(None);
    let cfg = || {
        let listen: SocketAddr = "[::1]:0".parse().unwrap();
        let srv = EchoServer::start(ServerConfig {
            listen,
            ..ServerConfig::default()
        })
        .expect("an echo server on ::1 in the new namespace");
        let target = srv.local_addr().to_string();
        *server.lock().unwrap() = Some(srv);
        common::config(&["--target", &target, "--close", "client"])
    };
    let Some(traces) = traced_with(cfg, TraceOptions::default()) else {
        return;
    };
    let t = &traces[0];
    assert!(t.client.is_ipv6() && t.server.is_ipv6());
    assert_eq!(t.server_close, None, "an external server");
    assert_handshake(t);
    assert_orderly_close(t, Side::Client);
    if let Some(s) = server.into_inner().unwrap() {
        s.stop();
    }
}

/// `tcpbench trace -6 --isolate`: the embedded server on [::1], the AF_PACKET capture on
/// the namespace's lo reads the IPv6 segments, and the ladder's checks are made from them.
#[test]
fn trace_6_captures_the_ipv6_ladder() {
    let _heavy = common::heavy();
    if !common::require_netns() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("trace.json");
    let out = common::bin()
        .args(["trace", "-6", "--isolate", "--payload", "100", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("client [::1]:"), "{stdout}");
    let traces: Vec<Trace> = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let t = &traces[0];
    assert!(
        t.client.ip().is_loopback() && t.client.is_ipv6(),
        "{}",
        t.client
    );
    assert!(
        t.server.ip().is_loopback() && t.server.is_ipv6(),
        "{}",
        t.server
    );
    assert_handshake(t);
    assert_echo(t, 100);
    assert_orderly_close(t, Side::Client);
    assert_eq!(check(t, 5).holds, Some(true), "{}", check(t, 5).detail);
}

#[test]
fn a_remote_target_is_refused() {
    let cfg = common::config(&["--target", "192.0.2.1:7", "--allow-remote"]);
    match trace::trace(&cfg, &TraceOptions::default()) {
        Err(TraceError::NotLoopback(a)) => assert_eq!(a.to_string(), "192.0.2.1:7"),
        other => panic!("expected NotLoopback, got {other:?}"),
    }
}

/// `--wait-time-wait` measures the whole TIME_WAIT: a minute on Linux. It does not take the
/// heavy lock: it holds one idle socket for that minute while the other tests run.
#[test]
fn time_wait_is_measured_until_it_ends() {
    let opts = TraceOptions {
        wait_time_wait: true,
        ..TraceOptions::default()
    };
    let Some(traces) = traced_with(|| common::config(&["--close", "client"]), opts) else {
        return;
    };
    let t = &traces[0];
    let tw = &t.time_wait[0];
    assert_eq!(tw.side, Side::Client);
    let measured = tw.measured_s.expect("measured until gone");
    // 60 s, and the kernel's timer wheel may fire a timer that far out up to one slot late
    // (about 2 s here, HZ=250).
    assert!((59.5..=65.0).contains(&measured), "{tw:?}");
    let end = t.states.last().unwrap();
    assert_eq!((end.side, end.state.as_str()), (Side::Client, "CLOSED"));
    assert_eq!(end.from.as_deref(), Some("TIME_WAIT"));
    assert_eq!(check(t, 5).holds, Some(true));
    assert!(
        check(t, 5).detail.contains("lasted"),
        "{}",
        check(t, 5).detail
    );
}

/// A passive side that waits before it closes: its kernel acks the FIN on its own when the
/// delayed ACK is due, and the close takes the textbook's four segments.
#[test]
fn a_slow_passive_close_makes_four_segments() {
    use std::io::{Read, Write};
    let _heavy = common::heavy();
    let cfg = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = s.read(&mut buf) {
                s.write_all(&buf[..n]).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        });
        common::config(&["--target", &target, "--close", "client"])
    };
    let Some(traces) = traced_with(cfg, TraceOptions::default()) else {
        return;
    };
    let t = &traces[0];
    assert_orderly_close(t, Side::Client);
    assert_eq!(t.teardown.kind, TeardownKind::FourWay, "{:?}", shape(t));
    let fin = first(t, |s| s.has("FIN"));
    let ack = &t.segments[fin + 1];
    assert_eq!(
        (ack.from, ack.flags.as_slice()),
        (Side::Server, &["ACK".to_string()][..])
    );
    let server_fin = &t.segments[fin + 2];
    assert!(server_fin.has("FIN") && server_fin.t_us - t.segments[fin].t_us >= 150_000.0);
}

/// The fallback where tracefs is not available: sock_diag polled in a tight loop sees the
/// states that last long enough, in order, and TIME_WAIT itself.
#[test]
fn the_sock_diag_fallback_sees_the_lasting_states() {
    let _heavy = common::heavy();
    let opts = TraceOptions {
        poll_sock_diag: true,
        ..TraceOptions::default()
    };
    let Some(traces) = traced_with(|| common::config(&["--close", "client"]), opts) else {
        return;
    };
    let t = &traces[0];
    assert_eq!(t.states_source, StateSource::SockDiagPoll);
    assert!(t.notes.iter().any(|n| n.contains("polled from sock_diag")));
    assert_handshake(t);
    assert_orderly_close(t, Side::Client);
    assert_states(
        t,
        Side::Client,
        &[
            "SYN_SENT",
            "ESTABLISHED",
            "FIN_WAIT1",
            "FIN_WAIT2",
            "TIME_WAIT",
        ],
    );
    assert_states(
        t,
        Side::Server,
        &[
            "SYN_RECV",
            "ESTABLISHED",
            "CLOSE_WAIT",
            "LAST_ACK",
            "CLOSED",
        ],
    );
    assert!(
        t.states
            .iter()
            .all(|s| s.observed == trace::Observed::SockDiag)
    );
}

/// Fast Open in the ladder: the first SYN asks for a cookie and carries nothing, the second
/// carries the request, and the server's SYN+ACK acks those bytes; checks (1) and (3) hold
/// for both (two connections give one ISN gap, which shows no counter).
#[test]
fn fastopen_puts_the_second_request_in_the_syn_and_the_checks_say_so() {
    let _heavy = common::heavy();
    let opts = TraceOptions {
        conns: 2,
        ..TraceOptions::default()
    };
    let cfg = || {
        tcpbench::observe::netns::set_sysctl("net.ipv4.tcp_fastopen", "3").unwrap();
        common::config(&["--fastopen", "--server-fastopen", "64", "--close", "client"])
    };
    let Some(traces) = traced_with(cfg, opts) else {
        return;
    };
    let syn = |t: &Trace| {
        t.segments
            .iter()
            .find(|s| s.from == Side::Client && s.has("SYN"))
            .expect("a SYN")
            .clone()
    };
    let (first, second) = (syn(&traces[0]), syn(&traces[1]));
    assert_eq!(first.len, 0, "the cookie request carries no data");
    assert!(second.len > 0, "the second SYN carries the request");
    for t in &traces {
        for id in [1, 3] {
            let c = check(t, id);
            assert_eq!(c.holds, Some(true), "check {id}: {}", c.detail);
        }
    }
    let c = check(&traces[1], 1);
    assert!(c.detail.contains("Fast Open"), "{}", c.detail);
    // The server's full socket: at the last ACK for the cookie request, at the SYN (before
    // its SYN+ACK) for the data-in-SYN; the ladder's note says which.
    let syn_recv_before_syn_ack = |t: &Trace| {
        let recv = t
            .states
            .iter()
            .find(|s| s.side == Side::Server && s.state == "SYN_RECV");
        let sa = t
            .segments
            .iter()
            .find(|s| s.from == Side::Server && s.has("SYN"));
        recv.unwrap().t_us <= sa.unwrap().t_us
    };
    assert!(!syn_recv_before_syn_ack(&traces[0]) && syn_recv_before_syn_ack(&traces[1]));
    let texts: Vec<String> = traces.iter().map(tcpbench::trace::render_text).collect();
    assert!(
        texts[0].contains("SYN_RECV shows at the handshake's last ACK"),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].contains("SYN_RECV shows before its SYN+ACK"),
        "{}",
        texts[1]
    );
}
