//! The command line: clap derive types. `///` comments are the help text.
//!
//! `tcpbench [run flags]` and `tcpbench run [run flags]` are the same command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{CloseMode, ServerClose};
use crate::parse::{self, CountOrDuration};

/// Load-test the TCP connection lifecycle: handshake, echo, close, TIME_WAIT.
///
/// Without a subcommand, runs `run` with the given flags: `tcpbench --conns 10000`.
#[derive(Parser, Debug)]
#[command(name = "tcpbench", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open, use and close connections against an echo server and report the latencies.
    Run(Box<RunArgs>),
    /// Run the echo server on its own until SIGINT/SIGTERM (or --duration).
    Serve(ServeArgs),
    /// Show what SO_REUSEADDR does to a server restart while its TIME_WAIT remains.
    Rebind(RebindArgs),
    /// Compare a candidate report with a baseline: every figure side by side, and exit 1
    /// when a threshold fails (for CI).
    Compare(CompareArgs),
    /// Run the named scenarios of a TOML file one after another and compare them in one
    /// table (scenarios as columns).
    Matrix(MatrixArgs),
    /// Merge the reports of agents that ran side by side into one: histograms added (never
    /// percentiles averaged), counts summed, time series on one wall-clock axis.
    Merge(MergeArgs),
    /// A/B in one job: two sides (builds, or flag sets) run interleaved for N rounds, each
    /// run a fresh child process, judged by a Mann-Whitney test with confidence intervals;
    /// exit 1 when a threshold's whole interval is past it (for CI).
    Ab(AbArgs),
    /// Open one connection (or a few) the way `run` does, capture its segments on lo and the
    /// states both ends pass through, and draw them as a ladder, checked against the
    /// textbook's claims (root or CAP_NET_RAW).
    Trace(TraceArgs),
}

#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// Echo server on this host's loopback to trace against [default: the embedded one].
    #[arg(long, value_name = "HOST:PORT", value_parser = parse::target)]
    pub target: Option<SocketAddr>,

    /// Who ends the connection (as `run --close`); the embedded server follows.
    #[arg(long, value_enum, default_value_t = CloseMode::Client)]
    pub close: CloseMode,

    /// SO_LINGER on the client socket, in seconds.
    #[arg(long, value_name = "SECS")]
    pub linger: Option<u32>,

    /// Bytes per request.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub payload: usize,

    /// Requests (echo round trips); 0 = connect, then close.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub requests: u32,

    /// Connections, one after another (a few: their initial sequence numbers are compared).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,

    /// Watch each TIME_WAIT socket until it is gone (up to about a minute) instead of
    /// reading the kernel's remaining timer once.
    #[arg(long)]
    pub wait_time_wait: bool,

    /// Run in a fresh network namespace of its own (root), so the capture sees only the
    /// traced connection on its loopback.
    #[arg(long)]
    pub isolate: bool,

    /// Write the traces (segments, states, checks) as JSON.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Write the first connection's ladder as an SVG picture.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
}

impl TraceArgs {
    /// The `run` flags that make the same connection.
    pub fn run_flags(&self) -> Vec<String> {
        let mut f: Vec<String> = [
            "--close",
            &self.close.to_string(),
            "--payload",
            &self.payload.to_string(),
            "--requests",
            &self.requests.to_string(),
            "--conns",
            &self.conns.to_string(),
            "--concurrency",
            "1",
        ]
        .map(String::from)
        .to_vec();
        if let Some(t) = self.target {
            f.extend(["--target".into(), t.to_string()]);
        }
        if let Some(l) = self.linger {
            f.extend(["--linger".into(), l.to_string()]);
        }
        f
    }
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// The agents' reports (JSON from `tcpbench run --json`, or earlier merges).
    #[arg(value_name = "REPORT.json", required = true, num_args = 1..)]
    pub reports: Vec<PathBuf>,

    /// Write the merged report as JSON (atomically); `compare` and `merge` read it.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Merge reports whose configurations differ (the differences are listed).
    #[arg(long)]
    pub force: bool,

    /// How to print the merged report.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Write the merged report as Markdown.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,

    /// Write the merged report as HTML with charts.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct MatrixArgs {
    /// The scenarios: `[defaults]` and `[[scenario]]` tables whose keys are `tcpbench run` flags
    /// without their dashes, and `server.*` keys for a real server to start and load (see
    /// reports/scenarios/). Exit 1 when connections failed or a scenario's server did not
    /// start or did not last its run.
    #[arg(value_name = "SCENARIOS.toml")]
    pub file: PathBuf,

    /// Run each scenario in a fresh network namespace of its own (root), so its TIME_WAIT,
    /// counters and sysctls (`sysctl = { … }`) are its alone.
    #[arg(long)]
    pub isolate: bool,

    /// Load this server instead of an embedded one (client-only scenarios).
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,

    /// Allow a --target that is not on this host.
    #[arg(long)]
    pub allow_remote: bool,

    /// Run each scenario N times and report them merged, with their spread.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,

    /// How to print the table.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(flatten)]
    pub out: Outputs,
}

/// The files a run or a matrix writes, each atomically (a temp file, then rename).
#[derive(Args, Debug, Clone, Default)]
pub struct Outputs {
    /// Write the full report as JSON (a matrix: every scenario's flags and report).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Write the report as Markdown.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,

    /// Write one self-contained HTML file with charts (a matrix: every scenario overlaid).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,

    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Output forms of `compare` and `matrix`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The reference report (JSON from `tcpbench run --json`).
    #[arg(value_name = "BASELINE.json")]
    pub baseline: PathBuf,

    /// The report to judge.
    #[arg(value_name = "CANDIDATE.json")]
    pub candidate: PathBuf,

    /// Fail when FIGURE OP LIMIT holds: 'connect.p99>+10%' (change from the baseline),
    /// 'rate_cps<-5%', 'errors>0', 'total.p99>2ms' (the candidate's value). Repeatable; each
    /// replaces the default for its figure.
    #[arg(long, value_name = "EXPR", value_parser = crate::compare::threshold::parse)]
    pub fail_if: Vec<crate::compare::threshold::Threshold>,

    /// Apply only the --fail-if thresholds, not the default set (errors>0, rate_cps<-20%,
    /// connect/echo/total.p50>+25%, total.p99>+50%).
    #[arg(long)]
    pub no_default_thresholds: bool,

    /// Compare reports whose configurations differ (the differences are listed).
    #[arg(long)]
    pub allow_config_change: bool,

    /// Scale the candidate's rates and latencies by the ratio of the reports' machine
    /// calibrations (said in the output). Off by default: use `tcpbench ab` to compare on
    /// one machine instead.
    #[arg(long)]
    pub normalize: bool,

    /// How to print the comparison.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write an HTML report: the tables and both runs' charts overlaid (atomically).
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct AbArgs {
    /// Rounds: each runs both sides once, the order alternating (A B, B A, ...). Five or more
    /// bound a 95% interval (four is the least).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,

    /// The baseline's tcpbench binary [default: this one].
    #[arg(long, value_name = "PATH")]
    pub baseline_bin: Option<PathBuf>,

    /// The candidate's tcpbench binary [default: this one].
    #[arg(long, value_name = "PATH")]
    pub candidate_bin: Option<PathBuf>,

    /// Run flags only the baseline adds, as one string: --baseline-args '--close client'.
    #[arg(
        long,
        value_name = "FLAGS",
        default_value = "",
        allow_hyphen_values = true
    )]
    pub baseline_args: String,

    /// Run flags only the candidate adds: --candidate-args '--server-echo-delay 2ms'.
    #[arg(
        long,
        value_name = "FLAGS",
        default_value = "",
        allow_hyphen_values = true
    )]
    pub candidate_args: String,

    /// A real server each baseline run starts and loads (a fresh one per run), as one
    /// string: 'nginx -p {dir} -c {fill:a.conf} -g "daemon off;"'. `{dir}` is a fresh folder,
    /// `{port}` a free port, `{fill:PATH}` the file at PATH with those filled in, in {dir}.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub baseline_server: Option<String>,

    /// A real server each candidate run starts and loads, as --baseline-server.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub candidate_server: Option<String>,

    /// Where a side's server listens once it is ready (its runs' --target).
    #[arg(long, value_name = "HOST:PORT", default_value = crate::launch::DEFAULT_READY)]
    pub server_ready: String,

    /// How long a side's server may take to listen before the A/B fails.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse::duration)]
    pub server_ready_timeout: Duration,

    /// The signal that stops a side's server after each run (SIGKILL 5 s later).
    #[arg(long, value_name = "SIGNAL", default_value = "SIGTERM", value_parser = crate::launch::Signal::parse)]
    pub server_stop: crate::launch::Signal,

    /// Fail when FIGURE OP LIMIT holds for the whole interval of the change (as compare
    /// --fail-if). Repeatable; each replaces the default for its figure.
    #[arg(long, value_name = "EXPR", value_parser = crate::compare::threshold::parse)]
    pub fail_if: Vec<crate::compare::threshold::Threshold>,

    /// Apply only the --fail-if thresholds, not the default set.
    #[arg(long)]
    pub no_default_thresholds: bool,

    /// How to print the verdict.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write every run of both sides and the verdict as JSON (`tcpbench.ab.v1`).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Also write an HTML report: the tables and both sides' charts overlaid.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,

    /// The run flags both sides share, after `--`: -- --conns 20000 --close rst --isolate.
    #[arg(last = true, value_name = "RUN FLAGS")]
    pub common: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RebindArgs {
    /// Connections served (server closing first) before each restart.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,

    /// Write the table as JSON (atomically).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Echo server to load, HOST:PORT. Default: an embedded server on 127.0.0.1, port chosen
    /// by the kernel, started for the run.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse::target)]
    pub target: Option<SocketAddr>,

    /// Connections to measure [default: 10000, or unbounded when --duration is given].
    #[arg(long, short = 'n', value_name = "N")]
    pub conns: Option<u64>,

    /// Stop starting connections after this long (500ms, 10s, 2m).
    #[arg(long, short = 'd', value_name = "D", value_parser = parse::duration)]
    pub duration: Option<Duration>,

    /// Connections (N) or time (D) run before measuring, excluded from every figure.
    #[arg(long, value_name = "N|D", value_parser = parse::count_or_duration)]
    pub warmup: Option<CountOrDuration>,

    /// Workers, each running one connection at a time (closed loop); with --rate, the most
    /// connections in flight.
    #[arg(long, short = 'c', value_name = "C", default_value_t = 64)]
    pub concurrency: usize,

    /// Start connections at this fixed rate per second (open loop); latency is also reported
    /// from each connection's scheduled start, so queueing shows (coordinated omission).
    #[arg(long, short = 'r', value_name = "R")]
    pub rate: Option<f64>,

    /// Bytes per request; the echo is verified byte for byte.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub payload: usize,

    /// Requests (echo round trips) per connection; 0 = connect, then close.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub requests: u32,

    /// Who ends each connection: client (shutdown, read the server's FIN, close: the client
    /// holds TIME_WAIT), client-nowait (close at once after the echo), server (the server
    /// closes first and holds TIME_WAIT), rst (SO_LINGER 0: RST, no TIME_WAIT).
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

    /// Give up on a handshake after this long (counted as connect_timeout).
    #[arg(long, value_name = "D", value_parser = parse::duration, default_value = "10s")]
    pub connect_timeout: Duration,

    /// Give up on a read or write after this long (counted as io_timeout).
    #[arg(long, value_name = "D", value_parser = parse::duration, default_value = "10s")]
    pub io_timeout: Duration,

    /// Source addresses, round-robin: 127.0.0.2,127.0.0.3 or 127.0.0.2-127.0.0.17. Bound with
    /// IP_BIND_ADDRESS_NO_PORT, so each address has its own ephemeral port range.
    #[arg(long, value_name = "IP[,IP|IP-IP…]", value_parser = parse::ip_list)]
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

    /// After the run, trace one connection made the same way (`tcpbench trace`): print its
    /// ladder, and draw it in the --html report.
    #[arg(long)]
    pub trace: bool,

    #[command(flatten)]
    pub server: EmbeddedServerArgs,
}

/// The embedded server's options (only without --target); they mirror `serve`'s.
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
    }
}

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

    /// With --close first|rst: the first message is this many bytes [default: one read].
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

    /// Stop by itself after this long.
    #[arg(long, short = 'd', value_name = "D", value_parser = parse::duration)]
    pub duration: Option<Duration>,
}

/// A clap error as one line: its message, the argument it names, and clap's tip.
pub fn one_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut first = lines
        .next()
        .unwrap_or("bad usage")
        .trim_start_matches("error: ")
        .to_string();
    // "the following required arguments were not provided:" names them on the next line.
    if first.ends_with(':')
        && let Some(next) = lines.next()
    {
        first = format!("{first} {next}");
    }
    match lines.find(|l| l.starts_with("tip:")) {
        Some(tip) => format!("{first} ({tip})"),
        None => first,
    }
}

/// A run configuration from `run` flags (without the program and command names), built and
/// checked as the command line builds it.
pub fn run_config(flags: &[String]) -> Result<crate::config::RunConfig, crate::config::UsageError> {
    let argv = ["tcpbench", "run", "--quiet"]
        .into_iter()
        .map(String::from)
        .chain(flags.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| crate::config::UsageError(one_line(&e)))?;
    let Some(Command::Run(run)) = cli.command else {
        unreachable!("`run` was given")
    };
    crate::config::RunConfig::from_args(&run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_is_the_default_command() {
        let cli = Cli::try_parse_from(["tcpbench", "--conns", "5"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.conns, Some(5));
        let cli = Cli::try_parse_from(["tcpbench", "run", "--conns", "7"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Run(a)) if a.conns == Some(7)));
    }

    #[test]
    fn reuseaddr_pairs_override() {
        let cli = Cli::try_parse_from(["tcpbench", "serve", "--no-reuseaddr", "--reuseaddr"]);
        let Some(Command::Serve(a)) = cli.unwrap().command else {
            panic!("not serve")
        };
        assert!(a.reuseaddr && !a.no_reuseaddr);
    }
}
