//! The two clocks of a trace. Every timestamp of a trace is on CLOCK_MONOTONIC (the
//! tracepoint's `mono` trace clock, sock_diag's poll times), but the capture's kernel
//! timestamps (SO_TIMESTAMPNS) are on CLOCK_REALTIME, which time synchronisation may step
//! at any moment — on a freshly booted machine it often does, by a few hundred µs.
//!
//! CLOCK_REALTIME − CLOCK_MONOTONIC is constant between steps (frequency corrections slew
//! both), so the capture reads the pair after each batch of frames it drains and converts
//! the batch with it. When the offset moved during a batch, the step lies somewhere inside
//! it: [`to_mono`] finds where, as the split that keeps the frames in the order the queue
//! holds them and each inside the window in which it was received.

/// Both clocks read together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockPair {
    /// CLOCK_MONOTONIC, ns.
    pub mono: i64,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, ns.
    pub real_minus_mono: i64,
}

/// An offset change smaller than this is the reads' own jitter, not a step.
const STEP_NS: i64 = 2_000;
/// A frame stamped just before a drain ended may be queued just after it: how far before
/// its window a frame's time may lie.
const QUEUE_SLACK_NS: i64 = 200_000;

/// CLOCK_MONOTONIC now, in ns: the clock every timestamp of a trace is on.
pub fn mono_ns() -> i64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to write.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl ClockPair {
    /// The pair from the tightest of a few reads (a read interrupted between the two
    /// clocks would put the offset off by the interruption).
    pub fn now() -> ClockPair {
        (0..8)
            .map(|_| {
                let m1 = mono_ns();
                let r = clock_ns(libc::CLOCK_REALTIME);
                let m2 = mono_ns();
                let mid = m1 + (m2 - m1) / 2;
                (
                    m2 - m1,
                    ClockPair {
                        mono: mid,
                        real_minus_mono: r - mid,
                    },
                )
            })
            .min_by_key(|&(width, _)| width)
            .map(|(_, pair)| pair)
            .expect("eight reads")
    }
}

/// The wall clock's step between two pairs, in ns, if it moved.
pub fn step(before: ClockPair, after: ClockPair) -> Option<i64> {
    let d = after.real_minus_mono - before.real_minus_mono;
    (d.abs() > STEP_NS).then_some(d)
}

/// Converts a batch of CLOCK_REALTIME stamps, in the order they were queued, to
/// CLOCK_MONOTONIC. `before` was read when the batch's window opened (the previous drain
/// ended), `after` when it closed. Without a step between them each stamp takes `after`'s
/// offset; with one, the stamps before the split take `before`'s and the rest `after`'s,
/// the split chosen by, in turn: fewest stamps outside the window, least time running
/// backwards, and the boundary where the raw stamps jump most in the step's direction.
pub fn to_mono(real: &[i64], before: ClockPair, after: ClockPair) -> Vec<i64> {
    let (b, a) = (before.real_minus_mono, after.real_minus_mono);
    let Some(d) = step(before, after) else {
        return real.iter().map(|r| r - a).collect();
    };
    let n = real.len();
    let (lo, hi) = (before.mono - QUEUE_SLACK_NS, after.mono + STEP_NS);
    let outside = |m: i64| usize::from(m < lo || m > hi);
    // outside_pre[k]: stamps 0..k outside the window on `before`'s offset;
    // outside_post[k]: stamps k..n outside it on `after`'s.
    let mut outside_pre = vec![0; n + 1];
    for (i, r) in real.iter().enumerate() {
        outside_pre[i + 1] = outside_pre[i] + outside(r - b);
    }
    let mut outside_post = vec![0; n + 1];
    for (i, r) in real.iter().enumerate().rev() {
        outside_post[i] = outside_post[i + 1] + outside(r - a);
    }
    let backwards = |x: i64, y: i64| (x - y).max(0);
    let raw_back: i64 = real.windows(2).map(|w| backwards(w[0], w[1])).sum();
    let split = (0..=n)
        .min_by_key(|&k| {
            let (back, jump) = if k == 0 || k == n {
                (raw_back, 0)
            } else {
                let (x, y) = (real[k - 1], real[k]);
                let back = raw_back - backwards(x, y) + backwards(x - b, y - a);
                (back, -d.signum() * (y - x))
            };
            (outside_pre[k] + outside_post[k], back, jump)
        })
        .unwrap_or(n);
    real.iter()
        .enumerate()
        .map(|(i, r)| if i < split { r - b } else { r - a })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFF: i64 = 1_700_000_000_000_000_000;

    fn pair(mono: i64, off: i64) -> ClockPair {
        ClockPair {
            mono,
            real_minus_mono: off,
        }
    }

    /// Monotonic times of a connection's segments in one batch, stamped on a wall clock
    /// stepped by `step` after the `at`th.
    fn stamped(mono: &[i64], at: usize, step: i64) -> Vec<i64> {
        mono.iter()
            .enumerate()
            .map(|(i, m)| m + OFF + if i < at { 0 } else { step })
            .collect()
    }

    const MONO: [i64; 7] = [
        1_000_000, 1_020_000, 1_031_000, 1_090_000, 1_150_000, 1_160_000, 1_175_000,
    ];

    #[test]
    fn without_a_step_every_stamp_takes_the_offset() {
        let real = stamped(&MONO, 0, 0);
        let got = to_mono(&real, pair(900_000, OFF + 500), pair(1_400_000, OFF));
        assert_eq!(got, MONO);
    }

    #[test]
    fn a_step_back_inside_the_batch_is_found_where_time_runs_backwards() {
        // The CI failure: the wall clock stepped back ~160 µs between the handshake and
        // the close of one connection.
        for at in 1..MONO.len() {
            let real = stamped(&MONO, at, -160_000);
            let got = to_mono(&real, pair(900_000, OFF), pair(1_400_000, OFF - 160_000));
            assert_eq!(got, MONO, "step after segment {at}");
        }
    }

    #[test]
    fn a_step_forward_is_found_where_the_stamps_jump() {
        for at in 1..MONO.len() {
            let real = stamped(&MONO, at, 300_000);
            let got = to_mono(&real, pair(900_000, OFF), pair(1_400_000, OFF + 300_000));
            assert_eq!(got, MONO, "step after segment {at}");
        }
    }

    #[test]
    fn a_whole_batch_on_one_side_of_the_step_stays_whole() {
        // Stepped before any of them: the window rules out `before`'s offset for the
        // last ones, since they would lie after the drain ended.
        let real = stamped(&MONO, 0, 400_000);
        let got = to_mono(&real, pair(900_000, OFF), pair(1_200_000, OFF + 400_000));
        assert_eq!(got, MONO);
        // Stepped back after all of them, before the drain read the clocks.
        let real = stamped(&MONO, MONO.len(), -400_000);
        let got = to_mono(&real, pair(990_000, OFF), pair(1_200_000, OFF - 400_000));
        assert_eq!(got, MONO);
    }

    #[test]
    fn jitter_is_not_a_step() {
        assert_eq!(step(pair(0, OFF), pair(1, OFF + 900)), None);
        assert_eq!(step(pair(0, OFF), pair(1, OFF - 5_000)), Some(-5_000));
        assert!(to_mono(&[], pair(0, OFF), pair(1, OFF + 9_000)).is_empty());
    }
}
