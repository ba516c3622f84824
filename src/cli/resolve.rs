//! Flags -> validated configuration, once: `run`'s and `serve`'s arguments become a
//! [`RunConfig`] or a [`ServerConfig`], every error one line that names the flag and the fix.
//!
//! `RunConfig::from_args` is assembled from sections, each checking its own flags: the load
//! model, the agent's share, the protocol, the target (and the embedded server), and the
//! client's socket.

use std::net::SocketAddr;
use std::time::Duration;

use super::{EngineArg, PortArg, ProtocolArg, RunArgs, ServeArgs, TraceArgs};
use crate::config::*;
use crate::load::proto::{self, SpecError};

fn usage<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

fn cpus() -> usize {
    crate::cpu::count()
}

fn linger_secs(secs: Option<u32>) -> Option<Duration> {
    secs.map(|s| Duration::from_secs(s.into()))
}

/// TCP_DEFER_ACCEPT 0 is the option off.
fn defer_secs(secs: Option<u32>) -> Option<Duration> {
    linger_secs(secs).filter(|d| !d.is_zero())
}

impl ServerConfig {
    /// `tcpbench serve`'s flags, validated.
    pub fn from_serve_args(a: &ServeArgs) -> Result<Self, UsageError> {
        let cfg = ServerConfig {
            listen: a.listen,
            backlog: a.backlog,
            reuseaddr: !a.no_reuseaddr,
            reuseport: a.reuseport,
            workers: a.workers,
            pin: a.pin,
            batch: false,
            linger: linger_secs(a.linger),
            close: a.close,
            close_after: a.close_after,
            farewell: a.farewell,
            nodelay: a.nodelay,
            max_conns: a.max_conns,
            idle_timeout: a.idle_timeout,
            max_payload: a.max_payload,
            accept_delay: a.accept_delay.filter(|d| !d.is_zero()),
            echo_delay: a.echo_delay.filter(|d| !d.is_zero()),
            protocol: a.protocol,
            fastopen: a.fastopen,
            defer_accept: defer_secs(a.defer_accept),
            quickack: a.quickack,
        };
        cfg.validate("")?;
        Ok(cfg)
    }

    /// Checks shared by `serve` and the embedded server; `prefix` is "" or "server-".
    fn validate(&self, prefix: &str) -> Result<(), UsageError> {
        if self.workers == 0 {
            return usage(format!("--{prefix}workers must be at least 1"));
        }
        if self.backlog == 0 {
            return usage(format!("--{prefix}backlog must be at least 1"));
        }
        if self.max_conns == Some(0) {
            return usage("--max-conns must be at least 1");
        }
        if self.max_payload == Some(0) {
            return usage(
                "--max-payload 0 would close every connection at its first byte; give at least 1, or drop it for no cap",
            );
        }
        if self.idle_timeout.is_some_and(|d| d.is_zero()) {
            return usage(
                "--idle-timeout 0s would close connections at random; give a time longer than 0s, or drop it for no limit",
            );
        }
        if self.close == ServerClose::Rst && self.linger.is_some_and(|l| !l.is_zero()) {
            return usage(format!(
                "--{prefix}close rst already closes with SO_LINGER 0; drop --{prefix}linger"
            ));
        }
        if self.fastopen == Some(0) {
            return usage(format!(
                "--{prefix}fastopen 0 queues no Fast Open request; give a queue length such as 64, or drop it"
            ));
        }
        if self.close == ServerClose::Wait && self.close_after.is_some() {
            return usage("--close-after needs --close first or --close rst");
        }
        Ok(())
    }
}

impl RunConfig {
    /// `tcpbench run`'s flags, validated: each section checks its own flags.
    pub fn from_args(a: &RunArgs) -> Result<Self, UsageError> {
        let load = load_model(a)?;
        check_times(a)?;
        let (bounds, load, agent) = agent_share(a, load)?;
        let protocol = protocol(a)?;
        check_exchange(a, &protocol)?;
        check_namespace(a)?;
        if a.threads == Some(0) {
            return usage("--threads must be at least 1");
        }
        let threads = a.threads.unwrap_or(cpus()).min(a.concurrency);
        // Pinning pairs client and server threads; alone, a client has nothing to pair with.
        let pin = !a.no_pin && (a.pin || a.target.is_none());
        let (target, target_name) = target(a, &protocol, threads, pin)?;
        let socket = client_socket(a, &target)?;
        let expect_farewell = expect_farewell(a, &target)?;
        let mut cfg = RunConfig {
            target,
            target_name,
            load,
            bounds,
            warmup: warmup(a),
            payload: a.payload,
            requests: a.requests,
            protocol,
            max_response: a.proto.max_response,
            hold: a.hold.filter(|h| !h.is_zero()),
            socket,
            expect_farewell,
            threads,
            pin,
            max_errors: a.max_errors,
            isolate: a.isolate,
            accept_wait: !a.no_accept_wait,
            sysctls: sysctls(a),
            sample_interval: a.sample_interval,
            drain: a.drain,
            start_at: a.start_at,
            agent,
            hlog_interval: hlog_interval(a)?,
            engine: Engine::Tokio,
            engine_note: None,
        };
        (cfg.engine, cfg.engine_note) = engine(a.engine, &cfg)?;
        Ok(cfg)
    }

    /// The embedded server, its close policy following the client's close mode unless given.
    /// One server worker per client thread by default: with more workers than flows, a
    /// connection often lands on a sleeping worker and pays for waking it (measured: 1 flow
    /// ran at half the rate with 2 SO_REUSEPORT workers; 16 flows 20% faster).
    fn embedded_server(
        a: &RunArgs,
        protocol: &ProtocolConfig,
        threads: usize,
        pin: bool,
    ) -> Result<ServerConfig, UsageError> {
        let s = &a.server;
        // A raw response read to the close needs a server that closes.
        let closes = matches!(protocol, ProtocolConfig::Raw(r) if r.end == RawEndConfig::Close);
        let close = s.server_close.unwrap_or(match a.close {
            CloseMode::Server => ServerClose::First,
            _ if closes => ServerClose::First,
            CloseMode::Client | CloseMode::ClientNowait | CloseMode::Rst => ServerClose::Wait,
        });
        if s.server_farewell.is_some_and(|f| f > 0) && a.close != CloseMode::Client {
            return usage(
                "--server-farewell is read by the client's close phase; use it with --close client",
            );
        }
        // An HTTP server closes when the last request says Connection: close.
        let http = matches!(protocol, ProtocolConfig::Http(_));
        if a.close == CloseMode::Server && close == ServerClose::Wait && !http {
            return usage(
                "--close server with --server-close wait would hang (each side waits for the other's FIN); use --server-close first",
            );
        }
        let requests = u64::from(a.requests);
        // The server's "first message" is everything this client will send: bytes to echo,
        // or requests to answer.
        let (answers, first_message) = match protocol {
            ProtocolConfig::Echo => (ServerProtocol::Echo, a.payload as u64 * requests),
            ProtocolConfig::Http(_) => (ServerProtocol::Http, requests),
            ProtocolConfig::Resp(_) => (ServerProtocol::Resp, requests),
            ProtocolConfig::Raw(r) => (ServerProtocol::Echo, r.send.len() as u64 * requests),
        };
        let defaults = ServerConfig::default();
        let cfg = ServerConfig {
            listen: if a.ipv6 {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
            } else {
                SocketAddr::from(([127, 0, 0, 1], 0))
            },
            backlog: s.server_backlog.unwrap_or(defaults.backlog),
            reuseaddr: !s.server_no_reuseaddr,
            reuseport: !s.server_no_reuseport,
            workers: s.server_workers.unwrap_or(threads),
            pin,
            batch: true,
            linger: linger_secs(s.server_linger),
            close,
            close_after: (close != ServerClose::Wait).then_some(first_message),
            farewell: s.server_farewell.unwrap_or(0),
            nodelay: s.server_nodelay,
            accept_delay: s.server_accept_delay.filter(|d| !d.is_zero()),
            echo_delay: s.server_echo_delay.filter(|d| !d.is_zero()),
            protocol: answers,
            fastopen: s.server_fastopen,
            defer_accept: defer_secs(s.server_defer_accept),
            quickack: s.server_quickack,
            ..defaults
        };
        cfg.validate("server-")?;
        Ok(cfg)
    }
}

/// The load model: closed loop with `--concurrency` workers, or open loop at `--rate`.
fn load_model(a: &RunArgs) -> Result<LoadModel, UsageError> {
    if a.concurrency == 0 || a.concurrency > MAX_CONCURRENCY {
        return usage(format!("--concurrency must be from 1 to {MAX_CONCURRENCY}"));
    }
    match a.rate {
        None => Ok(LoadModel::Closed {
            concurrency: a.concurrency,
        }),
        Some(r) if (MIN_RATE..=MAX_RATE).contains(&r) => Ok(LoadModel::Open {
            rate: r,
            concurrency: a.concurrency,
        }),
        Some(r) => usage(format!(
            "--rate {r:e} is out of range; give {MIN_RATE} to {MAX_RATE:.0} connections/s"
        )),
    }
}

/// Timeouts, the target's port and `--start-at`: values that would fail or wait at once.
fn check_times(a: &RunArgs) -> Result<(), UsageError> {
    if a.connect_timeout.is_zero() || a.io_timeout.is_zero() {
        let flag = if a.connect_timeout.is_zero() {
            "--connect-timeout"
        } else {
            "--io-timeout"
        };
        return usage(format!(
            "{flag} 0s would fail every connection at once; give a time longer than 0s"
        ));
    }
    if let Some(t) = &a.target
        && t.first().port() == 0
    {
        return usage(format!(
            "--target {}: port 0 is no server's port; give the port the server listens on",
            t.name
        ));
    }
    if let Some(at) = a.start_at
        && at
            .duration_since(std::time::SystemTime::now())
            .is_ok_and(|ahead| ahead > MAX_START_AHEAD)
    {
        return usage(format!(
            "--start-at {} is more than a day ahead; give a time within a day, or +D from now",
            humantime::format_rfc3339_seconds(at)
        ));
    }
    Ok(())
}

/// The run's bounds, and this agent's share of the connections and the rate when it is one
/// of `--agents`.
fn agent_share(
    a: &RunArgs,
    load: LoadModel,
) -> Result<(Bounds, LoadModel, Option<Agent>), UsageError> {
    let mut bounds = Bounds {
        conns: a.conns.or(if a.duration.is_none() {
            Some(10_000)
        } else {
            None
        }),
        duration: a.duration,
    };
    let mut load = load;
    let agent = match (a.agents, a.agent_index) {
        (None, _) if a.agent_id.is_none() => None,
        (Some(0), _) => return usage("--agents must be at least 1"),
        (Some(n), Some(i)) if i >= n => {
            return usage(format!(
                "--agent-index {i} is not one of --agents {n} (they count from 0 to {})",
                n - 1
            ));
        }
        (agents, index) => {
            let (agents, index) = (agents.unwrap_or(1), index.unwrap_or(0));
            let agent = Agent {
                id: a
                    .agent_id
                    .clone()
                    .unwrap_or_else(crate::environment::hostname),
                index,
                agents,
                total_conns: bounds.conns,
                total_rate: load.rate(),
            };
            if let Some(total) = bounds.conns {
                let mine = share(total, index, agents);
                if mine == 0 {
                    return usage(format!(
                        "--conns {total} over --agents {agents} leaves agent {index} nothing; give at least one connection per agent"
                    ));
                }
                bounds.conns = Some(mine);
            }
            if let LoadModel::Open { rate, concurrency } = load {
                load = LoadModel::Open {
                    rate: rate / f64::from(agents),
                    concurrency,
                };
            }
            Some(agent)
        }
    };
    if bounds.conns == Some(0) {
        return usage("--conns must be at least 1");
    }
    if bounds.duration.is_some_and(|d| d.is_zero()) {
        return usage("--duration must be longer than 0s");
    }
    Ok((bounds, load, agent))
}

/// `--warmup N|DURATION`; 0 is none.
fn warmup(a: &RunArgs) -> Option<Bounds> {
    use crate::parse::CountOrDuration;
    a.warmup.and_then(|w| match w {
        CountOrDuration::Count(0) => None,
        CountOrDuration::Count(n) => Some(Bounds {
            conns: Some(n),
            duration: None,
        }),
        CountOrDuration::Duration(d) if d.is_zero() => None,
        CountOrDuration::Duration(d) => Some(Bounds {
            conns: None,
            duration: Some(d),
        }),
    })
}

/// What a request and a response are: `--protocol` and the flags of each protocol, checked
/// with the protocol's own parsers (their messages name the flag).
fn protocol(a: &RunArgs) -> Result<ProtocolConfig, UsageError> {
    let p = &a.proto;
    let spec = |e: SpecError| UsageError(e.0);
    let others = [
        ("--http-path", p.http_path.is_some(), ProtocolArg::Http),
        ("--http-host", p.http_host.is_some(), ProtocolArg::Http),
        (
            "--http-header",
            !p.http_header.is_empty(),
            ProtocolArg::Http,
        ),
        (
            "--http-expect-status",
            p.http_expect_status.is_some(),
            ProtocolArg::Http,
        ),
        (
            "--resp-command",
            p.resp_command.is_some(),
            ProtocolArg::Resp,
        ),
        ("--send", p.send.is_some(), ProtocolArg::Raw),
        ("--expect-bytes", p.expect_bytes.is_some(), ProtocolArg::Raw),
        ("--expect", p.expect.is_some(), ProtocolArg::Raw),
        ("--expect-close", p.expect_close, ProtocolArg::Raw),
    ];
    if let Some((flag, _, wants)) = others
        .iter()
        .find(|(_, given, w)| *given && *w != p.protocol)
    {
        return usage(format!(
            "{flag} goes with --protocol {wants}; add --protocol {wants} or drop {flag}"
        ));
    }
    if p.max_response == 0 {
        return usage("--max-response 0 would fail every response; give at least 1 byte");
    }
    match p.protocol {
        ProtocolArg::Echo => Ok(ProtocolConfig::Echo),
        ProtocolArg::Http => {
            let http = HttpConfig {
                path: p.http_path.clone().unwrap_or_else(|| "/".into()),
                host: p.http_host.clone(),
                headers: p.http_header.clone(),
                expect_status: p.http_expect_status,
            };
            // Checked now with a stand-in for the target's address, known only at the run.
            let host = http.host.as_deref().unwrap_or("127.0.0.1");
            let (path, headers, status) = (&http.path, &http.headers, http.expect_status);
            proto::HttpSpec::new(proto::Method::Get, path, host, headers, status).map_err(spec)?;
            Ok(ProtocolConfig::Http(http))
        }
        ProtocolArg::Resp => {
            if let Some(line) = &p.resp_command {
                proto::RespSpec::command(line).map_err(spec)?;
            }
            Ok(ProtocolConfig::Resp(RespConfig {
                command: p.resp_command.clone(),
            }))
        }
        ProtocolArg::Raw => {
            let Some(send) = &p.send else {
                return usage(
                    "--protocol raw needs --send TEXT|@FILE|hex:..: the bytes each request sends",
                );
            };
            let send = proto::raw::parse_send(send).map_err(spec)?;
            let end =
                proto::RawEnd::from_flags(p.expect_bytes, p.expect.as_deref(), p.expect_close)
                    .map_err(spec)?;
            let end = match end {
                proto::RawEnd::Bytes(n) => RawEndConfig::Bytes(n),
                proto::RawEnd::Prefix(text) => RawEndConfig::Prefix(text.to_vec()),
                proto::RawEnd::Close => RawEndConfig::Close,
            };
            if end == RawEndConfig::Close && a.requests > 1 {
                return usage(format!(
                    "--expect-close reads a response to the server's FIN, so a connection has one; use --requests 1 (not {}), or --expect-bytes/--expect to keep it open",
                    a.requests
                ));
            }
            Ok(ProtocolConfig::Raw(RawConfig { send, end }))
        }
    }
}

/// What each connection sends, and how it closes.
fn check_exchange(a: &RunArgs, protocol: &ProtocolConfig) -> Result<(), UsageError> {
    if a.payload > MAX_PAYLOAD {
        return usage(format!(
            "--payload {} is over the {MAX_PAYLOAD}-byte limit",
            a.payload
        ));
    }
    if a.payload == 0 && a.requests > 0 && protocol.is_echo() {
        return usage("--payload 0 sends nothing to echo; use --requests 0 for connect-close");
    }
    if a.close == CloseMode::Rst && a.linger.is_some_and(|l| l > 0) {
        return usage("--close rst already closes with SO_LINGER 0; drop --linger");
    }
    if a.fastopen && a.requests == 0 {
        return usage(
            "--fastopen sends the first request in the SYN, and --requests 0 has none (no packet would leave); give --requests 1 or more",
        );
    }
    if a.syn_retries.is_some_and(|n| !(1..=127).contains(&n)) {
        return usage("--syn-retries must be from 1 to 127 (TCP_SYNCNT)");
    }
    Ok(())
}

/// `--hlog-interval`, when there is a `--hlog` to write.
fn hlog_interval(a: &RunArgs) -> Result<Option<Duration>, UsageError> {
    if a.hlog.is_none() {
        return Ok(None);
    }
    let d = a.hlog_interval;
    if !(MIN_HLOG_INTERVAL..=MAX_HLOG_INTERVAL).contains(&d) {
        return usage(format!(
            "--hlog-interval {}: give an interval from 100ms to 1h (e.g. 1s)",
            humantime::format_duration(d)
        ));
    }
    Ok(Some(d))
}

/// `--isolate`, `--sysctl` and the sampler: the namespace the run measures.
fn check_namespace(a: &RunArgs) -> Result<(), UsageError> {
    if !a.sysctl.is_empty() && !a.isolate {
        return usage(
            "--sysctl would change the host's settings; add --isolate to set it in the run's own namespace",
        );
    }
    if a.isolate
        && a.target
            .as_ref()
            .is_some_and(|t| t.resolved.iter().any(|s| !s.ip().is_loopback()))
    {
        return usage(
            "--isolate runs in a namespace with only a loopback; a remote --target is unreachable from it",
        );
    }
    if a.sample_interval < Duration::from_millis(1) {
        return usage("--sample-interval must be at least 1ms");
    }
    Ok(())
}

/// `--sysctl`, and under `--isolate` what the Fast Open flags need: net.ipv4.tcp_fastopen=3
/// (client and server on) unless given.
fn sysctls(a: &RunArgs) -> Vec<(String, String)> {
    let mut all = a.sysctl.clone();
    let wants = a.fastopen || a.server.server_fastopen.is_some();
    if a.isolate && wants && !all.iter().any(|(n, _)| n == FASTOPEN_SYSCTL) {
        all.push((FASTOPEN_SYSCTL.into(), "3".into()));
    }
    all
}

const FASTOPEN_SYSCTL: &str = "net.ipv4.tcp_fastopen";

/// The server to load: `--target` (on this host unless `--allow-remote`), or the embedded
/// one; and a target given as a name, with the addresses the run may probe.
fn target(
    a: &RunArgs,
    protocol: &ProtocolConfig,
    threads: usize,
    pin: bool,
) -> Result<(Target, Option<TargetName>), UsageError> {
    let Some(t) = &a.target else {
        let server = RunConfig::embedded_server(a, protocol, threads, pin)?;
        return Ok((Target::Embedded(server), None));
    };
    if !a.allow_remote
        && let Some(far) = t.resolved.iter().find(|s| !is_local(s.ip()))
    {
        let which = match t.is_name() {
            true => format!("{} resolves to {far}, which", t.name),
            false => t.name.clone(),
        };
        return usage(format!(
            "--target {which} is not on this host; add --allow-remote to load a server you run elsewhere"
        ));
    }
    if a.ipv6 {
        return usage(format!(
            "-6 puts the embedded server on [::1]; with --target {} drop -6 and give the address to use, e.g. [::1]:{}",
            t.name,
            t.first().port()
        ));
    }
    if a.server.any_given() {
        return usage(
            "--server-* options configure the embedded server; drop them or drop --target",
        );
    }
    // --bind sources of one family can reach only that family's addresses of the name.
    let mut t = t.clone();
    if let Some(family) = a
        .bind
        .as_ref()
        .and_then(|b| b.0.first())
        .map(|ip| ip.is_ipv4())
        && t.resolved.iter().any(|s| s.is_ipv4() == family)
    {
        t.resolved.retain(|s| s.is_ipv4() == family);
    }
    let addr = t.first();
    Ok((Target::External(addr), t.is_name().then_some(t)))
}

/// The client's socket: source addresses, port strategy, close, timeouts.
fn client_socket(a: &RunArgs, target: &Target) -> Result<ClientSocket, UsageError> {
    let target_ip = match target {
        Target::External(addr) => addr.ip(),
        Target::Embedded(s) => s.listen.ip(),
    };
    let bind = a.bind.clone().map(|l| l.0).unwrap_or_default();
    if let Some(ip) = bind.iter().find(|ip| ip.is_ipv4() != target_ip.is_ipv4()) {
        return usage(format!(
            "--bind {ip} is not of the target's address family ({target_ip}); bind addresses of the same family"
        ));
    }
    let ports = match (a.port_strategy, a.port_range) {
        (PortArg::Kernel, None) => PortStrategy::Kernel,
        (PortArg::BindNoPort, None) => PortStrategy::BindNoPort,
        (PortArg::Explicit, range) => {
            let (lo, hi) = range.unwrap_or((2000, 31999));
            PortStrategy::Explicit { lo, hi }
        }
        (_, Some(_)) => return usage("--port-range goes with --port-strategy explicit"),
    };
    if ports == PortStrategy::BindNoPort && a.bind.is_none() {
        return usage(
            "--port-strategy bind-no-port needs --bind addresses (without one it is the kernel's own choice)",
        );
    }
    if matches!(ports, PortStrategy::Explicit { .. })
        && a.bind.as_ref().is_some_and(|b| b.0.len() > 1)
    {
        return usage(
            "--port-strategy explicit takes one --bind address at most; use bind-no-port to spread over several",
        );
    }
    Ok(ClientSocket {
        close: a.close,
        linger: linger_secs(a.linger),
        reuseaddr: a.reuseaddr
            || (matches!(ports, PortStrategy::Explicit { .. }) && !a.no_reuseaddr),
        nodelay: a.nodelay,
        bind,
        ports,
        connect_timeout: a.connect_timeout,
        io_timeout: a.io_timeout,
        tcp_info: !a.no_tcp_info,
        fastopen: a.fastopen,
        syn_retries: a.syn_retries,
    })
}

/// The farewell the client's close expects: the embedded server's own, or `--expect-farewell`.
fn expect_farewell(a: &RunArgs, target: &Target) -> Result<Option<usize>, UsageError> {
    if a.expect_farewell.is_some() && a.close != CloseMode::Client {
        return usage(
            "--expect-farewell is read by the client's close phase; use it with --close client",
        );
    }
    match target {
        Target::Embedded(_) if a.expect_farewell.is_some() => usage(
            "--expect-farewell checks a --target; the embedded server sends --server-farewell bytes and is checked for them",
        ),
        Target::Embedded(s) if s.close == ServerClose::Wait => Ok(Some(s.farewell)),
        Target::Embedded(_) => Ok(None),
        Target::External(_) => Ok(a.expect_farewell),
    }
}

/// A `--target` the user gives with `--isolate` names a server outside the run's fresh
/// namespace, where nothing listens; only a server started inside it (matrix `server.*`,
/// `ab --*-server`) can be loaded there. The commands a user types them to check this.
pub fn isolated_target(isolate: bool, target: Option<&str>) -> Result<(), UsageError> {
    match target {
        Some(t) if isolate => usage(format!(
            "--isolate runs in a namespace of its own, where nothing listens on --target {t}; drop --isolate, or let matrix `server.*` or `ab --*-server` start the server inside it"
        )),
        _ => Ok(()),
    }
}

/// A run configuration from `run` flags written as text (a matrix scenario file, `ab`'s
/// common and side flags), parsed and checked by the same clap and resolve code as the
/// command line.
pub fn from_flags(flags: &[String]) -> Result<RunConfig, UsageError> {
    use clap::Parser;
    let argv = ["tcpbench", "run", "--quiet"]
        .into_iter()
        .map(String::from)
        .chain(flags.iter().cloned());
    let cli = super::Cli::try_parse_from(argv).map_err(|e| UsageError(super::one_line(&e)))?;
    let Some(super::Command::Run(run)) = cli.command else {
        unreachable!("`run` was given")
    };
    RunConfig::from_args(&run)
}

impl RunConfig {
    /// The configuration `trace` makes its connections with: `run`'s defaults, one flow, and
    /// the trace's own flags, set as typed values.
    pub fn for_trace(t: &TraceArgs) -> Result<RunConfig, UsageError> {
        use clap::Parser;
        let Some(super::Command::Run(mut a)) = super::Cli::try_parse_from(["tcpbench", "run"])
            .expect("run's defaults parse")
            .command
        else {
            unreachable!("`run` was given")
        };
        a.target = t.target.clone();
        a.ipv6 = t.ipv6;
        a.close = t.close;
        a.linger = t.linger;
        a.payload = t.payload;
        a.requests = t.requests;
        a.conns = Some(u64::from(t.conns));
        a.proto = t.proto.clone();
        a.concurrency = 1;
        a.isolate = t.isolate;
        a.fastopen = t.fastopen;
        if t.target.is_none() {
            a.server.server_fastopen = t.fastopen.then_some(64);
            a.server.server_quickack = t.server_quickack;
        } else if t.server_quickack {
            return usage(
                "--server-quickack configures the embedded server; drop it or drop --target",
            );
        }
        RunConfig::from_args(&a)
    }
}

/// `--engine`: `auto` takes the io_uring engine where the kernel has what it needs and the
/// run's options are ones it drives, else tokio and a note why; `uring` where it cannot
/// run is a usage error.
fn engine(asked: EngineArg, cfg: &RunConfig) -> Result<(Engine, Option<String>), UsageError> {
    use crate::load::uring::{support, unsupported};
    let why = match unsupported(cfg) {
        Some(option) => Err(format!("it does not drive {option} yet")),
        None => support(),
    };
    match (asked, why) {
        (EngineArg::Tokio, _) => Ok((Engine::Tokio, None)),
        // Until the io_uring engine covers every option and has run the whole suite, auto
        // stays on tokio (issue #19 is open); `--engine uring` opts in.
        (EngineArg::Auto, _) => Ok((Engine::Tokio, None)),
        (EngineArg::Uring, Ok(())) => Ok((Engine::Uring, None)),
        (EngineArg::Uring, Err(why)) => usage(format!(
            "--engine uring cannot run: {why}; use --engine tokio (or auto)"
        )),
    }
}
