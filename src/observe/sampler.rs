//! The socket-state sampler: a thread that counts the run's sockets by state and side while
//! the load runs and for `--drain` after it.
//!
//! Every tick it reads the namespace's TIME_WAIT total from /proc/net/sockstat (cheap); the
//! exact per-port breakdown through sock_diag costs a walk of the kernel's whole socket table,
//! so it runs at an interval stretched to keep its CPU under [`BUDGET`] of one core.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::sockdiag::{Counter, Counts, STATES, Side, Source, TIME_WAIT};

/// Share of one core the exact breakdown may use.
pub const BUDGET: f64 = 0.02;

/// The report's `tcp_states` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TcpStates {
    /// The tick: how often the TIME_WAIT total was read.
    pub interval_ms: f64,
    /// Shortest and longest interval between exact breakdowns (stretched to the budget).
    pub exact_interval_ms: [f64; 2],
    pub source: Option<Source>,
    /// Whether the server's sockets could be counted (it runs on this host).
    pub server_observed: bool,
    /// The sampler thread's CPU time over its wall time, in % of one core.
    pub sampler_cpu_pct: f64,
    /// The sampler thread's CPU time, in ms: the exact breakdowns a run always takes (at
    /// the start, when the load ends, at the end) are a fixed cost that dominates runs
    /// shorter than a second; the periodic ones keep to [`BUDGET`].
    #[serde(default)]
    pub sampler_cpu_ms: f64,
    pub samples: Vec<Sample>,
}

/// One tick. `client` and `server` are present when the exact breakdown ran at this tick.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sample {
    /// Since the measured part began.
    pub t_ms: f64,
    /// TIME_WAIT sockets in the whole network namespace (/proc/net/sockstat).
    pub tw_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<BTreeMap<String, u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<BTreeMap<String, u32>>,
}

/// The report's `time_wait` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TimeWait {
    pub peak_client: u32,
    pub peak_server: u32,
    pub end_client: u32,
    pub end_server: u32,
    /// From the end of the load until no TIME_WAIT of this run was left, when seen within
    /// `--drain`.
    pub drain_s: Option<f64>,
    /// The most TIME_WAIT sockets of the whole network namespace at a tick, this run's and
    /// others': what net.ipv4.tcp_max_tw_buckets caps.
    #[serde(default)]
    pub peak_namespace: u64,
}

enum Msg {
    /// The load ended at this instant; the drain begins.
    LoadEnded(Instant),
    Stop,
}

/// A running sampler; [`Sampler::stop`] ends it and returns what it saw.
pub struct Sampler {
    tx: mpsc::Sender<Msg>,
    thread: JoinHandle<(TcpStates, TimeWait)>,
}

impl Sampler {
    /// Starts sampling the sockets of `target`; `server_observed`: the server runs here.
    pub fn start(
        target: SocketAddr,
        interval: Duration,
        server_observed: bool,
    ) -> std::io::Result<Sampler> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tcpbench-sampler".into())
            .spawn(move || run(target, interval, server_observed, rx))?;
        Ok(Sampler { tx, thread })
    }

    /// Marks the end of the load.
    pub fn load_ended(&self) {
        let _ = self.tx.send(Msg::LoadEnded(Instant::now()));
    }

    pub fn stop(self) -> (TcpStates, TimeWait) {
        let _ = self.tx.send(Msg::Stop);
        self.thread.join().unwrap_or_default()
    }
}

fn run(
    target: SocketAddr,
    interval: Duration,
    server_observed: bool,
    rx: mpsc::Receiver<Msg>,
) -> (TcpStates, TimeWait) {
    let start = Instant::now();
    let cpu_start = thread_cpu();
    let mut counter = Counter::new(target);
    let mut states = TcpStates {
        interval_ms: interval.as_secs_f64() * 1e3,
        exact_interval_ms: [f64::MAX, 0.0],
        source: Some(counter.source()),
        server_observed,
        ..TcpStates::default()
    };
    let mut tw = TimeWait::default();
    let mut load_end: Option<Instant> = None;
    let mut next_exact = start;
    let mut last_exact: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let now = Instant::now();
        let mut sample = Sample {
            t_ms: (now - start).as_secs_f64() * 1e3,
            tw_total: sockstat_tw(),
            ..Sample::default()
        };
        tw.peak_namespace = tw.peak_namespace.max(sample.tw_total.unwrap_or(0));
        // The last sample is always exact, so `end_*` describe the end.
        if now >= next_exact || stopping {
            let client = counter.count(Side::Client).ok();
            let server = if server_observed {
                counter.count(Side::Server).ok()
            } else {
                None
            };
            let cost = now.elapsed();
            if let Some(prev) = last_exact {
                let gap = (now - prev).as_secs_f64() * 1e3;
                states.exact_interval_ms[0] = states.exact_interval_ms[0].min(gap);
                states.exact_interval_ms[1] = states.exact_interval_ms[1].max(gap);
            }
            last_exact = Some(now);
            next_exact = now + interval.max(cost.div_f64(BUDGET));
            let (c_tw, s_tw) = (
                client.map_or(0, |c| c[TIME_WAIT]),
                server.map_or(0, |s| s[TIME_WAIT]),
            );
            tw.peak_client = tw.peak_client.max(c_tw);
            tw.peak_server = tw.peak_server.max(s_tw);
            (tw.end_client, tw.end_server) = (c_tw, s_tw);
            if let Some(end) = load_end
                && tw.drain_s.is_none()
                && c_tw + s_tw == 0
            {
                tw.drain_s = Some((now - end).as_secs_f64());
            }
            sample.client = client.as_ref().map(named);
            sample.server = server.as_ref().map(named);
        }
        states.samples.push(sample);
        if stopping {
            break;
        }
        let next_tick = start
            + interval
                .mul_f64(((now - start).as_secs_f64() / interval.as_secs_f64()).floor() + 1.0);
        match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(Msg::LoadEnded(at)) => {
                load_end = Some(at);
                next_exact = Instant::now();
            }
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => stopping = true,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    if states.exact_interval_ms[0] == f64::MAX {
        states.exact_interval_ms = [0.0, 0.0];
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_cpu() - cpu_start;
    states.sampler_cpu_ms = cpu * 1e3;
    states.sampler_cpu_pct = if wall > 0.0 { 100.0 * cpu / wall } else { 0.0 };
    (states, tw)
}

/// Non-zero states by name.
fn named(c: &Counts) -> BTreeMap<String, u32> {
    STATES
        .iter()
        .zip(c)
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| (s.to_string(), *n))
        .collect()
}

/// The namespace's TIME_WAIT total: the `tw` of /proc/net/sockstat's `TCP:` line.
fn sockstat_tw() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/sockstat").ok()?;
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "tw" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// This thread's CPU time, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_has_a_time_wait_total() {
        assert!(sockstat_tw().is_some());
    }

    #[test]
    fn samples_at_each_tick_and_exactly_at_the_end() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sampler = Sampler::start(addr, Duration::from_millis(20), true).unwrap();
        let _c = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(120));
        sampler.load_ended();
        let (states, tw) = sampler.stop();
        assert!(states.samples.len() >= 3, "{}", states.samples.len());
        let last = states.samples.last().unwrap();
        assert_eq!(
            last.client.as_ref().and_then(|c| c.get("ESTABLISHED")),
            Some(&1),
            "{last:?}"
        );
        assert_eq!(
            last.server.as_ref().and_then(|c| c.get("LISTEN")),
            Some(&1),
            "{last:?}"
        );
        assert_eq!(tw.end_client, 0);
        assert!(states.sampler_cpu_pct < 100.0);
    }
}
