//! One full connection cycle on loopback (socket, handshake, one 64-byte echo, close) per
//! close mode, against the embedded echo server on its own thread; and one HTTP GET and one
//! RESP PING cycle against the embedded responders; and an RST connect-close cycle with and
//! without the one getsockopt(TCP_INFO) per connection (`--no-tcp-info`).
//!
//!     cargo bench --bench cycle

use criterion::{Criterion, criterion_group, criterion_main};
use tcpbench::cli::{Cli, Command};
use tcpbench::config::{RunConfig, Target};
use tcpbench::load::conn::{self, Scratch};
use tcpbench::load::proto::Protocol;
use tcpbench::server::EchoServer;

use clap::Parser;

fn config(flags: &[&str]) -> RunConfig {
    let argv = ["tcpbench", "run"].iter().chain(flags);
    let Some(Command::Run(args)) = Cli::parse_from(argv).command else {
        unreachable!()
    };
    RunConfig::from_args(&args).expect("valid flags")
}

fn cycles(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("cycle");
    for (name, flags) in [
        ("client_close", &["--close", "client"][..]),
        ("client_nowait_close", &["--close", "client-nowait"][..]),
        ("server_close", &["--close", "server"][..]),
        ("rst_close", &["--close", "rst"][..]),
        ("connect_close", &["--requests", "0"][..]),
        ("http_get", &["--protocol", "http"][..]),
        ("resp_ping", &["--protocol", "resp"][..]),
        // What the one getsockopt(TCP_INFO) per connection adds to a whole cycle.
        (
            "rst_connect_tcp_info",
            &["--close", "rst", "--requests", "0"][..],
        ),
        (
            "rst_connect_no_tcp_info",
            &["--close", "rst", "--requests", "0", "--no-tcp-info"][..],
        ),
    ] {
        let cfg = config(flags);
        let Target::Embedded(server_cfg) = &cfg.target else {
            unreachable!()
        };
        let server = EchoServer::start(server_cfg.clone()).expect("server starts");
        let target = server.local_addr();
        let protocol = Protocol::from_config(&cfg.protocol, cfg.payload, target).unwrap();
        let mut scratch = Scratch::new(&cfg, protocol.into());
        let (_keep, mut stop) = tokio::sync::watch::channel(false);
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(conn::run(&cfg, target, None, None, &mut stop, &mut scratch))
                    .expect("cycle succeeds")
            })
        });
        server.stop();
    }
    group.finish();
}

criterion_group!(benches, cycles);
criterion_main!(benches);
