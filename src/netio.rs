//! Socket I/O that asks the kernel first and waits for readiness only when it must.
//!
//! tokio learns that a socket is readable or writable from epoll events; a freshly registered
//! socket has no readiness yet, so tokio's own read and write would wait for one trip through
//! epoll_wait even when the kernel could serve them at once. On loopback that is the common
//! case: the handshake completes inside connect(), and the request is already queued when the
//! server accepts. [`send_all`] and [`recv_eager`] try the syscall first; [`recv`] waits for
//! readiness first, for when data cannot be there yet (an echo right after the request).
//! Each costs one syscall when the kernel is ready, and never more than tokio's own read
//! and write when it is not.

use std::io;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::TcpStream;

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn raw_recv(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: a valid fd and a writable buffer of the given length.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn raw_send(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: a valid fd and a readable buffer of the given length.
    let n = unsafe { libc::send(stream.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reads what is there, waiting for readiness first: for data that takes a round trip.
pub async fn recv(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    stream
        .async_io(Interest::READABLE, || raw_recv(stream, buf))
        .await
}

/// Reads at once if the kernel has data; waits for readiness only if it has none.
pub async fn recv_eager(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    match raw_recv(stream, buf) {
        Err(e) if would_block(&e) => recv(stream, buf).await,
        r => r,
    }
}

/// Writes all of `buf`, waiting for readiness only when the send buffer is full.
pub async fn send_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = match raw_send(stream, buf) {
            Err(e) if would_block(&e) => {
                stream
                    .async_io(Interest::WRITABLE, || raw_send(stream, buf))
                    .await?
            }
            r => r?,
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Whether a socket whose non-blocking connect() said EINPROGRESS is established already
/// (on loopback the handshake usually completes inside the call): one getpeername().
pub fn connected(sock: &socket2::Socket) -> bool {
    sock.peer_addr().is_ok()
}

/// A listening socket watched by the runtime; see [`accept`].
pub type Listener = tokio::io::unix::AsyncFd<std::net::TcpListener>;

/// Registers a non-blocking listening socket with the current runtime.
pub fn listener(std: std::net::TcpListener) -> io::Result<Listener> {
    // SAFETY: the AsyncFd owns the listener, so its descriptor stays open and the same for
    // the AsyncFd's whole life.
    unsafe { Listener::register_with_interest(std, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// Accepts the next connection, asking poll() before accept4().
///
/// An accept4() that finds the queue empty still takes the listener's lock, and a SYN that
/// arrives meanwhile is deferred to the lock's release on this thread, which delays the
/// client's handshake by a cross-CPU round trip. poll() reads the queue without the lock.
pub async fn accept(listener: &Listener) -> io::Result<TcpStream> {
    loop {
        let mut ready = listener.readable().await?;
        if let Ok(result) = ready.try_io(|l| accept_now(l.as_raw_fd())) {
            return TcpStream::from_std(result?);
        }
    }
}

fn accept_now(fd: std::os::fd::RawFd) -> io::Result<std::net::TcpStream> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    if unsafe { libc::poll(&mut pfd, 1, 0) } == 0 {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: a listening fd; the peer's address is not asked for.
    let conn = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), flags) };
    if conn < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    Ok(unsafe { <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(conn) })
}
