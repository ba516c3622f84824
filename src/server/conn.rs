//! One accepted connection: echo, then close the way the policy says.

use std::io;

use tokio::net::TcpStream;

use super::{Counters, Worker};
use crate::config::ServerClose;
use crate::failure::{ErrorKind, Failure, Phase};
use crate::{netio, sockopt};

const BUF: usize = 16 * 1024;

/// Why the echo loop ended.
enum End {
    /// The client sent its FIN.
    PeerFin,
    /// The policy's first message was echoed (`first`, `rst`).
    Policy,
    /// The connection failed, was idle too long or sent too much: just close it.
    Drop,
}

pub(super) async fn serve(stream: TcpStream, w: &Worker) {
    let cfg = &*w.cfg;
    if sockopt::accepted(&stream, cfg).is_err() {
        return;
    }
    let mut buf = w.buffers.borrow_mut().pop().unwrap_or_else(|| vec![0; BUF]);
    let end = echo(&stream, w, &mut buf).await;
    if matches!(end, End::PeerFin) && cfg.farewell > 0 {
        farewell(&stream, w, &mut buf).await;
    }
    w.buffers.borrow_mut().push(buf);

    let linger = if cfg.close == ServerClose::Rst && !matches!(end, End::Drop) {
        let _ = sockopt::set_abortive(&stream);
        Some(std::time::Duration::ZERO)
    } else {
        cfg.linger
    };
    let _ = sockopt::close(stream, linger).await;
}

async fn echo(stream: &TcpStream, w: &Worker, buf: &mut [u8]) -> End {
    let cfg = &*w.cfg;
    let close_after = match cfg.close {
        ServerClose::Wait => None,
        ServerClose::First | ServerClose::Rst => Some(cfg.close_after),
    };
    if close_after == Some(Some(0)) {
        return End::Policy;
    }
    let mut echoed = 0u64;
    loop {
        // The first request is usually queued before the accept: read it without waiting.
        let read = async {
            match echoed {
                0 => netio::recv_eager(stream, buf).await,
                _ => netio::recv(stream, buf).await,
            }
        };
        let read = match cfg.idle_timeout {
            None => read.await,
            Some(idle) => match tokio::time::timeout(idle, read).await {
                Ok(r) => r,
                Err(_) => {
                    Counters::add(&w.counters.idle_timeouts, 1);
                    return End::Drop;
                }
            },
        };
        let n = match read {
            Ok(0) => return End::PeerFin,
            Ok(n) => n,
            Err(e) => return failed(w, &e),
        };
        Counters::add(&w.counters.bytes_in, n as u64);
        if cfg.quickack {
            let _ = sockopt::quickack(stream);
        }
        if let Some(delay) = cfg.echo_delay {
            tokio::time::sleep(delay).await;
        }
        let mut out = 0;
        let sent = netio::send_all(stream, &buf[..n], &mut out).await;
        Counters::add(&w.counters.bytes_out, out);
        if let Err(e) = sent {
            return failed(w, &e);
        }
        echoed += n as u64;
        if cfg.max_payload.is_some_and(|max| echoed > max) {
            Counters::add(&w.counters.over_limit, 1);
            return End::Drop;
        }
        match close_after {
            Some(None) => return End::Policy,
            Some(Some(limit)) if echoed >= limit => return End::Policy,
            _ => {}
        }
    }
}

/// The seed's last words: bytes after the client's FIN, before the server's own FIN.
async fn farewell(stream: &TcpStream, w: &Worker, buf: &mut [u8]) {
    let mut left = w.cfg.farewell;
    let chunk = left.min(buf.len());
    buf[..chunk].fill(b'z');
    while left > 0 {
        let n = left.min(chunk);
        let mut out = 0;
        let sent = netio::send_all(stream, &buf[..n], &mut out).await;
        Counters::add(&w.counters.bytes_out, out);
        if let Err(e) = sent {
            failed(w, &e);
            return;
        }
        left -= n;
    }
}

fn failed(w: &Worker, e: &io::Error) -> End {
    // The client's taxonomy decides what a reset is, for both ends.
    if Failure::from_io(Phase::Echo, e).kind == ErrorKind::Reset {
        Counters::add(&w.counters.resets, 1);
    }
    End::Drop
}
