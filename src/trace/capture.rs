//! Capturing one port's TCP segments on the loopback interface (Linux only): an AF_PACKET
//! socket bound to lo, a classic BPF filter attached before it binds, kernel timestamps,
//! headers parsed with etherparse.
//!
//! On lo every segment passes the packet taps twice: once leaving (PACKET_OUTGOING) and once
//! arriving (PACKET_HOST). The filter keeps only the outgoing copy — the instant the sender
//! transmitted it — so each segment is taken once. The filter also keeps only TCP to or from
//! the traced port (IPv4 and IPv6 without extension headers, what loopback TCP sends), so a
//! busy loopback is not copied to user space, and cuts each frame to [`SNAPLEN`] bytes: the
//! payload length is read from the IP header, not from the bytes copied.
//!
//! Timestamps are SO_TIMESTAMPNS (CLOCK_REALTIME, taken when the frame reached the tap) and
//! converted to CLOCK_MONOTONIC batch by batch, with the clocks read as each drain ends, so
//! they line up with the tracepoint's `mono` trace clock even when the wall clock is
//! stepped during the trace ([`super::clock`]).

use std::io;
use std::mem::{size_of, size_of_val};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

use super::TraceError;
use super::build::{RawSegment, flag};
use super::clock::{self, ClockPair};

/// Bytes of each frame copied to user space: Ethernet (14) + IPv4 with options (60) + TCP
/// with options (60), rounded up.
pub const SNAPLEN: u32 = 256;
/// The receive queue: a connection's segments wait here until the trace drains them.
const RCVBUF: usize = 8 << 20;

const PACKET_OUTGOING: u8 = 4;

/// A capture on lo; [`Capture::start`] makes it receive.
pub struct Capture {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// The clocks as the last drain ended (or the capture started).
    clocks: ClockPair,
    /// The batch being drained: each frame's segment and its CLOCK_REALTIME stamp.
    batch: Vec<(RawSegment, i64)>,
    /// Steps of the wall clock seen during the capture, ns.
    steps: Vec<i64>,
}

impl Capture {
    /// The AF_PACKET socket: where permission is checked. It receives nothing until
    /// [`Capture::start`] binds it.
    pub fn open() -> Result<Capture, TraceError> {
        // Protocol 0: no frame is queued before the filter is attached and the bind names
        // ETH_P_ALL.
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => TraceError::NotPermitted(format!(
                    "capturing segments on lo needs an AF_PACKET socket, which needs root or \
                     CAP_NET_RAW ({e}); run as root or `setcap cap_net_raw+ep` the binary"
                )),
                _ => TraceError::Capture(format!("cannot create an AF_PACKET socket: {e}")),
            });
        }
        // SAFETY: socket returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Capture {
            fd,
            buf: vec![0; SNAPLEN as usize + 64],
            clocks: ClockPair::now(),
            batch: Vec::new(),
            steps: Vec::new(),
        })
    }

    /// Attaches the filter for `port`, turns on timestamps and binds to lo.
    pub fn start(&mut self, port: u16) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        let mut prog = filter(port);
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &1i32)?;
        // As root the queue may exceed rmem_max; otherwise take what SO_RCVBUF gives.
        if setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &(RCVBUF as i32)).is_err() {
            let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &(RCVBUF as i32));
        }
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::other("no loopback interface \"lo\" here"));
        }
        // SAFETY: sockaddr_ll is plain data; zero is a valid value for every field.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: a valid fd and a sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        self.clocks = ClockPair::now();
        self.take_drops();
        Ok(())
    }

    /// Appends every segment queued so far to `out`, without waiting.
    pub fn drain(&mut self, out: &mut Vec<RawSegment>) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        loop {
            // SAFETY: sockaddr_ll and msghdr are plain data; zero is valid for both.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut control = [0u64; 16];
            let mut iov = libc::iovec {
                iov_base: self.buf.as_mut_ptr().cast(),
                iov_len: self.buf.len(),
            };
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = size_of_val(&control);
            // SAFETY: every pointer in msg points at a live buffer of the length given.
            let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        self.convert(out);
                        Ok(())
                    }
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            // The filter passes only outgoing frames; a host copy here would be a second
            // sighting of a segment already taken.
            if sll.sll_pkttype != PACKET_OUTGOING {
                continue;
            }
            let Some(real) = timestamp(&msg) else {
                continue;
            };
            if let Some(seg) = parse(&self.buf[..n as usize], 0) {
                self.batch.push((seg, real));
            }
        }
    }

    /// Puts the drained batch on CLOCK_MONOTONIC and appends it to `out`.
    fn convert(&mut self, out: &mut Vec<RawSegment>) {
        let now = ClockPair::now();
        if let Some(d) = clock::step(self.clocks, now) {
            self.steps.push(d);
        }
        let real: Vec<i64> = self.batch.iter().map(|(_, r)| *r).collect();
        let mono = clock::to_mono(&real, self.clocks, now);
        out.extend(self.batch.drain(..).zip(mono).map(|((mut seg, _), m)| {
            seg.mono_ns = m;
            seg
        }));
        self.clocks = now;
    }

    /// The wall clock's steps during the capture so far, ns.
    pub fn clock_steps(&self) -> &[i64] {
        &self.steps
    }

    /// Frames the kernel dropped from this socket's queue since the last call.
    pub fn take_drops(&mut self) -> u32 {
        let mut stats = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = size_of::<libc::tpacket_stats>() as u32;
        // SAFETY: a valid fd and a tpacket_stats of the length given; reading resets them.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut stats as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if r == 0 { stats.tp_drops } else { 0 }
    }
}

fn setsockopt<T>(fd: i32, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: a valid fd and a value of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The SCM_TIMESTAMPNS of a received frame, ns since the epoch.
fn timestamp(msg: &libc::msghdr) -> Option<i64> {
    // SAFETY: msg was filled by recvmsg; the CMSG macros walk its control buffer within
    // msg_controllen, and the timespec is read unaligned from the message's data.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// One TCP segment from an Ethernet frame (possibly cut to [`SNAPLEN`]); `None` for
/// anything else. The payload length comes from the IP header's length field.
pub fn parse(frame: &[u8], mono_ns: i64) -> Option<RawSegment> {
    let p = LaxSlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst, ip_end) = match p.net.as_ref()? {
        LaxNetSlice::Ipv4(v) => {
            let h = v.header();
            let start = h.slice().as_ptr() as usize;
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                start + usize::from(h.total_len()),
            )
        }
        LaxNetSlice::Ipv6(v) => {
            let h = v.header();
            let start = h.slice().as_ptr() as usize;
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                start + 40 + usize::from(h.payload_length()),
            )
        }
        _ => return None,
    };
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        return None;
    };
    let header = tcp.header_slice();
    let payload_start = header.as_ptr() as usize + header.len();
    let bits = [
        (tcp.fin(), flag::FIN),
        (tcp.syn(), flag::SYN),
        (tcp.rst(), flag::RST),
        (tcp.psh(), flag::PSH),
        (tcp.ack(), flag::ACK),
        (tcp.urg(), flag::URG),
        (tcp.ece(), flag::ECE),
        (tcp.cwr(), flag::CWR),
    ];
    Some(RawSegment {
        mono_ns,
        src: SocketAddr::new(src.to_canonical(), tcp.source_port()),
        dst: SocketAddr::new(dst.to_canonical(), tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: bits.iter().filter(|(on, _)| *on).fold(0, |f, (_, b)| f | b),
        len: ip_end.saturating_sub(payload_start) as u32,
        win: tcp.window_size(),
    })
}

/// Classic BPF opcodes (linux/bpf_common.h, linux/filter.h).
mod op {
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MSH: u16 = 0xa0;
    pub const JEQ: u16 = 0x10;
    pub const JSET: u16 = 0x40;
    /// SKF_AD_OFF + SKF_AD_PKTTYPE: the ancillary load of the frame's packet type.
    pub const PKTTYPE: u32 = (-0x1000i32 + 4) as u32;
}

/// Where a conditional jump goes.
#[derive(Copy, Clone, PartialEq)]
enum To {
    Next,
    Label(&'static str),
}

/// The filter: outgoing frames of TCP to or from `port`, over IPv4 (not a later fragment)
/// or IPv6 (TCP right after the fixed header), cut to [`SNAPLEN`].
pub fn filter(port: u16) -> Vec<libc::sock_filter> {
    use To::{Label as L, Next};
    use op::*;
    let p = u32::from(port);
    // (label, code, k, jump if true, jump if false)
    let prog: [(Option<&str>, u16, u32, To, To); 22] = [
        (None, LD | W | ABS, PKTTYPE, Next, Next),
        (None, JMP | JEQ, u32::from(PACKET_OUTGOING), Next, L("drop")),
        (None, LD | H | ABS, 12, Next, Next), // ethertype
        (None, JMP | JEQ, 0x0800, Next, L("ipv6")),
        (None, LD | B | ABS, 23, Next, Next), // IPv4 protocol
        (None, JMP | JEQ, 6, Next, L("drop")),
        (None, LD | H | ABS, 20, Next, Next), // flags + fragment offset
        (None, JMP | JSET, 0x1fff, L("drop"), Next),
        (None, LDX | B | MSH, 14, Next, Next), // X = IPv4 header length
        (None, LD | H | IND, 14, Next, Next),  // source port
        (None, JMP | JEQ, p, L("accept"), Next),
        (None, LD | H | IND, 16, Next, Next), // destination port
        (None, JMP | JEQ, p, L("accept"), L("drop")),
        (Some("ipv6"), JMP | JEQ, 0x86dd, Next, L("drop")),
        (None, LD | B | ABS, 20, Next, Next), // IPv6 next header
        (None, JMP | JEQ, 6, Next, L("drop")),
        (None, LD | H | ABS, 54, Next, Next),
        (None, JMP | JEQ, p, L("accept"), Next),
        (None, LD | H | ABS, 56, Next, Next),
        (None, JMP | JEQ, p, L("accept"), L("drop")),
        (Some("accept"), RET, SNAPLEN, Next, Next),
        (Some("drop"), RET, 0, Next, Next),
    ];
    let at = |name: &str| {
        prog.iter()
            .position(|i| i.0 == Some(name))
            .expect("a defined label")
    };
    prog.iter()
        .enumerate()
        .map(|(pc, &(_, code, k, jt, jf))| {
            let off = |to: To| match to {
                Next => 0,
                L(name) => (at(name) - pc - 1) as u8,
            };
            libc::sock_filter {
                code,
                jt: off(jt),
                jf: off(jf),
                k,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const PACKET_HOST: u8 = 0;

    /// Runs the instructions [`filter`] uses, as the kernel would on `frame`.
    fn run_filter(prog: &[libc::sock_filter], frame: &[u8], pkttype: u8) -> u32 {
        use op::*;
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |i: usize| frame.get(i).copied().map(u32::from);
        let half = |i: usize| Some(byte(i)? << 8 | byte(i + 1)?);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                c if c == LD | W | ABS && i.k == PKTTYPE => a = u32::from(pkttype),
                c if c == LD | H | ABS => match half(i.k as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | B | ABS => match byte(i.k as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LD | H | IND => match half((x + i.k) as usize) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == LDX | B | MSH => match byte(i.k as usize) {
                    Some(v) => x = 4 * (v & 0xf),
                    None => return 0,
                },
                c if c == JMP | JEQ || c == JMP | JSET => {
                    let yes = if c == JMP | JEQ {
                        a == i.k
                    } else {
                        a & i.k != 0
                    };
                    pc += usize::from(if yes { i.jt } else { i.jf });
                }
                c if c == RET => return i.k,
                c => panic!("opcode {c:#x} not modelled"),
            }
        }
    }

    fn v4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64)
            .tcp(sport, dport, 4_000_000_000, 512)
            .syn()
            .ack(17);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    fn v6(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut one = [0u8; 16];
        one[15] = 1;
        let b = PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv6(one, one, 64)
            .tcp(sport, dport, 5, 512)
            .fin()
            .ack(9);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn filter_keeps_the_port_outgoing_once() {
        let prog = filter(8080);
        for frame in [
            v4(50000, 8080, b""),
            v4(8080, 50000, b"x"),
            v6(8080, 41000, b""),
        ] {
            assert_eq!(run_filter(&prog, &frame, PACKET_OUTGOING), SNAPLEN);
            assert_eq!(
                run_filter(&prog, &frame, PACKET_HOST),
                0,
                "the second sighting"
            );
        }
        for frame in [v4(50000, 8081, b""), v6(41000, 443, b"")] {
            assert_eq!(
                run_filter(&prog, &frame, PACKET_OUTGOING),
                0,
                "another port"
            );
        }
        let mut udp = Vec::new();
        PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .udp(8080, 8080)
            .write(&mut udp, b"")
            .unwrap();
        assert_eq!(run_filter(&prog, &udp, PACKET_OUTGOING), 0, "not TCP");
    }

    #[test]
    fn parses_v4_and_v6_even_when_cut_short() {
        let frame = v4(50000, 8080, &[7; 1000]);
        let s = parse(&frame[..SNAPLEN as usize], 42).expect("a TCP segment");
        assert_eq!(s.src, "127.0.0.1:50000".parse().unwrap());
        assert_eq!(s.dst, "127.0.0.2:8080".parse().unwrap());
        assert_eq!((s.seq, s.ack, s.len, s.win), (4_000_000_000, 17, 1000, 512));
        assert_eq!(s.flags, flag::SYN | flag::ACK);
        assert_eq!(s.mono_ns, 42);

        let s = parse(&v6(8080, 41000, b"bye"), 0).expect("a TCP segment");
        assert_eq!(s.src, "[::1]:8080".parse().unwrap());
        assert_eq!((s.len, s.flags), (3, flag::FIN | flag::ACK));
        assert!(parse(&[0u8; 10], 0).is_none());
    }
}
