//! A slot's close sequence, as the close mode says, and the close after a failure.

use std::io;
use std::os::fd::IntoRawFd;
use std::time::Instant;

use io_uring::squeue::Flags;
use io_uring::{opcode, types};

use super::{Op, Slot, State, Submit};
use crate::config::CloseMode;
use crate::failure::{ErrorKind, Failure, Phase};
use crate::load::conn;
use crate::netio;

impl Slot {
    /// The close of the configured mode, after the check that nothing more was sent.
    pub(super) fn close_sequence(
        &mut self,
        ctx: &super::super::Ctx<'_>,
        now: Instant,
        q: &mut impl Submit,
    ) -> Result<(), Failure> {
        let mode = ctx.cfg.socket.close;
        if mode != CloseMode::Server {
            self.nothing_queued()?;
        }
        self.close_at = now;
        self.closing = true;
        self.scratch.enter(Phase::Close);
        match mode {
            CloseMode::Rst | CloseMode::ClientNowait => self.close(ctx, q),
            CloseMode::Server => self.drain(
                ctx,
                State::ServerFin {
                    then_shutdown: false,
                },
                now,
                q,
            ),
            CloseMode::Client if self.scratch.awaits_server_fin(ctx.cfg) => self.drain(
                ctx,
                State::ServerFin {
                    then_shutdown: true,
                },
                now,
                q,
            ),
            CloseMode::Client => self.shutdown(q),
        }
        Ok(())
    }

    /// As the tokio engine's: bytes queued unread fail as `extra_bytes`; a FIN queued
    /// means the server closed first.
    fn nothing_queued(&mut self) -> Result<(), Failure> {
        let fail = |e: io::Error| Failure::from_io(Phase::Echo, &e);
        let fd = self.fd.as_ref().expect("open until closed");
        match netio::pending(fd).map_err(fail)? {
            netio::Pending::Nothing => Ok(()),
            netio::Pending::Fin => {
                self.scratch.saw_peer_fin();
                Ok(())
            }
            netio::Pending::Data => {
                self.scratch.received += netio::queued(fd).map_err(fail)? as u64;
                Err(Failure::new(Phase::Echo, ErrorKind::ExtraBytes))
            }
        }
    }

    /// Reads to the peer's FIN in `state`, within one --io-timeout in all.
    pub(super) fn drain(
        &mut self,
        ctx: &super::super::Ctx<'_>,
        state: State,
        now: Instant,
        q: &mut impl Submit,
    ) {
        self.state = state;
        self.tail = 0;
        self.deadline = now + ctx.cfg.socket.io_timeout;
        if let Err(f) = self.recv(now, q) {
            self.fail(ctx, f, q);
        }
    }

    pub(super) fn shutdown(&mut self, q: &mut impl Submit) {
        self.state = State::Shutdown;
        let shut = opcode::Shutdown::new(self.raw(), libc::SHUT_WR)
            .build()
            .user_data(self.data(Op::Shutdown));
        self.pending += 1;
        q.chain(&[shut]);
    }

    /// close() as the mode says: `--close rst` first sets SO_LINGER 0 through the ring (a
    /// hard link: the close runs even if that fails).
    pub(super) fn close(&mut self, ctx: &super::super::Ctx<'_>, q: &mut impl Submit) {
        // SO_LINGER 0 is on already when --linger 0 set it at socket().
        let abortive = ctx.cfg.socket.close == CloseMode::Rst && ctx.cfg.socket.linger.is_none();
        self.scratch.close = Some(conn::observed(
            None,
            conn::aborts(ctx.cfg, true),
            self.scratch.peer_fin(),
        ));
        let Some(fd) = self.fd.take() else { return };
        let fd = types::Fd(fd.into_raw_fd());
        let close = opcode::Close::new(fd)
            .build()
            .user_data(self.data(Op::Close));
        self.state = State::Close;
        if abortive {
            let linger = opcode::SetSockOpt::new(
                fd,
                libc::SOL_SOCKET as u32,
                libc::SO_LINGER as u32,
                (&raw const self.linger).cast(),
                size_of::<libc::linger>() as u32,
            )
            .build()
            .flags(Flags::IO_HARDLINK)
            .user_data(self.data(Op::Linger));
            self.pending += 2;
            q.chain(&[linger, close]);
        } else {
            self.pending += 1;
            q.chain(&[close]);
        }
    }

    /// Fails the connection with `f` (the first failure counts): what the close will be is
    /// noted as the tokio engine notes it, the operations still in flight are cancelled,
    /// and the socket closed.
    pub(super) fn fail(&mut self, ctx: &super::super::Ctx<'_>, f: Failure, q: &mut impl Submit) {
        if self.failure.is_some() {
            return;
        }
        self.failure = Some(f);
        if self.state != State::Connect {
            let unread = !self.closing
                && self
                    .fd
                    .as_ref()
                    .is_some_and(|fd| netio::queued(fd).is_ok_and(|n| n > 0));
            let abortive = unread || conn::aborts(ctx.cfg, self.closing);
            self.scratch.close = Some(conn::observed(Some(&f), abortive, self.scratch.peer_fin()));
        }
        let Some(fd) = self.fd.take() else {
            // Its close is submitted already.
            return;
        };
        let fd = types::Fd(fd.into_raw_fd());
        let close = opcode::Close::new(fd)
            .build()
            .user_data(self.data(Op::Close));
        self.state = State::Close;
        if self.pending > 0 {
            let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::fd(fd).all())
                .build()
                .flags(Flags::IO_HARDLINK)
                .user_data(self.data(Op::Cancel));
            self.pending += 2;
            q.chain(&[cancel, close]);
        } else {
            self.pending += 1;
            q.chain(&[close]);
        }
    }
}
