//! Running a trace (Linux only): connections one after another through `run`'s own
//! connection code, with the capture, the state source and sock_diag around each, then the
//! wait for TIME_WAIT, then each connection's [`Trace`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::build::{self, Isn, Observation, RawSegment, RawState, RawTimeWait};
use super::capture::Capture;
use super::clock::mono_ns;
use super::model::{Observed, Side, StateSource, Trace, tcp_state};
use super::states::{Diag, DiagSocket, Poller, Seen};
use super::{TraceError, TraceOptions};
use crate::config::{RunConfig, Target, is_local};
use crate::failure::Failure;
use crate::load::conn::{self, PortCycle, Scratch};
use crate::load::proto::Protocol;
use crate::observe::tracefs::{Event, Tracer};
use crate::server::EchoServer;

/// How long a connection may take to settle after `conn::run` returned.
const SETTLE: Duration = Duration::from_secs(3);
/// Polls in a row with the sockets settled and no new segment before a connection is done.
const QUIET_POLLS: u32 = 3;
/// The step of `--wait-time-wait`'s polls, and how long it waits at most after a TIME_WAIT
/// was first seen (Linux holds it 60 s).
const TW_STEP: Duration = Duration::from_millis(50);
const TW_LIMIT: Duration = Duration::from_secs(62);

/// Where the states come from during the run.
enum States {
    Tracepoint(Tracer),
    Poll(Poller),
}

/// What one connection left, before it becomes a trace.
struct Conn {
    start_ns: i64,
    end_ns: i64,
    client: SocketAddr,
    server: SocketAddr,
    outcome: Option<String>,
    segments: Vec<RawSegment>,
    time_wait: Vec<RawTimeWait>,
    drops: u32,
    notes: Vec<String>,
}

fn describe(f: &Failure) -> String {
    match f.errno_name() {
        Some(errno) => format!("{} failed: {} ({errno})", f.phase, f.kind),
        None => format!("{} failed: {}", f.phase, f.kind),
    }
}

fn diag_error(e: std::io::Error) -> TraceError {
    TraceError::SockDiag(e.to_string())
}

pub fn trace(cfg: &RunConfig, opts: &TraceOptions) -> Result<Vec<Trace>, TraceError> {
    if opts.conns == 0 {
        return Err(TraceError::Usage(
            "--conns must be at least 1 for a trace".into(),
        ));
    }
    if let Target::External(addr) = &cfg.target
        && !is_local(addr.ip())
    {
        return Err(TraceError::NotLoopback(*addr));
    }
    // The permission check next: nothing is started when the capture is not allowed.
    let mut capture = Capture::open()?;
    let (server, target, server_close) = match &cfg.target {
        Target::Embedded(s) => {
            let srv = EchoServer::start(s.clone()).map_err(TraceError::Server)?;
            let addr = srv.local_addr();
            (Some(srv), addr, Some(s.close))
        }
        Target::External(addr) => (None, *addr, None),
    };
    capture
        .start(target.port())
        .map_err(|e| TraceError::Capture(format!("cannot start capturing on lo: {e}")))?;
    // An external server may be dual-stack: its sockets IPv6 with mapped addresses.
    let dual_stack = server.is_none();
    let mut diag = Diag::open(target, dual_stack).map_err(diag_error)?;
    let mut run_notes = Vec::new();
    let tracer = if opts.poll_sock_diag {
        Err("sock_diag polling was asked for".to_string())
    } else {
        Tracer::start(target.port())
    };
    let mut states = match tracer {
        Ok(t) => States::Tracepoint(t),
        Err(why) => {
            run_notes.push(format!(
                "the tracepoint was not used ({why}): states were polled from sock_diag"
            ));
            let poll = Diag::open(target, dual_stack).map_err(diag_error)?;
            States::Poll(Poller::start(poll).map_err(diag_error)?)
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TraceError::Runtime)?;
    let ports = PortCycle::new(cfg.socket.ports);
    let source = cfg.socket.bind.first().copied();
    let protocol = Protocol::from_config(&cfg.protocol, cfg.payload, target)
        .map_err(|e| TraceError::Usage(e.to_string()))?;
    let mut scratch = Scratch::new(cfg, std::sync::Arc::new(protocol));
    // Never sent: a trace is not interrupted between phases (a --hold runs in full).
    let (_never, mut stop) = tokio::sync::watch::channel(false);

    let mut all_segments = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut conns = Vec::new();
    for i in 1..=opts.conns {
        let start_ns = mono_ns();
        let first = all_segments.len();
        let result = rt.block_on(conn::run(
            cfg,
            target,
            source,
            ports.as_ref(),
            &mut stop,
            &mut scratch,
        ));
        let (client, server_addr, last) =
            settle(&mut capture, &mut all_segments, first, &mut diag, target)?;
        let (Some(client), Some(server_addr)) = (client, server_addr) else {
            return Err(TraceError::NothingCaptured { conn: i, target });
        };
        if let States::Tracepoint(t) = &mut states {
            t.drain(&mut events)
                .map_err(|e| TraceError::Tracefs(format!("cannot read trace_pipe: {e}")))?;
        }
        let now = mono_ns();
        let mut notes = Vec::new();
        if !last.settled {
            notes.push(format!(
                "the connection had not settled {} s after it ended: sockets still open",
                SETTLE.as_secs()
            ));
        }
        let time_wait = last
            .sockets
            .iter()
            .filter(|s| s.state == tcp_state::TIME_WAIT)
            .filter_map(|s| {
                Some(RawTimeWait {
                    side: build::side_of(s.local, s.remote, client, server_addr)?,
                    seen_mono_ns: now,
                    expires_ms: s.expires_ms,
                    gone: None,
                })
            })
            .collect();
        conns.push(Conn {
            start_ns,
            end_ns: mono_ns(),
            client,
            server: server_addr,
            outcome: result.err().as_ref().map(describe),
            segments: all_segments[first..]
                .iter()
                .filter(|s| {
                    (s.src == client && s.dst == server_addr)
                        || (s.src == server_addr && s.dst == client)
                })
                .cloned()
                .collect(),
            time_wait,
            drops: capture.take_drops(),
            notes,
        });
    }

    if let Some(largest) = capture.clock_steps().iter().max_by_key(|d| d.abs()) {
        let steps = capture.clock_steps();
        let us = |ns: i64| format!("{:+.1} µs", ns as f64 / 1e3);
        run_notes.push(format!(
            "the wall clock was stepped {} time(s) during the trace (largest {}, in all {}); \
             the capture's timestamps were put back on the monotonic clock around each step",
            steps.len(),
            us(*largest),
            us(steps.iter().sum())
        ));
    }
    let (source_kind, raw_states) = match states {
        States::Tracepoint(mut t) => {
            t.drain(&mut events)
                .map_err(|e| TraceError::Tracefs(format!("cannot read trace_pipe: {e}")))?;
            if t.lost > 0 {
                run_notes.push(format!(
                    "the trace buffer overflowed {} time(s): some state changes are missing",
                    t.lost
                ));
            }
            drop(t); // removes the instance
            (StateSource::Tracepoint, Raw::Events(events))
        }
        States::Poll(p) => (
            StateSource::SockDiagPoll,
            Raw::Polled(p.stop().map_err(diag_error)?),
        ),
    };
    // After the states are in: the poller would spin for the whole minute.
    if opts.wait_time_wait {
        wait_time_wait(&mut conns, &mut diag)?;
    }
    if let Some(s) = server {
        s.stop();
    }

    let isns: Vec<Isn> = conns
        .iter()
        .filter_map(|c| build::isn(c.client, &c.segments))
        .collect();
    let total = opts.conns;
    Ok(conns
        .into_iter()
        .zip(1..)
        .map(|(c, i)| {
            let states = raw_states.of(&c);
            let mut notes = run_notes.clone();
            notes.extend(c.notes);
            let o = Observation {
                conn: i,
                conns: total,
                client: c.client,
                server: c.server,
                close: cfg.socket.close,
                server_close,
                states_source: source_kind,
                outcome: c.outcome,
                segments: c.segments,
                states,
                time_wait: c.time_wait,
                capture_drops: c.drops,
                notes,
            };
            build::build(o, &isns)
        })
        .collect())
}

/// The end of a settle: the sockets of the 4-tuple as last listed, and whether they settled.
struct Settled {
    sockets: Vec<DiagSocket>,
    settled: bool,
}

/// Waits until the connection's sockets are gone or in TIME_WAIT and no new segment came
/// for a few polls; returns the client and server addresses from the first SYN.
fn settle(
    capture: &mut Capture,
    segments: &mut Vec<RawSegment>,
    first: usize,
    diag: &mut Diag,
    target: SocketAddr,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>, Settled), TraceError> {
    let deadline = Instant::now() + SETTLE;
    let mut quiet = 0;
    loop {
        let before = segments.len();
        capture
            .drain(segments)
            .map_err(|e| TraceError::Capture(format!("cannot read the capture: {e}")))?;
        let syn = segments[first..].iter().find(|s| {
            s.is_first_syn()
                && s.dst.port() == target.port()
                && (s.dst.ip() == target.ip() || target.ip().is_unspecified())
        });
        let (client, server) = (syn.map(|s| s.src), syn.map(|s| s.dst));
        let sockets: Vec<DiagSocket> = match (client, server) {
            (Some(c), Some(s)) => diag
                .sockets()
                .map_err(diag_error)?
                .into_iter()
                .filter(|d| build::side_of(d.local, d.remote, c, s).is_some())
                .collect(),
            _ => Vec::new(),
        };
        let busy = sockets.iter().any(|s| s.state != tcp_state::TIME_WAIT);
        if !busy && segments.len() == before {
            quiet += 1;
        } else {
            quiet = 0;
        }
        let out_of_time = Instant::now() > deadline;
        if quiet >= QUIET_POLLS || out_of_time {
            let settled = !busy;
            return Ok((client, server, Settled { sockets, settled }));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Polls every TIME_WAIT socket seen until sock_diag no longer lists it, or [`TW_LIMIT`].
fn wait_time_wait(conns: &mut [Conn], diag: &mut Diag) -> Result<(), TraceError> {
    let started = Instant::now();
    let step_ms = TW_STEP.as_secs_f64() * 1000.0;
    // A dump can miss a socket while other namespaces churn the shared hash table: a socket
    // is gone once two polls in a row do not list it, from the first of them.
    let mut missed: std::collections::HashMap<(usize, usize), i64> = Default::default();
    loop {
        let pending = conns
            .iter()
            .flat_map(|c| c.time_wait.iter())
            .any(|tw| tw.gone.is_none());
        if !pending {
            return Ok(());
        }
        if started.elapsed() > TW_LIMIT {
            for c in conns.iter_mut() {
                if c.time_wait.iter().any(|tw| tw.gone.is_none()) {
                    c.notes.push(format!(
                        "TIME_WAIT still held {} s after it was first seen",
                        TW_LIMIT.as_secs()
                    ));
                }
            }
            return Ok(());
        }
        std::thread::sleep(TW_STEP);
        let listed = diag.sockets().map_err(diag_error)?;
        let now = mono_ns();
        for (ci, c) in conns.iter_mut().enumerate() {
            let (client, server) = (c.client, c.server);
            for (ti, tw) in c.time_wait.iter_mut().enumerate() {
                if tw.gone.is_some() {
                    continue;
                }
                let (local, remote) = match tw.side {
                    Side::Client => (client, server),
                    Side::Server => (server, client),
                };
                let held = listed.iter().any(|s| {
                    s.local == local && s.remote == remote && s.state == tcp_state::TIME_WAIT
                });
                if held {
                    missed.remove(&(ci, ti));
                } else if let Some(first) = missed.insert((ci, ti), now) {
                    tw.gone = Some((first, step_ms));
                }
            }
        }
    }
}

/// The states of the whole run, before they are split by connection.
enum Raw {
    Events(Vec<Event>),
    Polled(Vec<Seen>),
}

impl Raw {
    /// The states of connection `c`: its 4-tuple, within its time.
    fn of(&self, c: &Conn) -> Vec<RawState> {
        let within = |t: i64| t >= c.start_ns && t <= c.end_ns;
        match self {
            Raw::Events(events) => events
                .iter()
                .filter(|e| within(e.mono_ns))
                .filter_map(|e| {
                    Some(RawState {
                        mono_ns: e.mono_ns,
                        side: build::side_of_change(
                            e.local, e.remote, e.old, e.new, c.client, c.server,
                        )?,
                        old: Some(e.old),
                        new: e.new,
                        observed: Observed::Tracepoint,
                    })
                })
                .collect(),
            Raw::Polled(seen) => seen
                .iter()
                .filter(|s| within(s.mono_ns))
                .filter_map(|s| {
                    Some(RawState {
                        mono_ns: s.mono_ns,
                        side: build::side_of(s.local, s.remote, c.client, c.server)?,
                        old: s.old,
                        new: s.state,
                        observed: Observed::SockDiag,
                    })
                })
                .collect(),
        }
    }
}
