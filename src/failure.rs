//! Why a connection failed: a stable kind, the phase it failed in, and the errno beside it.
//!
//! Kinds never carry strings with ports in them, so counts from different runs and hosts add
//! up and compare.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

/// The part of a connection's life an error happened in.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// socket(), bind() and the handshake.
    Connect,
    /// Writing requests and reading their echoes (or, with another `--protocol`, their
    /// responses: the exchange; the name stays `echo` in reports).
    Echo,
    /// The close sequence.
    Close,
}

/// A stable classification of a failure.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// ECONNREFUSED: nothing listens on the target port (or the SYN was answered by an RST).
    Refused,
    /// ECONNRESET or EPIPE: the peer aborted the connection.
    Reset,
    /// EADDRNOTAVAIL at connect, EADDRINUSE at bind: no free local port for this 4-tuple.
    LocalPortExhaustion,
    /// EADDRNOTAVAIL at bind: the `--bind` source address is not one of this host's.
    BindAddress,
    /// The handshake took longer than --connect-timeout (or the kernel gave up: ETIMEDOUT).
    ConnectTimeout,
    /// An echo round trip, or the close's wait for the server's FIN, took longer than
    /// --io-timeout.
    IoTimeout,
    /// EMFILE or ENFILE: out of file descriptors.
    FdLimit,
    /// The peer closed before echoing every byte.
    ShortEcho,
    /// The echo differed from what was sent.
    EchoMismatch,
    /// The target sent more than the echo: bytes beyond it, or queued unread when the close
    /// started (before our FIN, or before the server's FIN with `--close server`).
    ExtraBytes,
    /// The bytes after our FIN were not the `--expect-farewell` count.
    FarewellMismatch,
    /// An HTTP final status >= 400, or not the `--http-expect-status`; the status is in
    /// [`Failure::status`].
    HttpStatus,
    /// A response that is not the protocol's: a garbage status line, a bad chunk, an
    /// unknown RESP type.
    ProtocolError,
    /// A response larger than `--max-response` (or an HTTP head over 64 KiB).
    ResponseTooLarge,
    /// A RESP error reply (`-ERR ...`).
    RespError,
    /// The peer closed before its response was complete (`echo`: short_echo).
    ShortResponse,
    /// A raw response that does not start with `--expect` (`echo`: echo_mismatch).
    ResponseMismatch,
    /// The server said it closes (HTTP `Connection: close`, a body delimited by the close)
    /// before the connection's last request: it does not keep the connection alive.
    ClosedEarly,
    /// Still in flight when the run was stopped (Ctrl-C, --max-errors) and cut off after the
    /// grace period; the phase says where it was.
    Interrupted,
    /// Anything else; the errno says what.
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::LocalPortExhaustion => "local_port_exhaustion",
            ErrorKind::BindAddress => "bind_address",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::IoTimeout => "io_timeout",
            ErrorKind::FdLimit => "fd_limit",
            ErrorKind::ShortEcho => "short_echo",
            ErrorKind::EchoMismatch => "echo_mismatch",
            ErrorKind::ExtraBytes => "extra_bytes",
            ErrorKind::FarewellMismatch => "farewell_mismatch",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::ProtocolError => "protocol_error",
            ErrorKind::ResponseTooLarge => "response_too_large",
            ErrorKind::RespError => "resp_error",
            ErrorKind::ShortResponse => "short_response",
            ErrorKind::ResponseMismatch => "response_mismatch",
            ErrorKind::ClosedEarly => "closed_early",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Echo => "echo",
            Phase::Close => "close",
        })
    }
}

/// One failed connection: where, what, and the errno when the kernel gave one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Failure {
    pub phase: Phase,
    pub kind: ErrorKind,
    pub errno: Option<i32>,
    /// The HTTP status of an `http_status` failure: each status is counted apart.
    pub status: Option<u16>,
}

impl Failure {
    pub fn new(phase: Phase, kind: ErrorKind) -> Self {
        Failure {
            phase,
            kind,
            errno: None,
            status: None,
        }
    }

    /// An `http_status` failure with its status.
    pub fn http_status(phase: Phase, status: u16) -> Self {
        Failure {
            status: Some(status),
            ..Failure::new(phase, ErrorKind::HttpStatus)
        }
    }

    /// Classifies an I/O error met in `phase`.
    pub fn from_io(phase: Phase, e: &io::Error) -> Self {
        let Some(errno) = e.raw_os_error() else {
            let kind = match e.kind() {
                io::ErrorKind::UnexpectedEof => ErrorKind::ShortEcho,
                io::ErrorKind::TimedOut if phase == Phase::Connect => ErrorKind::ConnectTimeout,
                io::ErrorKind::TimedOut => ErrorKind::IoTimeout,
                _ => ErrorKind::Other,
            };
            return Failure::new(phase, kind);
        };
        let kind = match errno {
            libc::ECONNREFUSED => ErrorKind::Refused,
            libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED => ErrorKind::Reset,
            libc::EADDRNOTAVAIL | libc::EADDRINUSE => ErrorKind::LocalPortExhaustion,
            libc::ETIMEDOUT if phase == Phase::Connect => ErrorKind::ConnectTimeout,
            libc::ETIMEDOUT => ErrorKind::IoTimeout,
            libc::EMFILE | libc::ENFILE => ErrorKind::FdLimit,
            _ => ErrorKind::Other,
        };
        Failure {
            errno: Some(errno),
            ..Failure::new(phase, kind)
        }
    }

    /// Classifies an error of the socket's setup (socket(), options, bind()): there,
    /// EADDRNOTAVAIL means the source address is not on this host, not that ports ran out.
    pub fn from_bind(e: &io::Error) -> Self {
        let mut f = Failure::from_io(Phase::Connect, e);
        if f.errno == Some(libc::EADDRNOTAVAIL) {
            f.kind = ErrorKind::BindAddress;
        }
        f
    }

    /// The errno's symbolic name, e.g. "ECONNREFUSED".
    pub fn errno_name(&self) -> Option<String> {
        self.errno.map(errno_name)
    }
}

/// The symbolic name of an errno that network code meets; `E<n>` for the rest.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::EPIPE => "EPIPE",
        libc::ENOBUFS => "ENOBUFS",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::EISCONN => "EISCONN",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        _ => return format!("E{errno}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_map_to_kinds() {
        let f = |phase, errno| Failure::from_io(phase, &io::Error::from_raw_os_error(errno)).kind;
        assert_eq!(f(Phase::Connect, libc::ECONNREFUSED), ErrorKind::Refused);
        assert_eq!(f(Phase::Echo, libc::ECONNRESET), ErrorKind::Reset);
        assert_eq!(f(Phase::Echo, libc::EPIPE), ErrorKind::Reset);
        assert_eq!(
            f(Phase::Connect, libc::EADDRNOTAVAIL),
            ErrorKind::LocalPortExhaustion
        );
        assert_eq!(
            f(Phase::Connect, libc::EADDRINUSE),
            ErrorKind::LocalPortExhaustion
        );
        assert_eq!(
            f(Phase::Connect, libc::ETIMEDOUT),
            ErrorKind::ConnectTimeout
        );
        assert_eq!(f(Phase::Echo, libc::ETIMEDOUT), ErrorKind::IoTimeout);
        assert_eq!(f(Phase::Connect, libc::EMFILE), ErrorKind::FdLimit);
        let bind = |errno| Failure::from_bind(&io::Error::from_raw_os_error(errno)).kind;
        assert_eq!(bind(libc::EADDRNOTAVAIL), ErrorKind::BindAddress);
        assert_eq!(bind(libc::EADDRINUSE), ErrorKind::LocalPortExhaustion);
        assert_eq!(f(Phase::Connect, libc::ENETUNREACH), ErrorKind::Other);
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(
            Failure::from_io(Phase::Echo, &eof).kind,
            ErrorKind::ShortEcho
        );
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::ECONNRESET), "ECONNRESET");
        assert_eq!(errno_name(libc::EADDRNOTAVAIL), "EADDRNOTAVAIL");
        assert_eq!(errno_name(200), "E200");
    }
}
