//! What the one getsockopt(TCP_INFO) per connection costs: the call alone on an
//! established loopback connection, and a whole `--close rst --requests 0` cycle with it and
//! without it (`--no-tcp-info`), against the embedded server on its own thread.
//!
//!     cargo bench --bench tcp_info

use criterion::{Criterion, criterion_group, criterion_main};
use tcpbench::cli::{Cli, Command};
use tcpbench::config::{RunConfig, Target};
use tcpbench::load::conn::{self, Scratch};
use tcpbench::load::proto::Protocol;
use tcpbench::server::EchoServer;
use tcpbench::sockopt;

use clap::Parser;

fn config(flags: &[&str]) -> RunConfig {
    let argv = ["tcpbench", "run"].iter().chain(flags);
    let Some(Command::Run(args)) = Cli::parse_from(argv).command else {
        unreachable!()
    };
    RunConfig::from_args(&args).expect("valid flags")
}

fn tcp_info(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_info");

    // The call alone, on one established connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _server = listener.accept().unwrap();
    group.bench_function("getsockopt", |b| {
        b.iter(|| sockopt::handshake_info(&client).expect("TCP_INFO"))
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, flags) in [
        ("cycle_with", &["--close", "rst", "--requests", "0"][..]),
        (
            "cycle_without",
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

criterion_group!(benches, tcp_info);
criterion_main!(benches);
