//! `server.accept_wait`: how long connections waited in the embedded server's accept
//! queue, sampled (Linux, root).
//!
//! TCP_INFO cannot tell it, and neither can the server alone: accept() returns a connection
//! with no word of when it became acceptable. The kernel can: the tracepoint
//! `sock:inet_sock_set_state` reports the server's child socket going SYN_RECV ->
//! ESTABLISHED as the handshake's last ACK is processed, right after the child is put on the
//! accept queue and before the listener is woken. So the server notes when accept() returned
//! each sampled connection ([`crate::server::EchoServer::sample_accepts`]), a private tracefs
//! instance ([`crate::observe::tracefs`]) records those events for the same connections, and
//! the wait is the difference, matched by the client's address.
//!
//! Sampled, to stay cheap: only clients whose port has the low bits of
//! [`ACCEPT_SAMPLE_MASK`] clear, picked by the event's own filter in the kernel, so other
//! connections cost one filter test per state change and nothing else; a thread drains
//! trace_pipe every 100 ms. The tracepoint prints whole µs, and accept()'s return is taken
//! after tokio registered the socket (about a µs of ours in the figure).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::observe::tracefs::{Event, Tracer};
use crate::server::{ACCEPT_SAMPLE_MASK, AcceptSample, EchoServer};

const SYN_RECV: u8 = 3;
const ESTABLISHED: u8 = 1;
/// How often the drainer empties trace_pipe into memory.
const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// The tracepoint's side of the accept wait, running while the load does.
pub struct AcceptWait {
    /// Set to end the drainer; it then drains once more and returns what it read.
    done: Arc<AtomicBool>,
    drainer: JoinHandle<Result<Vec<Event>, String>>,
    /// An `Instant` and CLOCK_MONOTONIC (the trace clock) read at the same moment.
    origin: (Instant, i64),
}

impl AcceptWait {
    /// Starts the tracepoint for `server`'s sampled connections and tells the server to
    /// sample its accepts. The error says why the tracepoint cannot be used here.
    pub fn start(server: &EchoServer) -> Result<AcceptWait, String> {
        let port = server.local_addr().port();
        let mut tracer = Tracer::start_filtered(format!(
            "protocol == 6 && sport == {port} && oldstate == {SYN_RECV} && newstate == {ESTABLISHED} && !(dport & {ACCEPT_SAMPLE_MASK})"
        ))?;
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let drainer = std::thread::Builder::new()
            .name("tcpbench-accept-wait".into())
            .spawn(move || {
                let mut events = Vec::new();
                loop {
                    let last = stop.load(Ordering::Acquire);
                    tracer
                        .drain(&mut events)
                        .map_err(|e| format!("trace_pipe: {e}"))?;
                    if last {
                        break;
                    }
                    std::thread::sleep(DRAIN_EVERY);
                }
                match tracer.lost {
                    0 => Ok(events),
                    n => Err(format!("the trace buffer overflowed {n} times")),
                }
            })
            .map_err(|e| format!("cannot start the accept-wait thread: {e}"))?;
        server.sample_accepts();
        Ok(AcceptWait {
            done,
            drainer,
            origin: origin(),
        })
    }

    /// Ends the tracing and matches its events with the server's `samples`: the waits, in
    /// ns. None when nothing matched or the tracing failed (lost events would leave
    /// samples paired with an older connection from the same port).
    pub fn finish(self, samples: &[AcceptSample]) -> Option<Histogram<u64>> {
        self.done.store(true, Ordering::Release);
        let events = self.drainer.join().ok()?.ok()?;
        let h = waits(&events, samples, |at| mono_of(self.origin, at));
        (!h.is_empty()).then_some(h)
    }
}

/// Each sample's wait: from the latest ESTABLISHED of its client before the accept
/// returned, to the accept.
fn waits(
    events: &[Event],
    samples: &[AcceptSample],
    mono: impl Fn(Instant) -> i64,
) -> Histogram<u64> {
    let mut by_client: HashMap<SocketAddr, Vec<i64>> = HashMap::new();
    for e in events {
        let client = SocketAddr::new(e.remote.ip().to_canonical(), e.remote.port());
        by_client.entry(client).or_default().push(e.mono_ns);
    }
    for times in by_client.values_mut() {
        times.sort_unstable();
    }
    let mut h = crate::stats::new_histogram();
    for (peer, at) in samples {
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let Some(times) = by_client.get(&peer) else {
            continue;
        };
        // The trace prints whole µs: an event may read up to 1 µs before its true instant,
        // never after; one read a µs after the accept is still that connection's.
        let accepted = mono(*at);
        let i = times.partition_point(|&t| t <= accepted + 1_000);
        if i > 0 {
            let wait = (accepted - times[i - 1]).max(1) as u64;
            h.saturating_record(wait);
        }
    }
    h
}

fn mono_now() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// An `Instant` and CLOCK_MONOTONIC at the same moment, from the tightest of a few reads.
fn origin() -> (Instant, i64) {
    (0..8)
        .map(|_| {
            let at = Instant::now();
            let mono = mono_now();
            (at.elapsed(), (at, mono))
        })
        .min_by_key(|(width, _)| *width)
        .map(|(_, o)| o)
        .expect("eight reads")
}

fn mono_of((base, mono): (Instant, i64), at: Instant) -> i64 {
    match at.checked_duration_since(base) {
        Some(d) => mono + d.as_nanos() as i64,
        None => mono - base.duration_since(at).as_nanos() as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(port: u16, mono_ns: i64) -> Event {
        Event {
            mono_ns,
            local: "127.0.0.1:80".parse().unwrap(),
            remote: SocketAddr::new([127, 0, 0, 1].into(), port),
            old: SYN_RECV,
            new: ESTABLISHED,
        }
    }

    #[test]
    fn each_accept_pairs_with_its_clients_latest_establishment() {
        let base = Instant::now();
        let at = |us: u64| base + Duration::from_micros(us);
        let mono = |i: Instant| i.duration_since(base).as_nanos() as i64;
        let client = |port: u16| SocketAddr::new([127, 0, 0, 1].into(), port);
        let events = [
            event(32000, 1_000_000),
            // The same port again, later: a new connection.
            event(32000, 5_000_000),
            event(32016, 2_000_000),
        ];
        let samples = [
            (client(32000), at(1_030)),
            (client(32000), at(5_012)),
            (client(32016), at(2_000)),
            // No event for it (not sampled by the kernel, or lost): left out.
            (client(40000), at(3_000)),
        ];
        let h = waits(&events, &samples, mono);
        assert_eq!(h.len(), 3);
        assert_eq!(h.max(), h.highest_equivalent(30_000));
        assert_eq!(h.min(), 1, "accepted the same µs the trace printed");
        assert!(h.equivalent(h.value_at_quantile(0.6), 12_000));
    }
}
