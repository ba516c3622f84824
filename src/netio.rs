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

// recvfrom/sendto through syscall(2): glibc's recv and send are cancellation points and
// wrap every call in updates of the thread's cancellation state that a non-blocking call
// never needs.

fn raw_recv(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let (fd, ptr, len) = (stream.as_raw_fd(), buf.as_mut_ptr(), buf.len());
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: a valid fd, a writable buffer of `len` bytes, no source address wanted.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            ptr,
            len,
            libc::MSG_DONTWAIT,
            null,
            null,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn raw_send(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    let (fd, ptr, len) = (stream.as_raw_fd(), buf.as_ptr(), buf.len());
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    let null = std::ptr::null::<libc::c_void>();
    // SAFETY: a valid fd, a readable buffer of `len` bytes, no destination (connected).
    let n = unsafe { libc::syscall(libc::SYS_sendto, fd, ptr, len, flags, null, 0) };
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

/// Writes all of `buf`, waiting for readiness only when the send buffer is full; `sent`
/// counts what went out, also when a later write fails.
pub async fn send_all(stream: &TcpStream, mut buf: &[u8], sent: &mut u64) -> io::Result<()> {
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
        *sent += n as u64;
        buf = &buf[n..];
    }
    Ok(())
}

/// Bytes received and not yet read (FIONREAD); a FIN alone counts none.
pub fn queued(stream: &impl AsRawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: a valid fd, and FIONREAD writes one int through the pointer.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Whether a socket whose non-blocking connect() said EINPROGRESS is established already
/// (on loopback the handshake usually completes inside the call): one getpeername().
pub fn connected(sock: &socket2::Socket) -> bool {
    sock.peer_addr().is_ok()
}

/// What a socket holds unread, as one recv(MSG_PEEK) sees it without waiting.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Nothing: no byte and no FIN.
    Nothing,
    /// Bytes (and perhaps a FIN after them).
    Data,
    /// The peer's FIN, with no byte before it.
    Fin,
}

/// Looks at the receive queue without taking from it: one recvfrom(MSG_PEEK | MSG_DONTWAIT).
/// A pending error (ECONNRESET) is returned, and so taken from the socket.
pub fn pending(stream: &impl AsRawFd) -> io::Result<Pending> {
    let mut byte = 0u8;
    let null = std::ptr::null_mut::<libc::c_void>();
    let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT;
    let ptr = (&raw mut byte).cast::<libc::c_void>();
    // SAFETY: a valid fd, a writable buffer of 1 byte, no source address wanted.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            stream.as_raw_fd(),
            ptr,
            1usize,
            flags,
            null,
            null,
        )
    };
    match n {
        0 => Ok(Pending::Fin),
        1.. => Ok(Pending::Data),
        _ => match io::Error::last_os_error() {
            e if would_block(&e) => Ok(Pending::Nothing),
            e => Err(e),
        },
    }
}
