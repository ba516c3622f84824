//! One accepted connection: echo (or answer, with the HTTP and RESP responders), then close
//! the way the policy says.

use std::io;

use tokio::net::TcpStream;

use super::respond::{self, Answer};
use super::{Counters, Worker};
use crate::config::{ServerClose, ServerProtocol};
use crate::failure::{ErrorKind, Failure, Phase};
use crate::{netio, sockopt};

const BUF: usize = 16 * 1024;

/// Why the echo loop ended.
enum End {
    /// The client sent its FIN.
    PeerFin,
    /// The policy's first message was echoed (`first`, `rst`), or the responder closes
    /// (HTTP `Connection: close`, a bad request, RESP `QUIT`).
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
    let end = match cfg.protocol {
        ServerProtocol::Echo => echo(&stream, w, &mut buf).await,
        ServerProtocol::Http => answer(&stream, w, &mut buf, respond::http).await,
        ServerProtocol::Resp => answer(&stream, w, &mut buf, respond::resp).await,
    };
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

/// The policy's limit: `None` for `wait`; else `Some(close_after)`.
fn close_after(w: &Worker) -> Option<Option<u64>> {
    match w.cfg.close {
        ServerClose::Wait => None,
        ServerClose::First | ServerClose::Rst => Some(w.cfg.close_after),
    }
}

/// One read, bounded by --idle-timeout: `Ok(n)` with n > 0 bytes, or how the loop ends.
/// The first read takes what is queued without waiting: the first request usually is
/// there before the accept.
async fn read(stream: &TcpStream, w: &Worker, buf: &mut [u8], first: bool) -> Result<usize, End> {
    let read = async {
        match first {
            true => netio::recv_eager(stream, buf).await,
            false => netio::recv(stream, buf).await,
        }
    };
    let read = match w.cfg.idle_timeout {
        None => read.await,
        Some(idle) => match tokio::time::timeout(idle, read).await {
            Ok(r) => r,
            Err(_) => {
                Counters::add(&w.counters.idle_timeouts, 1);
                return Err(End::Drop);
            }
        },
    };
    match read {
        Ok(0) => Err(End::PeerFin),
        Ok(n) => {
            Counters::add(&w.counters.bytes_in, n as u64);
            if w.cfg.quickack {
                let _ = sockopt::quickack(stream);
            }
            Ok(n)
        }
        Err(e) => Err(failed(w, &e)),
    }
}

async fn echo(stream: &TcpStream, w: &Worker, buf: &mut [u8]) -> End {
    let cfg = &*w.cfg;
    let close_after = close_after(w);
    if close_after == Some(Some(0)) {
        return End::Policy;
    }
    let mut echoed = 0u64;
    loop {
        let n = match read(stream, w, buf, echoed == 0).await {
            Ok(n) => n,
            Err(end) => return end,
        };
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

/// Answers each request as `respond` (a responder of [`respond`]) says, in order, until
/// the client's FIN, the responder's close, or the policy's count of answers. Requests
/// split over reads are collected; pipelined ones are answered together, in one write.
async fn answer(
    stream: &TcpStream,
    w: &Worker,
    buf: &mut [u8],
    respond: fn(&[u8], &mut Vec<u8>) -> Answer,
) -> End {
    let close_after = close_after(w);
    if close_after == Some(Some(0)) {
        return End::Policy;
    }
    let (mut input, mut out) = w.requests.borrow_mut().pop().unwrap_or_default();
    let end = answer_all(stream, w, buf, respond, close_after, &mut input, &mut out).await;
    input.clear();
    out.clear();
    w.requests.borrow_mut().push((input, out));
    end
}

/// [`answer`]'s loop, with the worker's reused buffers: `input` for requests read and not
/// yet answered, `out` for the answers to write.
async fn answer_all(
    stream: &TcpStream,
    w: &Worker,
    buf: &mut [u8],
    respond: fn(&[u8], &mut Vec<u8>) -> Answer,
    close_after: Option<Option<u64>>,
    input: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> End {
    let cfg = &*w.cfg;
    let (mut answered, mut taken) = (0u64, 0u64);
    loop {
        let n = match read(stream, w, buf, taken == 0).await {
            Ok(n) => n,
            Err(end) => return end,
        };
        taken += n as u64;
        if cfg.max_payload.is_some_and(|max| taken > max) {
            Counters::add(&w.counters.over_limit, 1);
            return End::Drop;
        }
        input.extend_from_slice(&buf[..n]);
        let (mut used, mut close, before) = (0, false, answered);
        while let Answer::Reply { consumed, close: c } = respond(&input[used..], out) {
            used += consumed;
            answered += 1;
            close = c
                || match close_after {
                    Some(None) => true,
                    Some(Some(limit)) => answered >= limit,
                    None => false,
                };
            if close || used == input.len() {
                break;
            }
        }
        input.drain(..used);
        if out.is_empty() && !close {
            continue;
        }
        if let Some(delay) = cfg.echo_delay {
            tokio::time::sleep(delay).await;
        }
        let mut sent = 0;
        let result = netio::send_all(stream, out, &mut sent).await;
        Counters::add(&w.counters.bytes_out, sent);
        Counters::add(&w.counters.answers, answered - before);
        out.clear();
        if let Err(e) = result {
            return failed(w, &e);
        }
        if close {
            return End::Policy;
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
