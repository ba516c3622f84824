//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod servers;

use std::sync::{Mutex, MutexGuard};

use clap::Parser;
use tcpbench::cli::{Cli, Command};
use tcpbench::config::RunConfig;

/// Load tests take this lock so only one churns connections at a time on the 2 cores.
pub fn heavy() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A run configuration from command-line flags, as the binary would build it.
pub fn config(flags: &[&str]) -> RunConfig {
    let argv = ["tcpbench", "run", "--quiet"].iter().chain(flags);
    let Some(Command::Run(args)) = Cli::try_parse_from(argv).expect("flags parse").command else {
        unreachable!("run was given")
    };
    RunConfig::from_args(&args).expect("flags are valid")
}

/// A loopback port that refuses connections: bound, never listening, so the kernel answers
/// SYNs with RST and nobody else can take the port while the socket is held.
pub fn refusing_port() -> (socket2::Socket, std::net::SocketAddr) {
    let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    holder
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = holder.local_addr().unwrap().as_socket().unwrap();
    (holder, addr)
}

/// The tcpbench binary under test.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_tcpbench"))
}

/// A TCP socket as the kernel lists it in /proc/net/tcp (IPv4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelSocket {
    pub local_ip: std::net::Ipv4Addr,
    pub remote_ip: std::net::Ipv4Addr,
    pub local_port: u16,
    pub remote_port: u16,
    /// The kernel's state number: 1 ESTABLISHED, 6 TIME_WAIT, 10 LISTEN, …
    pub state: u8,
}

pub const ESTABLISHED: u8 = 1;
pub const TIME_WAIT: u8 = 6;

/// Every IPv4 TCP socket of this network namespace, read from /proc/net/tcp.
pub fn kernel_sockets() -> Vec<KernelSocket> {
    let text = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp is readable");
    let port = |field: &str| u16::from_str_radix(field.rsplit(':').next().unwrap(), 16).unwrap();
    // The address is the network-order word printed as a host-order number.
    let ip = |field: &str| {
        let word = u32::from_str_radix(field.split(':').next().unwrap(), 16).unwrap();
        std::net::Ipv4Addr::from(word.to_ne_bytes())
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 3).then(|| KernelSocket {
                local_ip: ip(f[1]),
                remote_ip: ip(f[2]),
                local_port: port(f[1]),
                remote_port: port(f[2]),
                state: u8::from_str_radix(f[3], 16).unwrap(),
            })
        })
        .collect()
}
