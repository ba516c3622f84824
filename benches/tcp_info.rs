//! What the one getsockopt(TCP_INFO) per connection costs: the call alone on an
//! established loopback connection. A whole `--close rst --requests 0` cycle with it and
//! without it (`--no-tcp-info`) is in `cargo bench --bench cycle` (`rst_connect_tcp_info`,
//! `rst_connect_no_tcp_info`), beside the other cycles.
//!
//!     cargo bench --bench tcp_info

use criterion::{Criterion, criterion_group, criterion_main};
use tcpbench::sockopt;

fn tcp_info(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp_info");

    // The call alone, on one established connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _server = listener.accept().unwrap();
    group.bench_function("getsockopt", |b| {
        b.iter(|| sockopt::handshake_info(&client).expect("TCP_INFO"))
    });

    group.finish();
}

criterion_group!(benches, tcp_info);
criterion_main!(benches);
