//! What a request is and when its response is complete, for each protocol the connection
//! cycle speaks: `echo`, `http`, `resp` and `raw`.
//!
//! Pure data and state machines: nothing here knows tokio, sockets or the cycle. A run
//! builds one [`Protocol`] from its flags (the specs validate the user's strings once, with
//! errors that name the flag); every worker makes one [`Decoder`] from it and reuses it for
//! all its connections. Per exchange `i` of K, the cycle:
//!
//! 1. calls [`Protocol::request`] to append the request bytes to its buffer and sends them;
//! 2. calls [`Decoder::reset`], then [`Decoder::feed`] with each chunk it reads, until
//!    [`Progress::Complete`] (or an error); the `extra` bytes of a completing chunk belong
//!    to whatever the server sent after this response;
//! 3. on EOF before that, calls [`Decoder::eof`]: a body delimited by close (HTTP without a
//!    length, raw `--expect-close`) completes there, anything else is
//!    [`ProtoError::Closed`].
//!
//! A decoder allocates only while its buffers grow to the largest head or line it has seen;
//! after that a connection costs no allocation. Feeding a response in any split, down to
//! one byte at a time, gives the same outcome as feeding it whole.

pub mod echo;
pub mod http;
pub mod raw;
pub mod resp;

pub use echo::EchoSpec;
pub use http::{HttpSpec, Method};
pub use raw::{RawEnd, RawSpec};
pub use resp::RespSpec;

use std::net::SocketAddr;

use crate::config::{ProtocolConfig, RawEndConfig};

/// The default of `--max-response`: a response larger than this is [`ProtoError::TooLarge`].
pub const DEFAULT_MAX_RESPONSE: usize = crate::config::DEFAULT_MAX_RESPONSE;

/// The protocol a run speaks, with its validated request and end rule.
#[derive(Clone, Debug)]
pub enum Protocol {
    /// The payload, echoed back byte for byte.
    Echo(EchoSpec),
    /// HTTP/1.1 requests, keep-alive between them.
    Http(HttpSpec),
    /// One Redis command per exchange, answered with one RESP2 reply.
    Resp(RespSpec),
    /// Fixed bytes out, and an end rule for what comes back.
    Raw(RawSpec),
}

impl Protocol {
    /// The protocol a run's settings describe: the echo of a `payload`-byte pattern, or the
    /// requests of the others; an HTTP request without `--http-host` names `target`.
    pub fn from_config(
        cfg: &ProtocolConfig,
        payload: usize,
        target: SocketAddr,
    ) -> Result<Protocol, SpecError> {
        Ok(match cfg {
            ProtocolConfig::Echo => Protocol::Echo(EchoSpec::new(echo::pattern(payload))),
            ProtocolConfig::Http(h) => {
                let host = h.host.clone().unwrap_or_else(|| target.to_string());
                Protocol::Http(HttpSpec::new(
                    Method::Get,
                    &h.path,
                    &host,
                    &h.headers,
                    h.expect_status,
                )?)
            }
            ProtocolConfig::Resp(r) => Protocol::Resp(match &r.command {
                None => RespSpec::ping(),
                Some(line) => RespSpec::command(line)?,
            }),
            ProtocolConfig::Raw(r) => {
                let end = match &r.end {
                    RawEndConfig::Bytes(n) => RawEnd::Bytes(*n),
                    RawEndConfig::Prefix(p) => RawEnd::Prefix(p.as_slice().into()),
                    RawEndConfig::Close => RawEnd::Close,
                };
                Protocol::Raw(RawSpec::new(r.send.clone(), end))
            }
        })
    }

    /// The `--protocol` value that names it.
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Echo(_) => "echo",
            Protocol::Http(_) => "http",
            Protocol::Resp(_) => "resp",
            Protocol::Raw(_) => "raw",
        }
    }

    /// Appends the request of exchange `i` (0-based) to `buf`. `last` marks the connection's
    /// last exchange; `close_by_server` says the server is to close first after it (HTTP
    /// then asks for `Connection: close`).
    pub fn request(&self, i: u64, last: bool, close_by_server: bool, buf: &mut Vec<u8>) {
        let _ = i;
        match self {
            Protocol::Echo(s) => s.request(buf),
            Protocol::Http(s) => s.request(last && close_by_server, buf),
            Protocol::Resp(s) => s.request(buf),
            Protocol::Raw(s) => s.request(buf),
        }
    }

    /// A decoder for this protocol's responses; `max_response` bounds one response's size.
    pub fn decoder(&self, max_response: usize) -> Decoder {
        match self {
            Protocol::Echo(s) => Decoder::Echo(echo::EchoDecoder::new(s)),
            Protocol::Http(s) => Decoder::Http(http::HttpDecoder::new(s, max_response)),
            Protocol::Resp(_) => Decoder::Resp(resp::RespDecoder::new(max_response)),
            Protocol::Raw(s) => Decoder::Raw(raw::RawDecoder::new(s, max_response)),
        }
    }
}

/// Where a response stands after a [`Decoder::feed`] or [`Decoder::eof`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every byte fed so far belongs to the response, and it is not complete yet.
    NeedMore,
    /// The response ended `consumed` bytes into the chunk just fed; the `extra` bytes after
    /// it (`consumed + extra` is the chunk's length) came after the response: pipelined
    /// data, or the start of something the next exchange must see.
    Complete { consumed: usize, extra: usize },
}

impl Progress {
    fn complete(consumed: usize, len: usize) -> Progress {
        Progress::Complete {
            consumed,
            extra: len - consumed,
        }
    }
}

/// Why a response failed. The variants carry no addresses or ports, so their counts add up
/// across runs; [`ProtoError::kind`] is the stable name a failure count goes under.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// An HTTP final status >= 400, or not the `--http-expect-status`.
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// Malformed: a garbage status line, a bad chunk, an unknown RESP type. The reason is a
    /// fixed phrase.
    #[error("malformed response: {0}")]
    Protocol(&'static str),
    /// The response grew past the limit (`--max-response`, or the 64 KiB an HTTP head may
    /// take) before it was complete.
    #[error("response larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A RESP error reply (`-ERR ...`), its text without the `-` and CRLF, cut at 200 bytes.
    #[error("RESP error reply: {0}")]
    RespError(String),
    /// The peer closed before the response was complete.
    #[error("the peer closed before the response was complete")]
    Closed,
    /// The bytes differ from what must come: an echo that is not the payload, a raw response
    /// that does not start with `--expect`.
    #[error("the response differs from what was expected")]
    Mismatch,
}

impl ProtoError {
    /// The stable name of this failure kind, for counts and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            ProtoError::HttpStatus(_) => "http_status",
            ProtoError::Protocol(_) => "protocol_error",
            ProtoError::TooLarge { .. } => "response_too_large",
            ProtoError::RespError(_) => "resp_error",
            ProtoError::Closed => "short_response",
            ProtoError::Mismatch => "response_mismatch",
        }
    }
}

/// A user's string (a header, a `--send` spec, a command) that cannot be used; the message
/// names the flag and says how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// One worker's response decoder: made once by [`Protocol::decoder`], [`Decoder::reset`]
/// before each exchange.
#[derive(Debug)]
pub enum Decoder {
    Echo(echo::EchoDecoder),
    Http(http::HttpDecoder),
    Resp(resp::RespDecoder),
    Raw(raw::RawDecoder),
}

impl Decoder {
    /// Readies the decoder for the next response; keeps its buffers.
    pub fn reset(&mut self) {
        match self {
            Decoder::Echo(d) => d.reset(),
            Decoder::Http(d) => d.reset(),
            Decoder::Resp(d) => d.reset(),
            Decoder::Raw(d) => d.reset(),
        }
    }

    /// Takes the next bytes read. An empty chunk is allowed: it tells whether a response of
    /// no bytes (an empty echo) is already complete. After `Complete`, further bytes are all
    /// `extra`; after an error, the decoder must be reset before it is used again.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Progress, ProtoError> {
        match self {
            Decoder::Echo(d) => d.feed(bytes),
            Decoder::Http(d) => d.feed(bytes),
            Decoder::Resp(d) => d.feed(bytes),
            Decoder::Raw(d) => d.feed(bytes),
        }
    }

    /// The peer closed (read returned 0). Completes a response delimited by the close, with
    /// `Complete { consumed: 0, extra: 0 }`; any other unfinished response is
    /// [`ProtoError::Closed`].
    pub fn eof(&mut self) -> Result<Progress, ProtoError> {
        match self {
            Decoder::Echo(d) => d.eof(),
            Decoder::Http(d) => d.eof(),
            Decoder::Resp(d) => d.eof(),
            Decoder::Raw(d) => d.eof(),
        }
    }

    /// Whether the response says the server closes after it: HTTP `Connection: close`, an
    /// HTTP/1.0 response without keep-alive, a body delimited by close, raw
    /// `--expect-close`. Meaningful once a head (HTTP) or the response is decoded.
    pub fn peer_closes(&self) -> bool {
        match self {
            Decoder::Echo(_) | Decoder::Resp(_) => false,
            Decoder::Http(d) => d.peer_closes(),
            Decoder::Raw(d) => d.peer_closes(),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Feeds a response in every split, so each decoder's tests check the split invariance.

    use super::{Decoder, Progress, ProtoError};

    /// What a whole feed came to: the bytes the response took, or the error.
    pub type Outcome = Result<Option<usize>, ProtoError>;

    /// Feeds `chunks` in turn, then EOF if `eof` and still incomplete; returns the response
    /// length (summed `consumed`) once complete, `None` if it never completed.
    pub fn run(d: &mut Decoder, chunks: &[&[u8]], eof: bool) -> Outcome {
        d.reset();
        let mut taken = 0;
        for c in chunks {
            match d.feed(c)? {
                Progress::NeedMore => taken += c.len(),
                Progress::Complete { consumed, extra } => {
                    assert_eq!(consumed + extra, c.len(), "consumed + extra = chunk");
                    return Ok(Some(taken + consumed));
                }
            }
        }
        if eof {
            match d.eof()? {
                Progress::Complete { consumed, extra } => {
                    assert_eq!((consumed, extra), (0, 0), "EOF completes with nothing");
                    Ok(Some(taken))
                }
                Progress::NeedMore => panic!("eof never needs more"),
            }
        } else {
            Ok(None)
        }
    }

    /// Asserts `input` gives `want` fed whole, split in two at every byte, and one byte at a
    /// time; a TooLarge or Protocol error may be found at a different byte but is the same.
    pub fn same_in_every_split(d: &mut Decoder, input: &[u8], eof: bool, want: &Outcome) {
        assert_eq!(&run(d, &[input], eof), want, "fed whole");
        for k in 0..=input.len() {
            let (a, b) = input.split_at(k);
            assert_eq!(&run(d, &[a, b], eof), want, "split at {k}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(&run(d, &bytes, eof), want, "one byte at a time");
    }
}
