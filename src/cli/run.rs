//! `tcpbench run`'s flags (and the embedded server's `--server-*` ones): clap derive only.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::Outputs;
use crate::config::{CloseMode, ServerClose, TargetName};
use crate::parse::{self, CountOrDuration};

/// `--engine`: an engine, or `auto`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    Auto,
    Tokio,
    Uring,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Server to load, HOST:PORT, speaking --protocol. A name that resolves to several
    /// addresses (localhost: ::1 and 127.0.0.1) is probed, one connect each in order, and the
    /// first that answers is loaded. Default: an embedded server (echo, or the minimal HTTP
    /// or RESP responder) on 127.0.0.1, port chosen by the kernel, started for the run.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse::target_name)]
    pub target: Option<TargetName>,

    /// IPv6: the embedded server listens on `[::1]` instead of 127.0.0.1.
    #[arg(long, short = '6')]
    pub ipv6: bool,

    /// Connections to measure [default: 10000, or unbounded when --duration is given].
    #[arg(long, short = 'n', value_name = "N", value_parser = parse::count)]
    pub conns: Option<u64>,

    /// Stop starting connections after this long (500ms, 10s, 2m).
    #[arg(long, short = 'd', value_name = "D", value_parser = parse::duration)]
    pub duration: Option<Duration>,

    /// Connections (N) or time (D) run before measuring, excluded from every figure.
    #[arg(long, value_name = "N|D", value_parser = parse::count_or_duration)]
    pub warmup: Option<CountOrDuration>,

    /// Workers, each running one connection at a time (closed loop); with --rate, the most
    /// connections in flight.
    #[arg(long, short = 'c', value_name = "C", default_value_t = 64, value_parser = parse::count_usize)]
    pub concurrency: usize,

    /// Start connections at this fixed rate per second (open loop); latency is also reported
    /// from each connection's scheduled start, so queueing shows (coordinated omission).
    #[arg(long, short = 'r', value_name = "R", value_parser = parse::rate)]
    pub rate: Option<f64>,

    /// Bytes per request of --protocol echo (64, 1KiB, 1MiB); the echo is verified byte for
    /// byte.
    #[arg(long, value_name = "BYTES", default_value_t = 64, value_parser = parse::size)]
    pub payload: usize,

    /// Requests (round trips: echoes, or the protocol's requests, kept alive between them)
    /// per connection; 0 = connect, then close.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub requests: u32,

    /// Who ends each connection: client (shutdown, read the server's FIN, close: the client
    /// holds TIME_WAIT), client-nowait (close at once after the echo), server (the server
    /// closes first and holds TIME_WAIT; HTTP asks for it with Connection: close on the last
    /// request), rst (SO_LINGER 0: RST, no TIME_WAIT).
    #[arg(long, value_enum, default_value_t = CloseMode::Client)]
    pub close: CloseMode,

    /// SO_LINGER on client sockets, in seconds: close blocks until data is acknowledged or
    /// the time passes (run off the runtime threads). 0 is an abortive close, as --close rst.
    #[arg(long, value_name = "SECS")]
    pub linger: Option<u32>,

    /// SO_REUSEADDR on client sockets [default: on with --port-strategy explicit, where it
    /// lets bind() take a port whose last connection is still in TIME_WAIT; off otherwise].
    #[arg(long, overrides_with = "no_reuseaddr")]
    pub reuseaddr: bool,

    /// No SO_REUSEADDR on client sockets, even with explicit ports (bind() then fails with
    /// EADDRINUSE on a port in TIME_WAIT).
    #[arg(long)]
    pub no_reuseaddr: bool,

    /// TCP_NODELAY on client sockets.
    #[arg(long)]
    pub nodelay: bool,

    /// Do not measure the embedded server's accept wait (the tracepoint
    /// sock:inet_sock_set_state in a private tracefs, sampled; root only).
    #[arg(long)]
    pub no_accept_wait: bool,

    /// Skip the one getsockopt(TCP_INFO) after each handshake (about 0.4 µs, `cargo bench
    /// --bench tcp_info`): no handshake_rtt, no count of retransmitted SYNs.
    #[arg(long)]
    pub no_tcp_info: bool,

    /// TCP Fast Open (TCP_FASTOPEN_CONNECT): once the server gave this host a cookie, the
    /// first request rides in the SYN and connect() returns before any packet is sent (the
    /// handshake's round trip then shows in the first echo).
    #[arg(long)]
    pub fastopen: bool,

    /// SYN retransmits before connect() gives up with ETIMEDOUT (TCP_SYNCNT, 1-127)
    /// [default: net.ipv4.tcp_syn_retries].
    #[arg(long, value_name = "N")]
    pub syn_retries: Option<u8>,

    /// Give up on a handshake after this long (counted as connect_timeout).
    #[arg(long, value_name = "D", value_parser = parse::duration, default_value = "10s")]
    pub connect_timeout: Duration,

    /// Deadline for each echo round trip (the request written and its whole echo read), and
    /// for the close's wait for the server's FIN: a server that answers a byte at a time
    /// still runs out (counted as io_timeout).
    #[arg(long, value_name = "D", value_parser = parse::duration, default_value = "10s")]
    pub io_timeout: Duration,

    /// Bytes the server sends after our FIN, before its own (a half-close farewell, with
    /// --close client); any other count fails the connection as farewell_mismatch
    /// [default: with --target, any count is accepted and counted; the embedded server's
    /// --server-farewell sets it].
    #[arg(long, value_name = "BYTES")]
    pub expect_farewell: Option<usize>,

    /// Source addresses, round-robin: 127.0.0.2,127.0.0.3, 127.0.0.2-127.0.0.17, 127.0.0.8/29;
    /// with -6 or an IPv6 target the same in IPv6 (fd00::1-fd00::4, fd00::4/126), of the
    /// target's family. Bound with IP_BIND_ADDRESS_NO_PORT, so each address has its own
    /// ephemeral port range.
    #[arg(long, value_name = "IP[,IP|IP-IP|IP/LEN…]", value_parser = parse::ip_list)]
    pub bind: Option<parse::IpList>,

    /// How client sockets get local ports: kernel (connect() searches ip_local_port_range),
    /// explicit (bind each to the next port of --port-range, as netperf), bind-no-port
    /// (IP_BIND_ADDRESS_NO_PORT: chosen at connect() per 4-tuple).
    #[arg(long, value_enum, default_value_t = PortArg::Kernel)]
    pub port_strategy: PortArg,

    /// Ports for --port-strategy explicit, LO-HI [default: 2000-31999, below the ephemeral range].
    #[arg(long, value_name = "LO-HI", value_parser = parse::port_range)]
    pub port_range: Option<(u16, u16)>,

    /// Keep each connection open this long after its last echo (e.g. to hold thousands at once).
    #[arg(long, value_name = "D", value_parser = parse::duration)]
    pub hold: Option<Duration>,

    /// Client threads, each with its own single-threaded runtime [default: min(CPUs, C)].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// What drives the client's connections: tokio (epoll), uring (io_uring: one ring per
    /// client thread, closed loop; not yet with --rate, --linger above 0, --fastopen or
    /// --hlog), or auto: tokio for now, while the io_uring engine is new.
    #[arg(long, value_name = "ENGINE", value_enum, default_value_t = EngineArg::Auto)]
    pub engine: EngineArg,

    /// Stop the run once this many connections failed (50), or this share of them (5%,
    /// judged from the 100th on) [default: only when the first 100 all fail: the target is
    /// down].
    #[arg(long, value_name = "N|P%", value_parser = parse::error_limit)]
    pub max_errors: Option<crate::config::ErrorLimit>,

    /// Allow a --target that is not on this host (loopback or 0.0.0.0).
    #[arg(long)]
    pub allow_remote: bool,

    /// Wait until this wall-clock instant before starting: RFC 3339 (2026-11-25T04:00:00Z)
    /// or +D from now (+5s). Agents started by a scheduler begin together.
    #[arg(long, value_name = "TIME", value_parser = parse::instant)]
    pub start_at: Option<std::time::SystemTime>,

    /// This agent's name in the report [default: the hostname].
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,

    /// This run is one of N agents: --conns and --rate are the totals of all N, split evenly.
    #[arg(long, value_name = "N", requires = "agent_index")]
    pub agents: Option<u32>,

    /// Which of the --agents this one is, from 0 (e.g. a Job's JOB_COMPLETION_INDEX).
    #[arg(long, value_name = "I", requires = "agents")]
    pub agent_index: Option<u32>,

    /// Pin client thread i (and embedded server worker i) to CPU i, and steer each connection
    /// to the server worker on its CPU, so no wake-up crosses CPUs [default: on with the
    /// embedded server].
    #[arg(long, overrides_with = "no_pin")]
    pub pin: bool,

    /// Let the scheduler place every thread.
    #[arg(long)]
    pub no_pin: bool,

    /// Run the embedded server and the load in a fresh network namespace of their own
    /// (root only): TIME_WAIT, counters and sysctls belong to this run alone.
    #[arg(long)]
    pub isolate: bool,

    /// With --isolate: set a network sysctl for the run, e.g. net.ipv4.tcp_tw_reuse=0
    /// (repeatable). The host's are never touched.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse::sysctl)]
    pub sysctl: Vec<(String, String)>,

    /// How often to count the run's sockets by TCP state (TIME_WAIT buildup).
    #[arg(long, value_name = "D", value_parser = parse::duration, default_value = "100ms")]
    pub sample_interval: Duration,

    /// Keep sampling this long after the load ends (65s shows the whole 60 s TIME_WAIT
    /// plateau and its fall).
    #[arg(long, value_name = "D", value_parser = parse::duration, default_value = "0s")]
    pub drain: Duration,

    /// Run the whole measurement N times (each against a fresh embedded server) and report
    /// them merged, with each run's figures and their median and range: what `compare`
    /// needs to tell a change from noise.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,

    #[command(flatten)]
    pub out: Outputs,

    /// Write one HdrHistogram percentile distribution (.hgrm) per phase into this folder.
    #[arg(long, value_name = "DIR")]
    pub hgrm: Option<PathBuf>,

    /// Write the latency over time as an HdrHistogram interval log (.hlog): one histogram
    /// per phase (tag) per --hlog-interval, values in ns, for HistogramLogAnalyzer and other
    /// HdrHistogram log readers; - for standard output.
    #[arg(long, value_name = "PATH")]
    pub hlog: Option<PathBuf>,

    /// The interval of --hlog's histograms (100ms to 1h).
    #[arg(long, value_name = "D", value_parser = parse::duration, default_value = "1s", requires = "hlog")]
    pub hlog_interval: Duration,

    /// After the run, trace one connection made the same way (`tcpbench trace`): print its
    /// ladder, and draw it in the --html report.
    #[arg(long)]
    pub trace: bool,

    #[command(flatten)]
    pub proto: ProtocolArgs,

    #[command(flatten)]
    pub server: EmbeddedServerArgs,
}

/// `--protocol` values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolArg {
    Echo,
    Http,
    Resp,
    Raw,
}

impl std::fmt::Display for ProtocolArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        let v = self.to_possible_value().expect("no variant is skipped");
        f.write_str(v.get_name())
    }
}

/// What each request and response is: `run`'s and `trace`'s `--protocol` and its settings.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Protocol")]
pub struct ProtocolArgs {
    /// What each request and its response are: echo (--payload bytes, echoed back and
    /// verified), http (HTTP/1.1 GET, kept alive between --requests), resp (Redis PING, or
    /// --resp-command), raw (--send bytes, and an end rule: --expect-bytes, --expect or
    /// --expect-close).
    #[arg(long, value_enum, default_value_t = ProtocolArg::Echo)]
    pub protocol: ProtocolArg,

    /// HTTP: the request's path [default: /].
    #[arg(long, value_name = "PATH")]
    pub http_path: Option<String>,

    /// HTTP: the Host header [default: the target's HOST:PORT].
    #[arg(long, value_name = "HOST")]
    pub http_host: Option<String>,

    /// HTTP: one more request header, 'Name: value' (repeatable).
    #[arg(long, value_name = "'K: V'")]
    pub http_header: Vec<String>,

    /// HTTP: the status every response must have; any other fails as http_status
    /// [default: any status below 400].
    #[arg(long, value_name = "CODE")]
    pub http_expect_status: Option<u16>,

    /// RESP: the command each request sends, as redis-cli takes it ('SET k v', "GET k")
    /// [default: PING]; an error reply fails as resp_error.
    #[arg(long, value_name = "COMMAND")]
    pub resp_command: Option<String>,

    /// raw: the bytes each request sends: TEXT (escapes \r \n \t \\ \xNN), @FILE, or
    /// hex:48454c4c4f.
    #[arg(long, value_name = "TEXT|@FILE|hex:..")]
    pub send: Option<String>,

    /// raw: a response is complete after N bytes.
    #[arg(long, value_name = "N")]
    pub expect_bytes: Option<u64>,

    /// raw: a response is complete once it has begun with TEXT (escapes and hex: as --send);
    /// another beginning fails as response_mismatch.
    #[arg(long, value_name = "TEXT")]
    pub expect: Option<String>,

    /// raw: a response is everything up to the server's FIN (one request per connection).
    #[arg(long)]
    pub expect_close: bool,

    /// A response larger than this fails as response_too_large (http, resp, raw).
    #[arg(long, value_name = "BYTES", default_value_t = crate::config::DEFAULT_MAX_RESPONSE)]
    pub max_response: usize,
}

/// `--port-strategy` values.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PortArg {
    Kernel,
    Explicit,
    BindNoPort,
}

#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Embedded server")]
pub struct EmbeddedServerArgs {
    /// The server's close policy [default: follows --close: client→wait, server→first,
    /// rst→wait].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub server_close: Option<ServerClose>,

    /// SO_LINGER on the server's accepted sockets, in seconds (0 = RST).
    #[arg(long, value_name = "SECS")]
    pub server_linger: Option<u32>,

    /// The server's listen backlog [default: 1024].
    #[arg(long, value_name = "N")]
    pub server_backlog: Option<u32>,

    /// SO_REUSEADDR on the server's listener (the default).
    #[arg(long, overrides_with = "server_no_reuseaddr")]
    pub server_reuseaddr: bool,

    /// No SO_REUSEADDR on the server's listener.
    #[arg(long)]
    pub server_no_reuseaddr: bool,

    /// SO_REUSEPORT: one listener per server worker, on the same port (the default).
    #[arg(long, overrides_with = "server_no_reuseport")]
    pub server_reuseport: bool,

    /// The server's workers share one listener instead (each wakes for every connection).
    #[arg(long)]
    pub server_no_reuseport: bool,

    /// Server threads, each with its own single-threaded runtime [default: as many as the
    /// client's threads].
    #[arg(long, value_name = "N")]
    pub server_workers: Option<usize>,

    /// TCP_NODELAY on the server's accepted sockets.
    #[arg(long)]
    pub server_nodelay: bool,

    /// Bytes the server sends after the client's FIN, before its own FIN.
    #[arg(long, value_name = "BYTES")]
    pub server_farewell: Option<usize>,

    /// Each server worker waits this long before each accept (a slow acceptor: with a small
    /// --server-backlog the accept queue overflows).
    #[arg(long, value_name = "D", value_parser = parse::duration)]
    pub server_accept_delay: Option<Duration>,

    /// The server waits this long before echoing each read (a slow application).
    #[arg(long, value_name = "D", value_parser = parse::duration)]
    pub server_echo_delay: Option<Duration>,

    /// TCP Fast Open on the server's listener (TCP_FASTOPEN), with this many pending
    /// requests at most (e.g. 64).
    #[arg(long, value_name = "QLEN")]
    pub server_fastopen: Option<u32>,

    /// TCP_DEFER_ACCEPT: the server is woken for a connection only when its data (or FIN)
    /// arrives, waiting about this many seconds for it.
    #[arg(long, value_name = "SECS")]
    pub server_defer_accept: Option<u32>,

    /// TCP_QUICKACK after each read on the server: ACK at once, not delayed.
    #[arg(long)]
    pub server_quickack: bool,
}

impl EmbeddedServerArgs {
    /// Whether any `--server-*` flag was given (they make no sense with `--target`).
    pub fn any_given(&self) -> bool {
        self.server_close.is_some()
            || self.server_linger.is_some()
            || self.server_backlog.is_some()
            || self.server_reuseaddr
            || self.server_no_reuseaddr
            || self.server_reuseport
            || self.server_no_reuseport
            || self.server_workers.is_some()
            || self.server_nodelay
            || self.server_farewell.is_some()
            || self.server_accept_delay.is_some()
            || self.server_echo_delay.is_some()
            || self.server_fastopen.is_some()
            || self.server_defer_accept.is_some()
            || self.server_quickack
    }
}
