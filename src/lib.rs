//! tcpbench: a load-testing harness for the TCP connection lifecycle.
//!
//! The map of the crate, in the order data flows (each layer uses only those above it;
//! `tests/layers.rs` checks that no import reaches up or closes a circle):
//!
//! - Vocabulary: [`config`] (the validated [`config::RunConfig`] and [`config::ServerConfig`],
//!   nothing of the command line), [`failure`] (why a connection failed: kind, phase, errno),
//!   [`parse`] (the values people type: `10k`, `1KiB`, `2s`, address ranges).
//! - The machine: [`environment`] (kernel, CPU, the loopback calibration), [`cpu`] (pinning),
//!   [`sockopt`] (every socket option, with the kernel's caveats), [`netio`] (I/O that asks
//!   the kernel before epoll), [`observe`] (counters, sysctls, CPU cost, the sock_diag state
//!   sampler, `--isolate`'s namespace), [`preflight`] (descriptor and port arithmetic).
//! - Measurement: [`server`] is the embedded echo server (and `tcpbench serve`), each worker a
//!   thread with its own single-threaded runtime; [`load`] is the load generator: a pool of
//!   threads, each worker running one connection at a time through [`load::conn`] (the one
//!   connection cycle; [`load::proto`] says what a request is for echo, HTTP, RESP and raw),
//!   recording into its thread's [`stats::Recorder`]; [`load::control`] handles Ctrl-C, the
//!   stop rules and progress. [`launch`] starts a real server for a run in its namespace
//!   (matrix `server.*`, `ab --*-server`), through [`run_with`]'s hook. [`trace`] captures one
//!   connection's segments and states.
//! - Results: the merged recorder becomes a [`report::Report`] (schema `tcpbench.report.v1`;
//!   `report::build` adds the warnings); [`compare`] judges two reports (thresholds, intervals
//!   from [`compare::stats`]), [`matrix`] runs scenario files, [`ab`] interleaves two builds
//!   or flag sets, [`rebind`] makes the SO_REUSEADDR table.
//! - Edges: [`cli`] is clap derive, and [`cli::resolve`] turns flags into config once;
//!   [`commands`] holds one file per subcommand; each writes its result through [`output`]:
//!   the [`output::Export`] trait (the formats each result type has) and the
//!   [`output::Outputs`] a command builds once from its flags, which checks every path
//!   before the run and writes them all safely after it.

pub mod ab;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod config;
pub mod cpu;
pub mod environment;
pub mod failure;
pub mod hdr;
pub mod launch;
pub mod load;
pub mod matrix;
pub mod netio;
pub mod observe;
pub mod output;
pub mod parse;
pub mod preflight;
pub mod rebind;
pub mod report;
pub mod server;
pub mod sockopt;
pub mod stats;
pub mod trace;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use config::{RunConfig, ServerConfig, Target, UsageError};
use environment::Environment;
use load::Control;
use observe::sampler::Sampler;
use report::{Measured, Report};
use server::{EchoServer, ServerTotals};
use stats::Recorder;

/// Runs the load described by `cfg` and returns its report. `quiet` hides the progress bar.
pub fn run(cfg: &RunConfig, quiet: bool) -> anyhow::Result<Report> {
    run_with(cfg, quiet, || Ok(None))
}

/// [`run`], with `before_load` called on this thread once the run is in its namespace
/// (after `--isolate`) and before anything is measured: a server it starts there
/// ([`launch`]) and whose address it returns is the run's `--target`. The caller stops that
/// server after this returns.
pub fn run_with(
    cfg: &RunConfig,
    quiet: bool,
    before_load: impl FnOnce() -> anyhow::Result<Option<SocketAddr>>,
) -> anyhow::Result<Report> {
    preflight::check_fd_budget(cfg)?;
    if cfg.isolate {
        isolate(&cfg.sysctls)?;
    }
    preflight::check_bind_addresses(cfg)?;
    // The machine's own loopback cycle, before any load: what compare checks two reports'
    // machines by.
    let calibration = environment::calibrate(environment::CALIBRATION_SPAN).ok();
    let served;
    // A server started for the run is its target; else a `--target` name with several
    // addresses loads the first that answers (probed here, in the run's namespace).
    let cfg = match before_load()?.or_else(|| load::probe::answering(cfg)) {
        Some(addr) => {
            served = RunConfig {
                target: Target::External(addr),
                ..cfg.clone()
            };
            &served
        }
        None => cfg,
    };
    let mut hints = port_hints(cfg);
    hints.extend(cfg.engine_note.clone());
    for h in &hints {
        eprintln!("tcpbench: hint: {h}");
    }
    let server = match &cfg.target {
        Target::Embedded(s) => Some(
            EchoServer::start(s.clone())
                .with_context(|| format!("cannot start the embedded server on {}", s.listen))?,
        ),
        Target::External(_) => None,
    };
    let target_addr = match (&server, &cfg.target) {
        (Some(s), _) => s.local_addr(),
        (None, Target::External(addr)) => *addr,
        (None, Target::Embedded(_)) => unreachable!("an embedded target has a server"),
    };
    let mut ctl = Control::new(quiet).context("cannot install signal handlers")?;
    if !quiet {
        // Said at the start, so a piped or logged run shows what it is doing; the summary
        // repeats it.
        let header = report::text::config_header(cfg, target_addr);
        let columns = output::terminal_columns_of(2);
        eprint!("{}", report::text::wrap_to(header + "\n", columns));
    }
    if let Some(at) = cfg.start_at {
        match at.duration_since(SystemTime::now()) {
            Ok(wait) => {
                // Always said: agents' logs should show why nothing happens yet.
                eprintln!(
                    "tcpbench: waiting {} for --start-at {}",
                    humantime::format_duration(Duration::from_millis(wait.as_millis() as u64)),
                    humantime::format_rfc3339_millis(at)
                );
                ctl.pause(wait, "waiting for --start-at")
            }
            Err(late) if late.duration() >= Duration::from_secs(1) => eprintln!(
                "tcpbench: --start-at was {} ago; starting now",
                humantime::format_duration(Duration::from_millis(
                    late.duration().as_millis() as u64
                ))
            ),
            Err(_) => {}
        }
    }
    if let Some(warmup) = cfg.warmup {
        load::run_pool(cfg, target_addr, warmup, &mut ctl, "warmup", None)?;
    }
    let started_at = SystemTime::now();
    let before = observe::Before::take(cfg.isolate);
    // The server's sockets are visible when it runs on this host.
    let server_observed = server.is_some() || target_addr.ip().is_loopback();
    let sampler = Sampler::start(target_addr, cfg.sample_interval, server_observed)
        .context("cannot start the socket-state sampler")?;
    // Without root or tracefs the accept wait is not measured; the report leaves it out.
    #[cfg(target_os = "linux")]
    let accept_wait = match &server {
        Some(s) if cfg.accept_wait => observe::accept_wait::AcceptWait::start(s).ok(),
        _ => None,
    };
    let (recorder, elapsed, timeline, intervals) = if ctl.interrupted() || ctl.aborted().is_some() {
        let none = cfg
            .hlog_interval
            .map(|i| stats::interval::IntervalLog::empty(started_at, i));
        (Recorder::default(), Duration::ZERO, Vec::new(), none)
    } else {
        let pool = load::run_pool(
            cfg,
            target_addr,
            cfg.bounds,
            &mut ctl,
            "run",
            cfg.hlog_interval,
        )?;
        (pool.recorder, pool.elapsed, pool.timeline, pool.intervals)
    };
    sampler.load_ended();
    if !cfg.drain.is_zero() && !ctl.interrupted() && ctl.aborted().is_none() {
        ctl.pause(cfg.drain, "drain: sampling TIME_WAIT");
    }
    let (tcp_states, time_wait) = sampler.stop();
    let (kernel, cpu) = before.finish(recorder.attempted);
    let server_totals: Option<ServerTotals> = server.map(|s| {
        let (mut totals, samples) = s.stop_sampled();
        #[cfg(target_os = "linux")]
        if let Some(aw) = accept_wait {
            totals.accept_wait = aw
                .finish(&samples)
                .map(|h| report::PhaseStats::from_histogram(&h));
        }
        let _ = samples;
        totals
    });
    Ok(Report::build(
        cfg,
        Measured {
            recorder,
            started_at,
            duration_s: elapsed.as_secs_f64(),
            interrupted: ctl.interrupted(),
            aborted: ctl.aborted().map(str::to_string),
            target_addr,
            server: server_totals,
            environment: Environment {
                isolated: cfg.isolate,
                calibration,
                ..Environment::snapshot()
            },
            kernel,
            cpu,
            tcp_states,
            time_wait,
            hints,
            timeline,
            intervals,
        },
    ))
}

/// The preflight's port and Fast Open hints, from the sysctls of the namespace the run is in.
fn port_hints(cfg: &RunConfig) -> Vec<String> {
    let (target, server_fastopen) = match &cfg.target {
        Target::Embedded(s) => (s.listen.ip(), s.fastopen.is_some()),
        Target::External(a) => (a.ip(), false),
    };
    let sysctl = observe::sysctls();
    let mut hints = preflight::PortSettings::from_sysctls(&sysctl)
        .map(|s| preflight::port_hints(cfg, target, &s))
        .unwrap_or_default();
    hints.extend(preflight::fastopen_hint(
        cfg.socket.fastopen,
        server_fastopen,
        &sysctl,
    ));
    hints
}

/// Runs `cfg` `repeat` times, each against a fresh embedded server (a new port, so one
/// run's TIME_WAIT does not meet the next), and merges them; `each` sees every run's report.
/// An interrupted or aborted run ends the series.
pub fn run_repeated(
    cfg: &RunConfig,
    repeat: u32,
    quiet: bool,
    mut each: impl FnMut(u32, &Report),
) -> anyhow::Result<Report> {
    let mut runs = Vec::new();
    // Only the first run waits for --start-at; the others follow it.
    let later = RunConfig {
        start_at: None,
        ..cfg.clone()
    };
    for i in 0..repeat.max(1) {
        let r = run(if i == 0 { cfg } else { &later }, quiet)?;
        each(i, &r);
        let stop = r.interrupted || r.aborted.is_some();
        runs.push(r);
        if stop {
            break;
        }
    }
    Ok(Report::merge_runs(&runs))
}

/// Moves this thread, and so the whole run, into a fresh network namespace and sets
/// `sysctls` there (`--isolate`, `--sysctl`).
pub fn isolate(sysctls: &[(String, String)]) -> anyhow::Result<()> {
    observe::netns::enter_fresh().map_err(|e| {
        let why = if e.raw_os_error() == Some(libc::EPERM) { "it needs root (CAP_SYS_ADMIN)" } else { "the kernel refused" };
        UsageError(format!("--isolate cannot create a network namespace: {why} ({e}); run as root or drop --isolate"))
    })?;
    for (name, value) in sysctls {
        observe::netns::set_sysctl(name, value).map_err(|e| {
            UsageError(format!(
                "--sysctl {name}={value}: {e}; check the name and value"
            ))
        })?;
    }
    Ok(())
}

/// Runs the echo server until SIGINT/SIGTERM or `duration`, then returns its counters.
pub fn serve(
    cfg: &ServerConfig,
    duration: Option<Duration>,
    on_ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<ServerTotals> {
    environment::raise_nofile_limit().ok();
    // The runtime and the signal handlers first: once the server accepts, its connections
    // may take every descriptor left.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut signals = rt.block_on(async { load::control::Signals::new() })?;
    let server = EchoServer::start(cfg.clone())
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    on_ready(server.local_addr());
    rt.block_on(async {
        let limit = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = signals.recv() => {}
            _ = limit => {}
        }
    });
    Ok(server.stop())
}
