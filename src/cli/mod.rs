//! The command line: clap derive types. `///` comments are the help text.
//!
//! `tcpbench [run flags]` and `tcpbench run [run flags]` are the same command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub mod resolve;
mod run;
mod serve;

pub use run::{EmbeddedServerArgs, EngineArg, PortArg, ProtocolArg, ProtocolArgs, RunArgs};
pub use serve::ServeArgs;

use crate::config::CloseMode;
use crate::parse;

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
    /// Open, use and close connections against a server (echo, HTTP, Redis, raw) and report
    /// the latencies.
    Run(Box<RunArgs>),
    /// Run the embedded server (echo, HTTP or RESP) on its own until SIGINT/SIGTERM (or
    /// --duration).
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
    /// Print a shell completion script: `tcpbench completions bash > /etc/bash_completion.d/tcpbench`.
    Completions(CompletionsArgs),
    /// Print the man page (roff): `tcpbench man > /usr/local/share/man/man1/tcpbench.1`.
    Man,
    /// Open one connection (or a few) the way `run` does, capture its segments on lo and the
    /// states both ends pass through, and draw them as a ladder, checked against the
    /// textbook's claims (root or CAP_NET_RAW).
    Trace(TraceArgs),
}

#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// Server on this host's loopback to trace against, speaking --protocol (a name that
    /// resolves to several addresses is probed as `run` does) [default: the embedded one].
    #[arg(long, value_name = "HOST:PORT", value_parser = parse::target_name)]
    pub target: Option<crate::config::TargetName>,

    /// IPv6: the embedded server listens on `[::1]` (as `run -6`); the capture on lo reads
    /// IPv6 segments. With --target, its address sets the family instead.
    #[arg(long, short = '6')]
    pub ipv6: bool,

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

    /// TCP Fast Open on the client (as `run --fastopen`) and, when embedded, on the server's
    /// listener: trace 2 connections to see the first ask for a cookie and the second carry
    /// its request in the SYN (with --isolate, net.ipv4.tcp_fastopen is set to 3).
    #[arg(long)]
    pub fastopen: bool,

    /// TCP_QUICKACK after each read on the embedded server (as `run --server-quickack`).
    #[arg(long)]
    pub server_quickack: bool,

    /// Write the traces (segments, states, checks) as JSON.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Write the first connection's ladder as an SVG picture.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,

    #[command(flatten)]
    pub proto: ProtocolArgs,
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

/// The files a run or a matrix writes (`crate::output` checks them before the run and
/// writes them after it). `-` is standard output for every output flag.
#[derive(Args, Debug, Clone, Default)]
pub struct Outputs {
    /// Write the full report as JSON (a matrix: every scenario's flags and report); - for
    /// standard output.
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
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(4..=1000))]
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
    pub server_ready_timeout: std::time::Duration,

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
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug, Clone)]
pub struct RebindArgs {
    /// Connections served (server closing first) before each restart.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,

    /// IPv6: the servers listen on `[::1]` and the new socket binds there (AF_INET6).
    #[arg(long, short = '6')]
    pub ipv6: bool,

    /// Write the table as JSON (atomically).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
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
    // An invalid value: the values the flag takes, as clap's own context has them.
    if let Some(clap::error::ContextValue::Strings(values)) =
        e.get(clap::error::ContextKind::ValidValue)
    {
        first = format!("{first} [possible values: {}]", values.join(", "));
    }
    match lines.find(|l| l.starts_with("tip:")) {
        Some(tip) => format!("{first} ({tip})"),
        None => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_bad_value_names_the_values_on_one_line() {
        let e = Cli::try_parse_from(["tcpbench", "--close", "fin"]).unwrap_err();
        let line = one_line(&e);
        assert!(
            line.contains("'fin'") && line.contains("possible values: client, client-nowait"),
            "{line}"
        );
        let e = Cli::try_parse_from(["tcpbench", "--close", "clien"]).unwrap_err();
        assert!(one_line(&e).contains("a similar value exists: 'client'"));
    }

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
