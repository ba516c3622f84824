//! TCP counters from /proc/net/snmp (`Tcp:`) and /proc/net/netstat (`TcpExt:`).

use std::collections::BTreeMap;

/// The counters a report shows, by their /proc names (the `Tcp`/`TcpExt` prefix dropped).
pub const REPORTED: [&str; 25] = [
    "ActiveOpens",
    "PassiveOpens",
    "AttemptFails",
    "EstabResets",
    "RetransSegs",
    "OutRsts",
    "ListenOverflows",
    "ListenDrops",
    "TW",
    "TWRecycled",
    "TWKilled",
    "TCPTimeWaitOverflow",
    "TCPAbortOnClose",
    "TCPAbortOnData",
    "TCPSynRetrans",
    "SyncookiesSent",
    "SyncookiesRecv",
    "SyncookiesFailed",
    "TCPFastOpenActive",
    "TCPFastOpenActiveFail",
    "TCPFastOpenPassive",
    "TCPFastOpenPassiveFail",
    "TCPFastOpenCookieReqd",
    "TCPDeferAcceptDrop",
    "DelayedACKs",
];

/// Every `Tcp:` and `TcpExt:` counter at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot(BTreeMap<String, i64>);

impl Snapshot {
    /// Reads both files; a file that cannot be read contributes nothing.
    pub fn take() -> Snapshot {
        let mut all = BTreeMap::new();
        // thread-self: the namespace of this thread, which is the run's.
        for path in [
            "/proc/thread-self/net/snmp",
            "/proc/thread-self/net/netstat",
        ] {
            if let Ok(text) = std::fs::read_to_string(path) {
                all.extend(parse(&text, &["Tcp", "TcpExt"]));
            }
        }
        Snapshot(all)
    }

    /// `self - before` for the reported counters present in both.
    pub fn delta(&self, before: &Snapshot) -> BTreeMap<String, i64> {
        REPORTED
            .iter()
            .filter_map(|name| {
                let (now, then) = (self.0.get(*name)?, before.0.get(*name)?);
                Some((name.to_string(), now - then))
            })
            .collect()
    }
}

/// Parses the header-line/value-line pairs of /proc/net/snmp and /proc/net/netstat, keeping
/// the sections named in `sections`.
pub fn parse(text: &str, sections: &[&str]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((section, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            break;
        };
        if !sections.contains(&section) {
            continue;
        }
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = value.parse::<i64>() {
                out.insert(name.to_string(), v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 2 64\nTcp: RtoAlgorithm ActiveOpens OutRsts MaxConn\nTcp: 1 100 7 -1\n";
    const NETSTAT: &str =
        "TcpExt: SyncookiesSent TW ListenOverflows\nTcpExt: 0 40 3\nIpExt: InNoRoutes\nIpExt: 5\n";

    #[test]
    fn parses_sections_in_pairs() {
        let tcp = parse(SNMP, &["Tcp"]);
        assert_eq!(tcp.get("ActiveOpens"), Some(&100));
        assert_eq!(tcp.get("MaxConn"), Some(&-1));
        assert!(!tcp.contains_key("Forwarding"));
        let ext = parse(NETSTAT, &["TcpExt"]);
        assert_eq!(ext.get("TW"), Some(&40));
        assert!(!ext.contains_key("InNoRoutes"));
    }

    #[test]
    fn deltas_cover_reported_counters() {
        let before = Snapshot([("ActiveOpens".to_string(), 100), ("TW".to_string(), 40)].into());
        let after = Snapshot(
            [
                ("ActiveOpens".to_string(), 350),
                ("TW".to_string(), 290),
                ("X".to_string(), 1),
            ]
            .into(),
        );
        let d = after.delta(&before);
        assert_eq!(d.get("ActiveOpens"), Some(&250));
        assert_eq!(d.get("TW"), Some(&250));
        assert!(!d.contains_key("X"), "only reported counters");
    }

    #[test]
    fn this_kernel_has_the_counters() {
        let s = Snapshot::take();
        assert!(
            s.0.contains_key("ActiveOpens") && s.0.contains_key("TW"),
            "{s:?}"
        );
    }
}
