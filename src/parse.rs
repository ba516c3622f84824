//! Parsers for the values people type: durations, address lists and ranges, targets.
//!
//! Each returns a message that says what was expected, so clap can name the flag beside it.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Most addresses one `--bind` range may expand to.
const MAX_RANGE: u128 = 65_536;

/// Longest duration any flag takes: far past any run, short of overflowing a clock.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// `500ms`, `4s`, `2m`, `1h30m`. A bare number is refused: its unit would be a guess.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "'{s}' has no unit; write it with one, e.g. {s}s or {s}ms"
        ));
    }
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}; write a duration like 500ms, 4s or 2m"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "'{s}' is longer than a year; give a shorter duration"
        ));
    }
    Ok(d)
}

/// A wall-clock instant: RFC 3339 (`2026-11-25T04:00:00Z`) or `+D` from now (`+5s`).
pub fn instant(s: &str) -> Result<std::time::SystemTime, String> {
    let s = s.trim();
    if let Some(rel) = s.strip_prefix('+') {
        let d = duration(rel)?;
        return Ok(std::time::SystemTime::now() + d);
    }
    humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!("'{s}' is not a time ({e}); write it as 2026-11-25T04:00:00Z (UTC) or +5s from now")
    })
}

/// `--max-errors`: a count of failed connections (`50`) or a share of them (`5%`).
pub fn error_limit(s: &str) -> Result<crate::config::ErrorLimit, String> {
    use crate::config::ErrorLimit;
    let s = s.trim();
    if let Some(pct) = s.strip_suffix('%') {
        return match pct.trim().parse::<f64>() {
            Ok(p) if p > 0.0 && p <= 100.0 => Ok(ErrorLimit::Ratio(p / 100.0)),
            _ => Err(format!("'{s}' is not a share; write one from 0.1% to 100%")),
        };
    }
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(ErrorLimit::Count(n)),
        _ => Err(format!(
            "'{s}' is neither a count of failures (50) nor a share of them (5%)"
        )),
    }
}

/// A number as people type it: `10000`, `10k`, `2.5M`, `1G` (k = 1,000, M = 1,000,000,
/// G = 10^9; `_` and `,` as digit separators). Not negative; the result must be whole.
fn scaled(s: &str) -> Option<f64> {
    let t: String = s
        .trim()
        .chars()
        .filter(|c| *c != '_' && *c != ',')
        .collect();
    let (num, mult) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1e3),
        (i, 'M') => (&t[..i], 1e6),
        (i, 'G' | 'g') => (&t[..i], 1e9),
        _ => (&t[..], 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * mult)
}

/// A whole count: `--conns 10k`, `--concurrency 1k`.
pub fn count(s: &str) -> Result<u64, String> {
    match scaled(s) {
        Some(v) if v.fract() == 0.0 && v <= u64::MAX as f64 => Ok(v as u64),
        _ => Err(format!(
            "'{s}' is not a count; write e.g. 10000, 10k or 1.5M"
        )),
    }
}

/// A count that fits a `usize`: `--concurrency 1k`.
pub fn count_usize(s: &str) -> Result<usize, String> {
    count(s).and_then(|n| usize::try_from(n).map_err(|_| format!("'{s}' is too large")))
}

/// A rate per second: `--rate 10k`, `--rate 2.5k`, `--rate 0.5`.
pub fn rate(s: &str) -> Result<f64, String> {
    scaled(s)
        .ok_or_else(|| format!("'{s}' is not a rate; write e.g. 5000, 10k or 0.5 (per second)"))
}

/// A size in bytes: `64`, `1KiB`, `1MiB`, `4k` (k = 1,000; KiB = 1,024).
pub fn size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let bad = || format!("'{s}' is not a size; write e.g. 64, 1KiB, 1MiB or 4k (bytes)");
    let (num, mult) = [
        ("KiB", 1u64 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((t, 1));
    let v = scaled(num).ok_or_else(bad)? * mult as f64;
    if v.fract() != 0.0 || v > usize::MAX as f64 {
        return Err(bad());
    }
    Ok(v as usize)
}

/// A count (`1000`) or a duration (`2s`), as `--warmup` takes.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum CountOrDuration {
    Count(u64),
    Duration(Duration),
}

pub fn count_or_duration(s: &str) -> Result<CountOrDuration, String> {
    match count(s) {
        Ok(n) => Ok(CountOrDuration::Count(n)),
        Err(_) => duration(s)
            .map(CountOrDuration::Duration)
            .map_err(|_| format!("'{s}' is neither a count (1000) nor a duration (2s)")),
    }
}

/// Addresses from one `--bind` value (a newtype, so clap keeps the value whole).
#[derive(Clone, Debug, PartialEq)]
pub struct IpList(pub Vec<IpAddr>);

/// A list of addresses, inclusive ranges and prefixes (every address in it):
/// `127.0.0.2,127.0.0.5-127.0.0.9`, `::1`, `fd00::1-fd00::4`, `fd00::4/126`.
pub fn ip_list(s: &str) -> Result<IpList, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!(
                "empty item in '{s}'; separate addresses with single commas"
            ));
        }
        match (part.split_once('-'), part.split_once('/')) {
            (Some((a, b)), _) => out.extend(ip_range(ip(a.trim())?, ip(b.trim())?)?),
            (None, Some((a, len))) => out.extend(prefix(ip(a.trim())?, len.trim())?),
            (None, None) => out.push(ip(part)?),
        }
    }
    Ok(IpList(out))
}

fn ip(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not an IP address (e.g. 127.0.0.2 or ::1)"))
}

/// Every address of `a/len` (from its first address, whatever host bits `a` has).
fn prefix(a: IpAddr, len: &str) -> Result<Vec<IpAddr>, String> {
    let bits = if a.is_ipv4() { 32 } else { 128 };
    let len: u32 = len
        .parse()
        .ok()
        .filter(|l| *l <= bits)
        .ok_or_else(|| format!("'{a}/{len}' has no prefix length 0-{bits}"))?;
    let host = bits - len;
    if host >= 64 || (1u128 << host) > MAX_RANGE {
        return Err(format!("'{a}/{len}' has more than {MAX_RANGE} addresses"));
    }
    let (n, last) = match a {
        IpAddr::V4(v) => (u32::from(v) as u128, (1u128 << host) - 1),
        IpAddr::V6(v) => (u128::from(v), (1u128 << host) - 1),
    };
    let lo = n & !last;
    let at = |n: u128| match a {
        IpAddr::V4(_) => IpAddr::from((n as u32).to_be_bytes()),
        IpAddr::V6(_) => IpAddr::from(n.to_be_bytes()),
    };
    ip_range(at(lo), at(lo | last))
}

fn ip_range(a: IpAddr, b: IpAddr) -> Result<Vec<IpAddr>, String> {
    let (lo, hi, v4) = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, true),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), false),
        _ => return Err(format!("range {a}-{b} mixes IPv4 and IPv6")),
    };
    if hi < lo {
        return Err(format!(
            "range {a}-{b} runs backwards; write the lower address first"
        ));
    }
    if hi - lo >= MAX_RANGE {
        return Err(format!("range {a}-{b} has more than {MAX_RANGE} addresses"));
    }
    Ok((lo..=hi)
        .map(|n| match v4 {
            true => IpAddr::from((n as u32).to_be_bytes()),
            false => IpAddr::from(n.to_be_bytes()),
        })
        .collect())
}

/// `LO-HI`, an inclusive range of ports, LO ≥ 1.
pub fn port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("'{s}' is not a port range; write LO-HI, e.g. 2000-31999");
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let (lo, hi): (u16, u16) = (
        lo.trim().parse().map_err(|_| bad())?,
        hi.trim().parse().map_err(|_| bad())?,
    );
    if lo == 0 || hi < lo {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// `net.x.y=value`: a network sysctl (the only kind a network namespace owns).
pub fn sysctl(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))?;
    let (name, value) = (name.trim(), value.trim());
    let well_formed = name
        .split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if !name.starts_with("net.") || !well_formed {
        return Err(format!(
            "'{name}' is not a network sysctl (net.…); only those belong to the run's namespace"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `HOST:PORT`, resolved once; the first address wins.
pub fn target(s: &str) -> Result<SocketAddr, String> {
    target_name(s).map(|t| t.first())
}

/// `HOST:PORT` for `--target`: every address it resolves to, in the resolver's order, each
/// once (a run probes them and loads the first that answers).
pub fn target_name(s: &str) -> Result<crate::config::TargetName, String> {
    let named = |resolved| crate::config::TargetName {
        name: s.to_string(),
        resolved,
    };
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(named(vec![addr]));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{s}' has no host; write HOST:PORT, e.g. 127.0.0.1:{s}"
        ));
    }
    if !s.contains(':') {
        return Err(format!(
            "'{s}' has no port; write HOST:PORT, e.g. 127.0.0.1:8888"
        ));
    }
    let mut resolved: Vec<SocketAddr> = Vec::new();
    for addr in s
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{s}': {e}"))?
    {
        if !resolved.contains(&addr) {
            resolved.push(addr);
        }
    }
    if resolved.is_empty() {
        return Err(format!("'{s}' resolves to no address"));
    }
    Ok(named(resolved))
}

/// `ADDR:PORT` for `--listen`; a bare port means 127.0.0.1.
pub fn listen(s: &str) -> Result<SocketAddr, String> {
    match s.parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        Err(_) => target(s),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_as_people_type_them() {
        use super::{count, rate, size};
        assert_eq!(count("10000"), Ok(10_000));
        assert_eq!(count("10k"), Ok(10_000));
        assert_eq!(count("1.5M"), Ok(1_500_000));
        assert_eq!(count("20_000"), Ok(20_000));
        assert!(count("1.5").unwrap_err().contains("e.g. 10000, 10k"));
        assert!(count("-3").is_err() && count("k").is_err() && count("").is_err());
        assert_eq!(rate("10k"), Ok(10_000.0));
        assert_eq!(rate("0.5"), Ok(0.5));
        assert!(rate("inf").is_err() && rate("NaN").is_err());
        assert_eq!(size("64"), Ok(64));
        assert_eq!(size("1KiB"), Ok(1024));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("4k"), Ok(4000));
        assert_eq!(size("10B"), Ok(10));
        assert!(size("1.5B").unwrap_err().contains("1KiB"));
    }

    use super::*;

    #[test]
    fn error_limits_are_counts_or_shares() {
        use crate::config::ErrorLimit;
        assert_eq!(error_limit("50"), Ok(ErrorLimit::Count(50)));
        assert_eq!(error_limit("5%"), Ok(ErrorLimit::Ratio(0.05)));
        for bad in ["0", "0%", "101%", "x", "-1", "5 %%"] {
            assert!(error_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants_are_rfc3339_or_from_now() {
        use std::time::{Duration, SystemTime};
        let t = instant("2026-11-25T04:00:00Z").unwrap();
        assert_eq!(
            humantime::format_rfc3339(t).to_string(),
            "2026-11-25T04:00:00Z"
        );
        let soon = instant("+5s").unwrap();
        let ahead = soon.duration_since(SystemTime::now()).unwrap();
        assert!(ahead > Duration::from_secs(4) && ahead <= Duration::from_secs(5));
        assert!(
            instant("tomorrow")
                .unwrap_err()
                .contains("2026-11-25T04:00:00Z")
        );
        assert!(instant("+5").unwrap_err().contains("no unit"));
    }

    #[test]
    fn durations() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("4s"), Ok(Duration::from_secs(4)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert!(duration("10").unwrap_err().contains("no unit"));
        assert!(duration("fast").is_err());
        assert!(duration("400000000000y").is_err());
        assert!(
            duration("2years")
                .unwrap_err()
                .contains("longer than a year")
        );
        assert!(duration("400000000000y").is_err());
        assert!(
            duration("2years")
                .unwrap_err()
                .contains("longer than a year")
        );
    }

    #[test]
    fn warmup_forms() {
        assert_eq!(count_or_duration("1000"), Ok(CountOrDuration::Count(1000)));
        assert_eq!(
            count_or_duration("2s"),
            Ok(CountOrDuration::Duration(Duration::from_secs(2)))
        );
        assert!(count_or_duration("x").is_err());
    }

    #[test]
    fn ip_lists_and_ranges() {
        let v = ip_list("127.0.0.2-127.0.0.4,127.0.0.9").unwrap().0;
        let want: Vec<IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(v, want);
        assert_eq!(ip_list("::1-::2").unwrap().0.len(), 2);
        assert_eq!(ip_list("127.0.0.255-127.0.1.0").unwrap().0.len(), 2);
        assert!(
            ip_list("127.0.0.9-127.0.0.2")
                .unwrap_err()
                .contains("backwards")
        );
        assert!(ip_list("127.0.0.1-::1").unwrap_err().contains("mixes"));
        assert!(
            ip_list("10.0.0.0-10.255.255.255")
                .unwrap_err()
                .contains("more than")
        );
        assert!(ip_list("127.0.0.1,,127.0.0.2").is_err());
        assert!(ip_list("localhost").is_err());
    }

    #[test]
    fn sysctls() {
        assert_eq!(
            sysctl("net.ipv4.tcp_tw_reuse=0"),
            Ok(("net.ipv4.tcp_tw_reuse".into(), "0".into()))
        );
        assert_eq!(
            sysctl("net.ipv4.ip_local_port_range=40000 41999")
                .unwrap()
                .1,
            "40000 41999"
        );
        assert!(sysctl("kernel.pid_max=5").is_err());
        assert!(sysctl("net.ipv4/../x=1").is_err());
        assert!(sysctl("net.ipv4.tcp_tw_reuse").is_err());
    }

    #[test]
    fn prefixes() {
        let v6 =
            |s: &str| ip_list(s).map(|l| l.0.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        assert_eq!(
            v6("fd00::4/126").unwrap(),
            ["fd00::4", "fd00::5", "fd00::6", "fd00::7"]
        );
        assert_eq!(v6("fd00::6/126").unwrap().len(), 4, "host bits are dropped");
        assert_eq!(v6("127.0.0.8/31").unwrap(), ["127.0.0.8", "127.0.0.9"]);
        assert_eq!(v6("::1/128").unwrap(), ["::1"]);
        assert!(v6("fd00::/64").unwrap_err().contains("more than"));
        assert!(v6("fd00::/129").unwrap_err().contains("prefix length"));
        assert!(v6("10.0.0.0/x").is_err());
    }

    #[test]
    fn port_ranges() {
        assert_eq!(port_range("2000-31999"), Ok((2000, 31999)));
        assert!(port_range("0-10").is_err());
        assert!(port_range("10-5").is_err());
        assert!(port_range("5").is_err());
    }

    #[test]
    fn targets() {
        assert_eq!(target("127.0.0.1:80").unwrap().port(), 80);
        assert_eq!(target("[::1]:81").unwrap().port(), 81);
        assert!(target("localhost:82").unwrap().ip().is_loopback());
        let t = target_name("localhost:82").unwrap();
        assert!(t.is_name() && !t.resolved.is_empty());
        assert!(
            t.resolved
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 82)
        );
        let t = target_name("[::1]:83").unwrap();
        assert!(!t.is_name() && t.resolved == ["[::1]:83".parse().unwrap()]);
        assert!(target("127.0.0.1").unwrap_err().contains("no port"));
        assert_eq!(
            listen("9000").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 9000))
        );
    }
}
