//! The report's figures against views of the same run that tcpbench does not make itself:
//! every segment on lo (AF_PACKET, kernel timestamps, as `trace` captures) and every state
//! change of the sockets (the tracepoint `sock:inet_sock_set_state` in a private tracefs
//! instance), both taken while the run goes, in a fresh network namespace of its own.
//!
//! - `handshake_rtt` (TCP_INFO) against the wire's SYN → SYN+ACK;
//! - the connect edge against the kernel's own SYN_SENT → ESTABLISHED;
//! - the open loop's start lag, and the SYNs' own lag behind an ideal schedule on the wire;
//! - the server's accept wait against an acceptor made slow on purpose.
//!
//! Needs root (a network namespace, AF_PACKET, tracefs): without it these tests fail, they
//! never skip. Each prints its figures (`cargo test --test measure -- --nocapture`).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tcpbench::config::Target;
use tcpbench::observe::tracefs::{Event, Tracer};
use tcpbench::report::Report;
use tcpbench::server::EchoServer;
use tcpbench::trace::build::{RawSegment, flag};
use tcpbench::trace::capture::Capture;

const SYN_SENT: u8 = 2;
const ESTABLISHED: u8 = 1;
const CLOSE: u8 = 7;

/// One run, and what the wire and the kernel saw of it.
struct Observed {
    report: Report,
    /// Each client SYN on lo, in ns on CLOCK_MONOTONIC, in order.
    syns: Vec<i64>,
    /// Per connection: its SYN to the server's SYN+ACK on lo, µs.
    syn_to_syn_ack_us: Vec<f64>,
    /// Per connection: its SYN to its own ACK of the SYN+ACK on lo, µs: the ACK leaves as
    /// the client processes the SYN+ACK, where the kernel takes its RTT sample.
    syn_to_ack_us: Vec<f64>,
    /// Per connection: the client socket's SYN_SENT → ESTABLISHED, µs (the tracepoint).
    syn_sent_to_established_us: Vec<f64>,
}

/// Runs `flags` against a server started as the embedded one would be (so its port is
/// known before the run), with the capture and the tracepoint on that port, drained while
/// the run goes.
fn observed(flags: &[&str]) -> Observed {
    in_fresh_namespace(|| observed_here(flags))
}

/// Runs `f` on a thread of its own in a fresh network namespace (its own loopback).
fn in_fresh_namespace<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let _heavy = common::heavy();
    std::thread::scope(|s| {
        s.spawn(|| {
            tcpbench::observe::netns::enter_fresh().unwrap_or_else(|e| {
                panic!(
                    "these tests need root: a fresh network namespace (unshare CLONE_NEWNET) failed: {e}"
                )
            });
            f()
        })
        .join()
        .expect("the measuring thread panicked")
    })
}

fn observed_here(flags: &[&str]) -> Observed {
    let mut cfg = common::config(flags);
    let Target::Embedded(server_cfg) = cfg.target.clone() else {
        unreachable!("no --target given")
    };
    let server = EchoServer::start(server_cfg).expect("the echo server starts");
    let addr = server.local_addr();
    cfg.target = Target::External(addr);
    let mut capture = Capture::open().expect("an AF_PACKET socket (root)");
    capture
        .start(addr.port())
        .expect("the capture on lo starts");
    let mut tracer = Tracer::start(addr.port()).expect("the tracepoint in a tracefs instance");
    let done = AtomicBool::new(false);
    let (report, segments, events) = std::thread::scope(|s| {
        let drainer = s.spawn(|| {
            // The observer must not move what it observes: SCHED_IDLE, so a load thread
            // that wakes always preempts it (a normal drainer parsing a batch held a woken
            // pacer off its CPU for ~400 µs: the 1000/s start lag's p99 in this build).
            let idle = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is this thread; a valid sched_param for SCHED_IDLE.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) };
            let (mut segments, mut events) = (Vec::new(), Vec::new());
            loop {
                let last = done.load(Ordering::Acquire);
                capture.drain(&mut segments).expect("the capture drains");
                tracer.drain(&mut events).expect("trace_pipe drains");
                if last {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            assert_eq!(capture.take_drops(), 0, "the capture dropped frames");
            assert_eq!(tracer.lost, 0, "the trace ring buffer overflowed");
            (segments, events)
        });
        let report = tcpbench::run(&cfg, true).expect("the run completes");
        // Whatever the kernel still has queued is read in the drainer's last round.
        std::thread::sleep(Duration::from_millis(20));
        done.store(true, Ordering::Release);
        let (segments, events) = drainer.join().expect("the drainer panicked");
        (report, segments, events)
    });
    server.stop();
    assert_eq!(report.totals.failed, 0, "errors: {:?}", report.errors);
    let Wire {
        syns,
        syn_to_syn_ack_us,
        syn_to_ack_us,
    } = wire(&segments, addr.port());
    Observed {
        syn_sent_to_established_us: syn_sent_to_established(&events, addr.port()),
        report,
        syns,
        syn_to_syn_ack_us,
        syn_to_ack_us,
    }
}

/// What the capture shows of the handshakes.
struct Wire {
    syns: Vec<i64>,
    syn_to_syn_ack_us: Vec<f64>,
    syn_to_ack_us: Vec<f64>,
}

/// The client SYNs in order, and each connection's SYN → SYN+ACK and SYN → ACK.
fn wire(segments: &[RawSegment], port: u16) -> Wire {
    let mut sorted: Vec<&RawSegment> = segments.iter().collect();
    sorted.sort_by_key(|s| s.mono_ns);
    let mut w = Wire {
        syns: Vec::new(),
        syn_to_syn_ack_us: Vec::new(),
        syn_to_ack_us: Vec::new(),
    };
    // Per client port: when its SYN left, and whether its SYN+ACK came back yet.
    let mut open: HashMap<u16, (i64, bool)> = HashMap::new();
    let us = |from: i64, to: i64| (to - from) as f64 / 1e3;
    let syn_ack = flag::SYN | flag::ACK;
    for s in sorted {
        if s.is_first_syn() && s.dst.port() == port {
            w.syns.push(s.mono_ns);
            open.insert(s.src.port(), (s.mono_ns, false));
        } else if s.flags & syn_ack == syn_ack && s.src.port() == port {
            if let Some((sent, answered)) = open.get_mut(&s.dst.port())
                && !*answered
            {
                *answered = true;
                w.syn_to_syn_ack_us.push(us(*sent, s.mono_ns));
            }
        } else if s.flags & syn_ack == flag::ACK
            && s.dst.port() == port
            && let Some((sent, true)) = open.get(&s.src.port()).copied()
        {
            w.syn_to_ack_us.push(us(sent, s.mono_ns));
            open.remove(&s.src.port());
        }
    }
    w
}

/// Each client socket's SYN_SENT → ESTABLISHED. A connecting socket enters SYN_SENT before
/// its local port is chosen (the event reads port 0), so a SYN_SENT is paired with the next
/// client ESTABLISHED, and only when no other connect was in flight between them.
fn syn_sent_to_established(events: &[Event], port: u16) -> Vec<f64> {
    let mut sorted: Vec<&Event> = events.iter().filter(|e| e.remote.port() == port).collect();
    sorted.sort_by_key(|e| e.mono_ns);
    let (mut out, mut in_flight, mut since) = (Vec::new(), 0u32, 0i64);
    for e in sorted {
        match (e.old, e.new) {
            (CLOSE, SYN_SENT) => {
                in_flight += 1;
                since = e.mono_ns;
            }
            (SYN_SENT, ESTABLISHED) => {
                if in_flight == 1 {
                    out.push((e.mono_ns - since) as f64 / 1e3);
                }
                in_flight = in_flight.saturating_sub(1);
            }
            (SYN_SENT, _) => in_flight = in_flight.saturating_sub(1),
            _ => {}
        }
    }
    out
}

fn quantile(v: &[f64], q: f64) -> f64 {
    assert!(!v.is_empty(), "nothing observed");
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// How late each SYN was behind an ideal schedule of one every `interval_ns`, anchored so
/// that the earliest is on time: the wire's own view of how the schedule was kept.
fn wire_lag_us(syns: &[i64], interval_ns: f64) -> Vec<f64> {
    let ideal = |i: usize| (i as f64 * interval_ns) as i64;
    let origin = syns
        .iter()
        .enumerate()
        .map(|(i, &t)| t - ideal(i))
        .min()
        .expect("SYNs seen");
    syns.iter()
        .enumerate()
        .map(|(i, &t)| (t - origin - ideal(i)) as f64 / 1e3)
        .collect()
}

/// Each figure of a run beside its independent view, printed for the record.
fn print(label: &str, o: &Observed) {
    let r = &o.report;
    println!(
        "{label}: {} conns; connect p50 {:.1} µs vs SYN_SENT->ESTABLISHED p50 {:.1} µs ({} paired); \
         handshake_rtt p50 {:.1} µs vs SYN->SYN+ACK p50 {:.1} µs, SYN->ACK p50 {:.1} µs ({} on the wire); SYN retransmitted {}",
        r.totals.succeeded,
        r.latency.connect.p50_us,
        quantile(&o.syn_sent_to_established_us, 0.5),
        o.syn_sent_to_established_us.len(),
        r.latency.handshake_rtt.p50_us,
        quantile(&o.syn_to_syn_ack_us, 0.5),
        quantile(&o.syn_to_ack_us, 0.5),
        o.syn_to_ack_us.len(),
        r.totals.syn_retransmitted,
    );
    if let (Some(lag), Some(s), Some(rate)) = (
        &r.latency.start_lag,
        &r.latency_from_schedule,
        r.config.load.rate(),
    ) {
        let wire = wire_lag_us(&o.syns, 1e9 / rate);
        println!(
            "{label}: start_lag p50 {:.1} p99 {:.1} µs vs the SYNs' lag on the wire p50 {:.1} p99 {:.1} µs; \
             from-schedule connect p50 {:.1} µs; {} queued",
            lag.p50_us,
            lag.p99_us,
            quantile(&wire, 0.5),
            quantile(&wire, 0.99),
            s.connect.p50_us,
            s.queued,
        );
    }
}

/// Runs `flags` up to `tries` times until `check` passes: a busy machine gets a few tries,
/// and the test fails (never skips) when none passes.
fn until_one_passes(
    tries: usize,
    label: &str,
    flags: &[&str],
    check: impl Fn(&Observed) -> Result<(), String>,
) {
    let mut seen = Vec::new();
    for attempt in 1..=tries {
        let o = observed(flags);
        print(&format!("{label}, try {attempt}"), &o);
        match check(&o) {
            Ok(()) => return,
            Err(why) => seen.push(why),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("{label}: failed in {tries} tries: {}", seen.join("; "));
}

/// The kernel's RTT sample against the wire: it starts as the SYN is built (just before
/// the tap sees it) and ends as the client processes the SYN+ACK, after the tap saw the
/// SYN+ACK and before the client's ACK, sent from that processing, reaches the tap. (On
/// loopback the SYN+ACK waits in the socket's backlog until connect() releases the socket:
/// the ACK, not the SYN+ACK, is close to the sample's end.) So its p50 lies between the
/// wire's SYN -> SYN+ACK and SYN -> ACK p50s, give or take 1 µs (tcpi_rtt is the difference
/// of two whole-µs clock reads). Where in the bracket depends on how long the SYN+ACK
/// waits in the backlog (seen: 7 µs between 4.2 and 9.5), so no closer claim is made.
fn handshake_matches_the_wire(o: &Observed) -> Result<(), String> {
    let r = &o.report;
    let n = r.totals.succeeded;
    if r.latency.handshake_rtt.count != n || o.syn_to_ack_us.len() as u64 != n {
        return Err(format!(
            "{} kernel samples, {} handshakes on the wire, of {n}",
            r.latency.handshake_rtt.count,
            o.syn_to_ack_us.len()
        ));
    }
    let kernel = r.latency.handshake_rtt.p50_us;
    let (syn_ack, ack) = (
        quantile(&o.syn_to_syn_ack_us, 0.5),
        quantile(&o.syn_to_ack_us, 0.5),
    );
    if kernel < syn_ack - 1.0 || kernel > ack + 1.0 {
        return Err(format!(
            "handshake_rtt p50 {kernel} µs against SYN -> SYN+ACK {syn_ack:.1} µs and SYN -> ACK {ack:.1} µs"
        ));
    }
    Ok(())
}

/// The connect edge against the tracepoint: it spans the whole connect() call, which holds
/// SYN_SENT -> ESTABLISHED (whole µs, as trace_pipe prints them), so it is never shorter,
/// and at most three times as long.
fn edge_matches_the_kernel(o: &Observed) -> Result<(), String> {
    let n = o.report.totals.succeeded as usize;
    let paired = o.syn_sent_to_established_us.len();
    if paired * 100 < n * 95 {
        return Err(format!("{paired} of {n} handshakes paired"));
    }
    let kernel = quantile(&o.syn_sent_to_established_us, 0.5);
    let edge = o.report.latency.connect.p50_us;
    if edge < kernel - 1.0 || edge > 3.0 * kernel {
        return Err(format!(
            "connect p50 {edge} µs against SYN_SENT -> ESTABLISHED p50 {kernel} µs"
        ));
    }
    Ok(())
}

/// Start lag p99 under 100 µs, and the SYNs on the wire as punctual (their lag adds
/// socket() and connect()'s way to the SYN, a few µs, and is anchored on the earliest).
fn schedule_kept(o: &Observed) -> Result<(), String> {
    let r = &o.report;
    let lag = r
        .latency
        .start_lag
        .as_ref()
        .ok_or("no start lag in an open loop")?;
    let rate = r.config.load.rate().ok_or("not an open loop")?;
    if lag.count != r.totals.attempted || o.syns.len() as u64 != r.totals.attempted {
        return Err(format!(
            "{} lags and {} SYNs of {} starts",
            lag.count,
            o.syns.len(),
            r.totals.attempted
        ));
    }
    let wire = quantile(&wire_lag_us(&o.syns, 1e9 / rate), 0.99);
    if lag.p99_us >= 100.0 || wire >= 150.0 {
        return Err(format!(
            "start_lag p99 {:.1} µs, the SYNs' lag p99 {wire:.1} µs",
            lag.p99_us
        ));
    }
    Ok(())
}

const ONE_FLOW: &[&str] = &["--concurrency", "1", "--conns", "2000", "--close", "rst"];

#[test]
fn handshake_rtt_is_the_kernels_sample_of_the_handshake_on_the_wire() {
    until_one_passes(3, "concurrency 1", ONE_FLOW, handshake_matches_the_wire);
}

#[test]
fn the_connect_edge_is_close_to_the_kernels_syn_sent_to_established() {
    until_one_passes(3, "concurrency 1", ONE_FLOW, edge_matches_the_kernel);
}

#[test]
fn the_open_loop_keeps_its_schedule_to_100_us_at_1000_per_second() {
    let flags = ["--rate", "1000", "--conns", "1000", "--close", "rst"];
    until_one_passes(5, "rate 1000", &flags, schedule_kept);
}

#[test]
fn at_5000_per_second_the_handshake_figures_still_match_their_views() {
    let flags = ["--rate", "5000", "--conns", "2000", "--close", "rst"];
    until_one_passes(3, "rate 5000", &flags, |o| {
        handshake_matches_the_wire(o).and(edge_matches_the_kernel(o))
    });
}

#[test]
fn the_accept_wait_shows_a_slow_acceptor() {
    let run = |flags: &[&str]| {
        in_fresh_namespace(|| {
            tcpbench::run(&common::config(flags), true).expect("the run completes")
        })
    };
    let base = ["--concurrency", "1", "--conns", "300", "--close", "rst"];
    let quick = run(&base);
    let slow = run(&[&base[..], &["--server-accept-delay", "5ms"]].concat());
    let wait = |r: &Report| {
        let w = r.server.as_ref().and_then(|s| s.accept_wait.clone());
        w.expect("the accept wait is measured as root")
    };
    let (q, s) = (wait(&quick), wait(&slow));
    println!(
        "accept wait p50: {:.1} µs ({} sampled), with a 5 ms accept delay {:.1} µs ({} sampled)",
        q.p50_us, q.count, s.p50_us, s.count
    );
    // About 1 in 8 kernel-chosen (even) ports has its low four bits clear.
    for w in [&q, &s] {
        assert!((10..=100).contains(&w.count), "{} of 300 sampled", w.count);
    }
    // One connection at a time: the next arrives a cycle after the last accept, while the
    // slow acceptor sleeps the rest of its 5 ms (tokio's timer may add a millisecond).
    assert!(q.p50_us < 2_000.0, "{q:?}");
    assert!((3_000.0..=20_000.0).contains(&s.p50_us), "{s:?}");
}
