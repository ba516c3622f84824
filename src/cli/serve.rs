//! `tcpbench serve`'s flags: clap derive only.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::config::{ServerClose, ServerProtocol};
use crate::parse;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on, IPv4 or IPv6 (a bare port means 127.0.0.1).
    #[arg(long, short = 'l', value_name = "ADDR:PORT", value_parser = parse::listen,
          default_value = "127.0.0.1:8888")]
    pub listen: SocketAddr,

    /// Listen backlog (the seed used 5: try it to see a small backlog overflow).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub backlog: u32,

    /// SO_REUSEADDR on the listener (the default: a restart does not fail on TIME_WAIT).
    #[arg(long, overrides_with = "no_reuseaddr")]
    pub reuseaddr: bool,

    /// No SO_REUSEADDR: a restart fails with EADDRINUSE while server-side TIME_WAIT remains.
    #[arg(long)]
    pub no_reuseaddr: bool,

    /// SO_REUSEPORT: one listener per worker, on the same port.
    #[arg(long)]
    pub reuseport: bool,

    /// Server threads, each with its own single-threaded runtime.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: usize,

    /// Pin worker i to CPU i; with --reuseport, steer each connection to the worker on the
    /// CPU its SYN arrives on.
    #[arg(long)]
    pub pin: bool,

    /// SO_LINGER on accepted sockets, in seconds (0 = RST on close).
    #[arg(long, value_name = "SECS")]
    pub linger: Option<u32>,

    /// wait: echo until the client's FIN, then close (client holds TIME_WAIT); first: close
    /// after echoing the first message (server holds TIME_WAIT); rst: RST after the first message.
    #[arg(long, value_enum, default_value_t = ServerClose::Wait)]
    pub close: ServerClose,

    /// With --close first|rst: the first message is this many bytes (http, resp: this many
    /// requests answered) [default: one read, or one answer].
    #[arg(long, value_name = "BYTES")]
    pub close_after: Option<u64>,

    /// Bytes sent after the client's FIN, before the server's own FIN (a half-close).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub farewell: usize,

    /// TCP_NODELAY on accepted sockets.
    #[arg(long)]
    pub nodelay: bool,

    /// Connections served at once; more wait in the accept queue.
    #[arg(long, value_name = "N")]
    pub max_conns: Option<usize>,

    /// Close a connection that sends nothing for this long.
    #[arg(long, value_name = "D", value_parser = parse::duration)]
    pub idle_timeout: Option<Duration>,

    /// Close a connection that sends more than this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_payload: Option<u64>,

    /// Each worker waits this long before each accept (a slow acceptor: with a small
    /// --backlog the accept queue overflows).
    #[arg(long, value_name = "D", value_parser = parse::duration)]
    pub accept_delay: Option<Duration>,

    /// Wait this long before echoing each read (a slow application).
    #[arg(long, value_name = "D", value_parser = parse::duration)]
    pub echo_delay: Option<Duration>,

    /// What to answer: echo (every byte back), http (200 OK with a small body to every
    /// HTTP/1.x request, keep-alive unless asked to close), resp (+PONG to PING, an error
    /// reply to other commands).
    #[arg(long, value_enum, default_value_t = ServerProtocol::Echo)]
    pub protocol: ServerProtocol,

    /// TCP Fast Open on the listener (TCP_FASTOPEN), with this many pending requests at most.
    #[arg(long, value_name = "QLEN")]
    pub fastopen: Option<u32>,

    /// TCP_DEFER_ACCEPT: wake for a connection only when its data (or FIN) arrives, waiting
    /// about this many seconds for it.
    #[arg(long, value_name = "SECS")]
    pub defer_accept: Option<u32>,

    /// TCP_QUICKACK after each read: ACK at once, not delayed.
    #[arg(long)]
    pub quickack: bool,

    /// Stop by itself after this long.
    #[arg(long, short = 'd', value_name = "D", value_parser = parse::duration)]
    pub duration: Option<Duration>,
}
