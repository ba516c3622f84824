//! The echo server, talked to with raw blocking sockets: what a peer sees, byte for byte.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use tcpbench::config::{ServerClose, ServerConfig};
use tcpbench::server::EchoServer;

fn start(cfg: ServerConfig) -> EchoServer {
    EchoServer::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..cfg
    })
    .unwrap()
}

fn connect(server: &EchoServer) -> TcpStream {
    let s = TcpStream::connect(server.local_addr()).unwrap();
    // Bounds every read below: a broken server fails the test instead of hanging it.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_to_end(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).map(|_| v)
}

#[test]
fn wait_policy_echoes_until_fin_then_sends_farewell() {
    let server = start(ServerConfig {
        farewell: 3,
        ..ServerConfig::default()
    });
    let mut s = connect(&server);
    s.write_all(b"hello").unwrap();
    let mut echo = [0u8; 5];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"hello");
    s.write_all(b"again").unwrap();
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"again");
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_to_end(&mut s).unwrap(),
        b"zzz",
        "farewell bytes, then the server's FIN"
    );
    let t = server.stop();
    assert_eq!((t.accepted, t.bytes_in, t.bytes_out), (1, 10, 13));
}

#[test]
fn first_policy_closes_after_the_first_message() {
    let server = start(ServerConfig {
        close: ServerClose::First,
        close_after: Some(6),
        ..ServerConfig::default()
    });
    let mut s = connect(&server);
    s.write_all(b"abc").unwrap();
    s.write_all(b"def").unwrap();
    // The server closes first: the echo, then EOF without our FIN.
    assert_eq!(read_to_end(&mut s).unwrap(), b"abcdef");
    server.stop();
}

#[test]
fn rst_policy_resets_after_the_first_message() {
    let server = start(ServerConfig {
        close: ServerClose::Rst,
        close_after: Some(4),
        ..ServerConfig::default()
    });
    let mut s = connect(&server);
    s.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo).unwrap();
    let mut rest = [0u8; 1];
    let err = s.read(&mut rest).expect_err("an RST, not a FIN");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    server.stop();
}

#[test]
fn idle_connections_are_closed() {
    let server = start(ServerConfig {
        idle_timeout: Some(Duration::from_millis(200)),
        ..ServerConfig::default()
    });
    let mut s = connect(&server);
    assert_eq!(
        read_to_end(&mut s).unwrap(),
        b"",
        "closed by the server while we stayed silent"
    );
    assert_eq!(server.stop().idle_timeouts, 1);
}

#[test]
fn over_long_connections_are_closed() {
    let server = start(ServerConfig {
        max_payload: Some(8),
        ..ServerConfig::default()
    });
    let mut s = connect(&server);
    s.write_all(b"0123456789").unwrap();
    // Closed by the server: EOF (or a reset) instead of waiting for more.
    let _ = read_to_end(&mut s);
    assert_eq!(server.stop().over_limit, 1);
}

#[test]
fn max_conns_holds_further_connections_in_the_queue() {
    let server = start(ServerConfig {
        max_conns: Some(1),
        ..ServerConfig::default()
    });
    let mut first = connect(&server);
    first.write_all(b"1").unwrap();
    let mut b = [0u8; 1];
    first.read_exact(&mut b).unwrap();
    // The second handshake completes in the kernel's queue, but nobody serves it yet.
    let mut second = connect(&server);
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    second.write_all(b"2").unwrap();
    let err = second
        .read_exact(&mut b)
        .expect_err("not served while the first is open");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    second.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"2", "served once the first one closed");
    assert_eq!(server.stop().accepted, 2);
}

#[test]
fn connections_are_steered_to_the_listener_of_their_cpu() {
    let cpus = tcpbench::cpu::allowed();
    let what = format!("CPUs 0 and 1 exactly; this process may use {cpus:?}");
    if !common::require(&what, tcpbench::cpu::steerable(2)) {
        return;
    }
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        reuseport: true,
        ..ServerConfig::default()
    };
    let first = tcpbench::sockopt::listener(&cfg).unwrap();
    let addr = first.local_addr().unwrap().as_socket().unwrap();
    let second = tcpbench::sockopt::listener(&ServerConfig {
        listen: addr,
        ..cfg
    })
    .unwrap();
    tcpbench::sockopt::steer_by_cpu(&first).unwrap();
    let listeners = [first, second];
    std::thread::scope(|s| {
        for cpu in [0usize, 1, 1, 0] {
            // Connect from a thread pinned to `cpu`: on loopback the SYN is processed there.
            let client = s.spawn(move || {
                tcpbench::cpu::pin_current_thread(cpu).unwrap();
                TcpStream::connect(addr).unwrap()
            });
            let _client = client.join().unwrap();
            let (conn, _) = listeners[cpu]
                .accept()
                .expect("queued at the listener of its CPU");
            drop(conn);
            let other = &listeners[1 - cpu];
            let err = other
                .accept()
                .expect_err("the other listener has nothing queued");
            assert_eq!(err.kind(), ErrorKind::WouldBlock);
        }
    });
}

/// SO_LINGER 1 s on a socket whose data the peer never takes: close() blocks for the linger
/// time, and `sockopt::close` does that off the runtime thread, which goes on running.
#[test]
fn lingering_close_blocks_its_thread_not_the_runtime() {
    use std::time::Instant;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&listener)
        .set_recv_buffer_size(4096)
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (elapsed, ticks) = rt.block_on(async {
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_peer, _) = listener.accept().unwrap(); // accepted, never read
        let sock = socket2::SockRef::from(&client);
        sock.set_send_buffer_size(4096).unwrap();
        // Fill the peer's window and our send queue: this data cannot be acknowledged.
        let chunk = [7u8; 4096];
        while client.try_write(&chunk).is_ok() {}
        sock.set_linger(Some(Duration::from_secs(1))).unwrap();
        // Ticks while close blocks, if the runtime thread is free to run it.
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let t = Instant::now();
        let linger = Some(Duration::from_secs(1));
        tcpbench::sockopt::close(client, linger).await.unwrap();
        let elapsed = t.elapsed();
        ticker.abort();
        let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
        (elapsed, ticks)
    });
    assert!(
        elapsed >= Duration::from_millis(900),
        "close returned after {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "close took {elapsed:?}");
    assert!(ticks >= 10, "the runtime kept running while close blocked");
}

/// The scheduling policy of this process's threads named `name`, as the kernel reports it
/// (field 41 of /proc/self/task/TID/stat).
fn policies_of(name: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // After the parenthesised comm, fields run from 3 (state): policy is 41.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        out.push(rest.split(' ').nth(41 - 3).unwrap().parse().unwrap());
    }
    out
}

#[test]
fn batch_workers_run_sched_batch_and_others_keep_the_default() {
    const SCHED_OTHER: i32 = 0;
    const SCHED_BATCH: i32 = 3;
    // Other tests here run servers of one worker at the same time: these look at a worker
    // index only they have (`tcpbench-srv-2`, `-3`).
    let policy = |name: &str| {
        for _ in 0..200 {
            if let [p] = policies_of(name)[..] {
                return Some(p);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    };
    let batch = start(ServerConfig {
        batch: true,
        workers: 3,
        ..Default::default()
    });
    assert_eq!(policy("tcpbench-srv-2"), Some(SCHED_BATCH), "with batch");
    batch.stop();
    let plain = start(ServerConfig {
        workers: 4,
        ..Default::default()
    });
    assert_eq!(
        policy("tcpbench-srv-3"),
        Some(SCHED_OTHER),
        "serve's default"
    );
    plain.stop();
}
