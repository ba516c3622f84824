//! One connection slot of a ring: the connection cycle of `conn.rs` (its phases, close
//! modes, failure kinds, timeouts, in-flight mark) as a state machine that submits the
//! cycle's operations and is moved on by their completions.
//!
//! Each operation's completion carries `(slot << 8) | Op`. A slot starts its next connection
//! only once every operation it submitted (link timeouts and cancels included) has
//! completed, so no completion of one connection is read as the next one's.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use io_uring::squeue::{Entry, Flags};
use io_uring::{opcode, types};

mod close;

use super::super::conn::{self, Cycle, Scratch};
use crate::config::CloseMode;
use crate::failure::{ErrorKind, Failure, Phase};
use crate::sockopt::HandshakeInfo;

/// What a completion is the end of.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Op {
    Connect = 1,
    Send,
    Recv,
    /// The link timeout of a connect, send or recv.
    Timer,
    Shutdown,
    /// SO_LINGER 0 before an RST close.
    Linger,
    Close,
    Hold,
    Cancel,
}

impl Op {
    fn from(byte: u8) -> Option<Op> {
        use Op::*;
        [
            Connect, Send, Recv, Timer, Shutdown, Linger, Close, Hold, Cancel,
        ]
        .into_iter()
        .find(|o| *o as u8 == byte)
    }
}

/// A completion's slot and operation.
pub(super) fn decode(user_data: u64) -> Option<(usize, Op)> {
    Some(((user_data >> 8) as usize, Op::from(user_data as u8)?))
}

/// Where a slot's connection is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// No connection: the loop starts one here.
    Idle,
    Connect,
    /// Request `exchange` being sent while its response is read.
    Exchange,
    /// `--hold` after the last exchange.
    Hold,
    /// Reading to the server's FIN, which must come with no byte before it; then our
    /// shutdown (`--close client`) or the close.
    ServerFin {
        then_shutdown: bool,
    },
    Shutdown,
    /// `--close client`: reading the server's farewell to its FIN, after ours.
    Farewell,
    /// close() submitted; the slot is done once every completion is in.
    Close,
    /// No connection, and no more to start (a bound, or a stop).
    Done,
}

/// Where the slot's operations go: the ring's submission queue, as the loop flushes it.
pub(super) trait Submit {
    /// Queues `chain`, linked entries kept together in one submission.
    fn chain(&mut self, chain: &[Entry]);
}

/// What a finished connection hands the loop to record.
pub(super) struct Ended {
    pub start: Instant,
    pub outcome: Result<Cycle, Failure>,
}

/// One connection slot: its scratch (shared with the tokio engine), its socket, and the
/// instants and counts of the connection in flight.
pub(super) struct Slot {
    /// This slot's index: the high bits of its completions' user data.
    index: u64,
    pub scratch: Scratch,
    /// The socket, until its close is submitted.
    fd: Option<OwnedFd>,
    pub state: State,
    /// Submitted operations whose completion has not come yet.
    pending: u32,
    start: Instant,
    connect: Instant,
    established: Instant,
    close_at: Instant,
    /// The close's completion was read.
    end: Instant,
    info: Option<HandshakeInfo>,
    /// The connection's first failure; the others that follow from it are not counted.
    failure: Option<Failure>,
    /// The close sequence began (a failure in it is a close phase failure).
    closing: bool,
    exchange: u32,
    /// Bytes of the request sent, and whether all were; whether its response is complete.
    off: usize,
    sent: bool,
    answered: bool,
    /// The end of the last exchange: the next one's round trip starts here.
    edge: Instant,
    /// The exchange's (or the drain's) --io-timeout runs out here.
    deadline: Instant,
    /// Bytes read by a drain before the FIN.
    tail: u64,
    /// The link timeouts of the send and the recv, and the hold: the kernel reads them when
    /// the entry is submitted, so they live in the slot.
    timers: [types::Timespec; 3],
    /// SO_LINGER 0, read by the kernel when the `Linger` entry runs.
    linger: libc::linger,
}

fn errno(res: i32) -> io::Error {
    io::Error::from_raw_os_error(-res)
}

/// A completion's result: the bytes (or 0) it did, or its failure in `phase`; ECANCELED is
/// the linked timeout having fired.
fn completed(res: i32, phase: Phase) -> Result<usize, Failure> {
    match res {
        r if r == -libc::ECANCELED => Err(timeout(phase)),
        r if r < 0 => Err(Failure::from_io(phase, &errno(r))),
        n => Ok(n as usize),
    }
}

fn timeout(phase: Phase) -> Failure {
    let kind = match phase {
        Phase::Connect => ErrorKind::ConnectTimeout,
        Phase::Echo | Phase::Close => ErrorKind::IoTimeout,
    };
    Failure::new(phase, kind)
}

impl Slot {
    pub fn new(index: usize, scratch: Scratch) -> Slot {
        let now = Instant::now();
        Slot {
            index: index as u64,
            scratch,
            fd: None,
            state: State::Idle,
            pending: 0,
            start: now,
            connect: now,
            established: now,
            close_at: now,
            end: now,
            info: None,
            failure: None,
            closing: false,
            exchange: 0,
            off: 0,
            sent: false,
            answered: false,
            edge: now,
            deadline: now,
            tail: 0,
            timers: [types::Timespec::new(); 3],
            linger: libc::linger {
                l_onoff: 1,
                l_linger: 0,
            },
        }
    }

    fn data(&self, op: Op) -> u64 {
        self.index << 8 | op as u64
    }

    /// Operations in flight (the loop waits for them before it lets the ring go).
    pub fn pending(&self) -> u32 {
        self.pending
    }

    /// The phase a failure now belongs to.
    fn phase(&self) -> Phase {
        match self.state {
            State::Connect | State::Idle => Phase::Connect,
            _ if self.closing => Phase::Close,
            _ => Phase::Echo,
        }
    }

    fn raw(&self) -> types::Fd {
        types::Fd(self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd))
    }

    /// Starts a connection from `start` on the socket `sock` (made and bound by
    /// [`conn::open`]): connect(), within --connect-timeout.
    pub fn start(
        &mut self,
        ctx: &super::Ctx<'_>,
        start: Instant,
        sock: socket2::Socket,
        q: &mut impl Submit,
    ) {
        self.scratch.reset();
        self.scratch.start(start);
        self.start = start;
        self.failure = None;
        self.closing = false;
        self.info = None;
        self.exchange = 0;
        self.fd = Some(sock.into());
        self.state = State::Connect;
        self.timers[0] = ctx.cfg.socket.connect_timeout.into();
        self.connect = Instant::now();
        let connect = opcode::Connect::new(self.raw(), ctx.addr.as_ptr().cast(), ctx.addr.len())
            .build()
            .flags(Flags::IO_LINK)
            .user_data(self.data(Op::Connect));
        let timer = opcode::LinkTimeout::new(&self.timers[0])
            .build()
            .user_data(self.data(Op::Timer));
        self.pending += 2;
        q.chain(&[connect, timer]);
    }

    /// Moves the connection on by one completion of `op` with result `res`, read at `now`;
    /// a connection that ended is handed back to be recorded.
    pub fn complete(
        &mut self,
        ctx: &super::Ctx<'_>,
        op: Op,
        res: i32,
        now: Instant,
        q: &mut impl Submit,
    ) -> Option<Ended> {
        self.pending -= 1;
        // After a failure only the close matters; the other completions are its echoes.
        if self.failure.is_some() && op != Op::Close {
            return self.ended();
        }
        let step = match op {
            Op::Timer | Op::Cancel => Ok(()),
            Op::Connect => self.connected(ctx, res, now, q),
            Op::Send => self.on_send(ctx, res, now, q),
            Op::Recv => self.on_recv(ctx, res, now, q),
            Op::Hold => self.close_sequence(ctx, now, q),
            Op::Shutdown => {
                let r = if res < 0 { Err(errno(res)) } else { Ok(()) };
                let fd = self.fd.as_ref().expect("open until closed");
                conn::shutdown_outcome(r, socket2::SockRef::from(fd)).map(|()| {
                    self.drain(ctx, State::Farewell, now, q);
                })
            }
            Op::Linger if res < 0 => Err(Failure::from_io(Phase::Close, &errno(res))),
            Op::Linger => Ok(()),
            Op::Close => {
                self.end = now;
                Ok(())
            }
        };
        if let Err(f) = step {
            self.fail(ctx, f, q);
        }
        self.ended()
    }

    /// The connection is over once its close and every other completion came.
    fn ended(&mut self) -> Option<Ended> {
        if self.state != State::Close || self.pending > 0 {
            return None;
        }
        self.state = State::Idle;
        self.scratch.in_flight = None;
        let outcome = match self.failure.take() {
            Some(f) => Err(f),
            None => Ok(Cycle {
                connect: self.connect,
                established: self.established,
                close: self.close_at,
                end: self.end,
                handshake: self.info,
            }),
        };
        Some(Ended {
            start: self.start,
            outcome,
        })
    }

    fn connected(
        &mut self,
        ctx: &super::Ctx<'_>,
        res: i32,
        now: Instant,
        q: &mut impl Submit,
    ) -> Result<(), Failure> {
        completed(res, Phase::Connect)?;
        self.established = now;
        if ctx.cfg.socket.tcp_info {
            self.info = self
                .fd
                .as_ref()
                .and_then(|fd| crate::sockopt::handshake_info(fd).ok());
        }
        self.state = State::Exchange;
        self.scratch.enter(Phase::Echo);
        self.edge = now;
        match ctx.cfg.requests {
            0 => self.exchanged(ctx, now, q),
            _ => self.begin_exchange(ctx, now, q),
        }
    }

    /// Request `exchange`: its send and the read of its response, both within the
    /// exchange's --io-timeout.
    fn begin_exchange(
        &mut self,
        ctx: &super::Ctx<'_>,
        now: Instant,
        q: &mut impl Submit,
    ) -> Result<(), Failure> {
        let last = self.exchange + 1 == ctx.cfg.requests;
        let by_server = ctx.cfg.socket.close == CloseMode::Server;
        self.scratch.next_request(self.exchange, last, by_server);
        self.off = 0;
        self.sent = self.scratch.request().is_empty();
        self.answered = false;
        self.deadline = now + ctx.cfg.socket.io_timeout;
        if !self.sent {
            self.send(now, q)?;
        }
        self.recv(now, q)
    }

    /// The link timeout `timer` set to what is left of the deadline, chained after `op`.
    fn timed(
        &mut self,
        op: Entry,
        timer: usize,
        now: Instant,
        q: &mut impl Submit,
    ) -> Result<(), Failure> {
        let left = self.deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Err(timeout(self.phase()));
        }
        self.timers[timer] = left.into();
        let timer = opcode::LinkTimeout::new(&self.timers[timer])
            .build()
            .user_data(self.data(Op::Timer));
        self.pending += 2;
        q.chain(&[op.flags(Flags::IO_LINK), timer]);
        Ok(())
    }

    fn send(&mut self, now: Instant, q: &mut impl Submit) -> Result<(), Failure> {
        let rest = &self.scratch.request()[self.off..];
        let send = opcode::Send::new(self.raw(), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(self.data(Op::Send));
        self.timed(send, 0, now, q)
    }

    fn recv(&mut self, now: Instant, q: &mut impl Submit) -> Result<(), Failure> {
        let fd = self.raw();
        let buf = self.scratch.buf_mut();
        let recv = opcode::Recv::new(fd, buf.as_mut_ptr(), buf.len() as u32)
            .build()
            .user_data(self.data(Op::Recv));
        self.timed(recv, 1, now, q)
    }

    fn on_send(
        &mut self,
        ctx: &super::Ctx<'_>,
        res: i32,
        now: Instant,
        q: &mut impl Submit,
    ) -> Result<(), Failure> {
        let n = completed(res, Phase::Echo)?;
        self.scratch.sent += n as u64;
        self.off += n;
        if self.off < self.scratch.request().len() {
            return self.send(now, q);
        }
        self.sent = true;
        self.exchange_done(ctx, now, q)
    }

    fn on_recv(
        &mut self,
        ctx: &super::Ctx<'_>,
        res: i32,
        now: Instant,
        q: &mut impl Submit,
    ) -> Result<(), Failure> {
        let n = completed(res, self.phase())?;
        match self.state {
            State::Exchange => {
                if !self.scratch.take(n)? {
                    return self.recv(now, q);
                }
                self.answered = true;
                self.exchange_done(ctx, now, q)
            }
            State::ServerFin { .. } | State::Farewell if n > 0 => {
                self.tail += n as u64;
                self.scratch.received += n as u64;
                self.recv(now, q)
            }
            State::ServerFin { then_shutdown } => {
                if self.tail > 0 {
                    return Err(Failure::new(Phase::Close, ErrorKind::ExtraBytes));
                }
                self.scratch.saw_peer_fin();
                match then_shutdown {
                    true => self.shutdown(q),
                    false => self.close(ctx, q),
                }
                Ok(())
            }
            State::Farewell => {
                conn::farewell(ctx.cfg, &mut self.scratch, self.tail)?;
                self.close(ctx, q);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The end of an exchange, once its request is sent and its response complete.
    fn exchange_done(
        &mut self,
        ctx: &super::Ctx<'_>,
        now: Instant,
        q: &mut impl Submit,
    ) -> Result<(), Failure> {
        if !(self.sent && self.answered) {
            return Ok(());
        }
        self.scratch.echo_ns.push(conn::ns(self.edge, now));
        self.edge = now;
        self.exchange += 1;
        if self.exchange < ctx.cfg.requests {
            if self.scratch.peer_ended() {
                return Err(Failure::new(Phase::Echo, ErrorKind::ClosedEarly));
            }
            return self.begin_exchange(ctx, now, q);
        }
        self.exchanged(ctx, now, q)
    }

    /// After the last exchange: the `--hold`, then the close sequence.
    fn exchanged(
        &mut self,
        ctx: &super::Ctx<'_>,
        now: Instant,
        q: &mut impl Submit,
    ) -> Result<(), Failure> {
        match ctx.cfg.hold {
            Some(hold) if !ctx.stopping() => {
                self.state = State::Hold;
                self.timers[2] = hold.into();
                let sleep = opcode::Timeout::new(&self.timers[2])
                    .build()
                    .user_data(self.data(Op::Hold));
                self.pending += 1;
                q.chain(&[sleep]);
                Ok(())
            }
            _ => self.close_sequence(ctx, now, q),
        }
    }

    /// Cuts a `--hold` short (a stop): its completion starts the close sequence.
    pub fn wake(&mut self, q: &mut impl Submit) {
        if self.state == State::Hold && self.failure.is_none() {
            let cancel =
                opcode::AsyncCancel2::new(types::CancelBuilder::user_data(self.data(Op::Hold)))
                    .build()
                    .user_data(self.data(Op::Cancel));
            self.pending += 1;
            q.chain(&[cancel]);
        }
    }

    /// A socket that could not be made: the connection failed before any operation.
    pub fn failed_at_once(&mut self, start: Instant, f: Failure) -> Ended {
        self.scratch.reset();
        self.state = State::Idle;
        Ended {
            start,
            outcome: Err(f),
        }
    }
}

/// How long the loop waits for a completion before it looks at the stop and the deadline.
pub(super) const TICK: Duration = Duration::from_millis(50);
