//! `--protocol raw`: fixed request bytes (`--send`) and an end rule for the response:
//! `--expect-bytes N`, `--expect TEXT` (the response starts with it) or `--expect-close`.

use std::sync::Arc;

use super::{Progress, ProtoError, SpecError};

/// The request and the end rule, validated.
#[derive(Clone, Debug)]
pub struct RawSpec {
    send: Arc<[u8]>,
    end: RawEnd,
}

/// When a raw response is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawEnd {
    /// `--expect-bytes N`: after N bytes, whatever they are.
    Bytes(u64),
    /// `--expect TEXT`: once the response has begun with these bytes; a differing byte is
    /// [`ProtoError::Mismatch`].
    Prefix(Arc<[u8]>),
    /// `--expect-close`: everything up to the server's FIN.
    Close,
}

impl RawEnd {
    /// The end rule from its three flags, of which exactly one must be given.
    pub fn from_flags(
        expect_bytes: Option<u64>,
        expect: Option<&str>,
        expect_close: bool,
    ) -> Result<RawEnd, SpecError> {
        match (expect_bytes, expect, expect_close) {
            (Some(0), None, false) => Err(SpecError(
                "--expect-bytes 0: give 1 or more, or --expect-close to read until the server closes"
                    .into(),
            )),
            (Some(n), None, false) => Ok(RawEnd::Bytes(n)),
            (None, Some(text), false) => match parse_bytes("--expect", text)? {
                t if t.is_empty() => Err(SpecError(
                    "--expect is empty: give the text the response starts with".into(),
                )),
                t => Ok(RawEnd::Prefix(t.into())),
            },
            (None, None, true) => Ok(RawEnd::Close),
            (None, None, false) => Err(SpecError(
                "--protocol raw needs an end rule: --expect-bytes N, --expect TEXT or --expect-close"
                    .into(),
            )),
            _ => Err(SpecError(
                "--expect-bytes, --expect and --expect-close exclude each other: give one".into(),
            )),
        }
    }
}

impl RawSpec {
    /// `send` from [`parse_send`], `end` from [`RawEnd::from_flags`].
    pub fn new(send: Vec<u8>, end: RawEnd) -> RawSpec {
        RawSpec {
            send: send.into(),
            end,
        }
    }

    pub fn send(&self) -> &[u8] {
        &self.send
    }

    pub fn end(&self) -> &RawEnd {
        &self.end
    }

    pub(super) fn request(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.send);
    }
}

/// `--send TEXT|@FILE|hex:..`: the file's bytes, hex digits (whitespace between them is
/// ignored), or the text with its escapes (see [`parse_bytes`]).
pub fn parse_send(spec: &str) -> Result<Vec<u8>, SpecError> {
    if let Some(path) = spec.strip_prefix('@') {
        if path.is_empty() {
            return Err(SpecError(
                "--send @: give a file after the @, as in @request.bin".into(),
            ));
        }
        return std::fs::read(path).map_err(|e| {
            SpecError(format!(
                "--send @{path}: cannot read it ({e}); give a readable file"
            ))
        });
    }
    parse_bytes("--send", spec)
}

/// A `hex:..` spec, or text with the escapes `\r`, `\n`, `\t`, `\\` and `\xNN`; errors name
/// `flag`. A text that must start with `@` or `hex:` can spell its first byte `\x40`/`\x68`.
pub fn parse_bytes(flag: &str, spec: &str) -> Result<Vec<u8>, SpecError> {
    if let Some(hex) = spec.strip_prefix("hex:") {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if let Some(bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
            return Err(SpecError(format!(
                "{flag} {spec:?}: {:?} is not a hex digit; write bytes as hex:48454c4c4f",
                *bad as char
            )));
        }
        if digits.len() % 2 == 1 {
            return Err(SpecError(format!(
                "{flag} {spec:?}: an odd number of hex digits; give two per byte"
            )));
        }
        return Ok(digits
            .chunks(2)
            .map(|p| (hex_value(p[0]) << 4) | hex_value(p[1]))
            .collect());
    }
    let mut out = Vec::with_capacity(spec.len());
    let mut bytes = spec.bytes().enumerate();
    while let Some((i, b)) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let bad = |what: &str| {
            SpecError(format!(
                "{flag} {spec:?}: {what} at byte {i}; use \\r, \\n, \\t, \\\\ or \\xNN"
            ))
        };
        match bytes.next().map(|(_, e)| e) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => match (bytes.next(), bytes.next()) {
                (Some((_, h)), Some((_, l))) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                    out.push((hex_value(h) << 4) | hex_value(l))
                }
                _ => return Err(bad("\\x without two hex digits")),
            },
            Some(e) if e.is_ascii_graphic() => {
                return Err(bad(&format!("unknown escape \\{}", e as char)));
            }
            Some(_) => return Err(bad("unknown escape")),
            None => return Err(bad("a lone \\ at the end")),
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> u8 {
    (b as char).to_digit(16).unwrap_or(0) as u8
}

/// Applies the end rule to what comes back.
#[derive(Debug)]
pub struct RawDecoder {
    end: RawEnd,
    max: usize,
    /// Bytes of this response so far.
    got: u64,
    done: bool,
}

impl RawDecoder {
    pub(super) fn new(spec: &RawSpec, max_response: usize) -> RawDecoder {
        RawDecoder {
            end: spec.end.clone(),
            max: max_response,
            got: 0,
            done: false,
        }
    }

    pub(super) fn reset(&mut self) {
        self.got = 0;
        self.done = false;
    }

    pub(super) fn peer_closes(&self) -> bool {
        self.end == RawEnd::Close
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<Progress, ProtoError> {
        if self.done {
            return Ok(Progress::complete(0, bytes.len()));
        }
        let max = self.max as u64;
        let want = match &self.end {
            RawEnd::Bytes(n) if *n > max => return Err(ProtoError::TooLarge { limit: self.max }),
            RawEnd::Bytes(n) => *n,
            RawEnd::Prefix(p) => {
                let from = self.got as usize;
                let take = (p.len() - from).min(bytes.len());
                if bytes[..take] != p[from..from + take] {
                    return Err(ProtoError::Mismatch);
                }
                p.len() as u64
            }
            RawEnd::Close => {
                if self.got + bytes.len() as u64 > max {
                    return Err(ProtoError::TooLarge { limit: self.max });
                }
                self.got += bytes.len() as u64;
                return Ok(Progress::NeedMore);
            }
        };
        let take = (want - self.got).min(bytes.len() as u64);
        self.got += take;
        if self.got < want {
            return Ok(Progress::NeedMore);
        }
        self.done = true;
        Ok(Progress::complete(take as usize, bytes.len()))
    }

    pub(super) fn eof(&mut self) -> Result<Progress, ProtoError> {
        if self.done || self.end == RawEnd::Close {
            self.done = true;
            return Ok(Progress::Complete {
                consumed: 0,
                extra: 0,
            });
        }
        Err(ProtoError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::same_in_every_split;
    use super::super::{Decoder, Protocol};
    use super::*;

    fn decoder(end: RawEnd, max: usize) -> Decoder {
        Protocol::Raw(RawSpec::new(b"hi\n".to_vec(), end)).decoder(max)
    }

    #[test]
    fn send_specs_text_escapes_hex_and_file() {
        assert_eq!(
            parse_send(r"GET / HTTP/1.0\r\n\r\n").unwrap(),
            b"GET / HTTP/1.0\r\n\r\n"
        );
        assert_eq!(parse_send(r"a\tb\\c\x00\xfF").unwrap(), b"a\tb\\c\x00\xff");
        assert_eq!(parse_send("hex:48 45 4c4C 4f").unwrap(), b"HELLO");
        assert_eq!(parse_send("hex:").unwrap(), b"");
        assert_eq!(parse_send(r"\x40literal").unwrap(), b"@literal");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("req.bin");
        std::fs::write(&file, b"\x00\x01binary\r\n").unwrap();
        assert_eq!(
            parse_send(&format!("@{}", file.display())).unwrap(),
            b"\x00\x01binary\r\n"
        );
        let mut buf = Vec::new();
        Protocol::Raw(RawSpec::new(b"ping".to_vec(), RawEnd::Close))
            .request(3, true, true, &mut buf);
        assert_eq!(buf, b"ping");
    }

    #[test]
    fn bad_send_specs_name_the_flag_and_the_fix() {
        for (spec, why) in [
            (r"a\q", "unknown escape \\q at byte 1"),
            (r"abc\", "a lone \\ at the end"),
            (r"\x4", "\\x without two hex digits"),
            (r"\xZZ", "\\x without two hex digits"),
            ("hex:abc", "odd number of hex digits"),
            ("hex:zz", "'z' is not a hex digit"),
            ("@", "give a file after the @"),
            ("@/nonexistent/tcpbench-req", "cannot read it"),
        ] {
            let e = parse_send(spec).unwrap_err().0;
            assert!(e.starts_with("--send") && e.contains(why), "{spec}: {e}");
        }
    }

    #[test]
    fn exactly_one_end_rule() {
        assert_eq!(
            RawEnd::from_flags(Some(5), None, false),
            Ok(RawEnd::Bytes(5))
        );
        assert_eq!(
            RawEnd::from_flags(None, Some(r"+OK\r\n"), false),
            Ok(RawEnd::Prefix(b"+OK\r\n"[..].into()))
        );
        assert_eq!(RawEnd::from_flags(None, None, true), Ok(RawEnd::Close));
        for (n, t, c, flag) in [
            (None, None, false, "needs an end rule"),
            (Some(1), None, true, "exclude each other"),
            (Some(1), Some("x"), false, "exclude each other"),
            (Some(0), None, false, "--expect-bytes 0"),
            (None, Some(""), false, "--expect is empty"),
            (
                None,
                Some(r"\z"),
                false,
                "--expect \"\\\\z\": unknown escape",
            ),
        ] {
            let e = RawEnd::from_flags(n, t, c).unwrap_err().0;
            assert!(e.contains(flag), "{e}");
        }
    }

    #[test]
    fn expect_bytes_counts_and_leaves_extra() {
        let mut d = decoder(RawEnd::Bytes(4), 1 << 20);
        same_in_every_split(&mut d, b"abcd", false, &Ok(Some(4)));
        same_in_every_split(&mut d, b"abcdef", false, &Ok(Some(4)));
        same_in_every_split(&mut d, b"abc", true, &Err(ProtoError::Closed));
        let mut small = decoder(RawEnd::Bytes(10), 4);
        same_in_every_split(
            &mut small,
            b"abcdefghij",
            true,
            &Err(ProtoError::TooLarge { limit: 4 }),
        );
    }

    #[test]
    fn expect_text_is_a_prefix_match() {
        let mut d = decoder(RawEnd::Prefix(b"+PONG"[..].into()), 1 << 20);
        same_in_every_split(&mut d, b"+PONG\r\n", false, &Ok(Some(5)));
        same_in_every_split(&mut d, b"+PONX\r\n", false, &Err(ProtoError::Mismatch));
        same_in_every_split(&mut d, b"+PO", true, &Err(ProtoError::Closed));
    }

    #[test]
    fn expect_close_reads_to_the_fin() {
        let mut d = decoder(RawEnd::Close, 8);
        same_in_every_split(&mut d, b"bye\r\n", true, &Ok(Some(5)));
        same_in_every_split(&mut d, b"", true, &Ok(Some(0)));
        same_in_every_split(
            &mut d,
            b"123456789",
            true,
            &Err(ProtoError::TooLarge { limit: 8 }),
        );
        assert!(d.peer_closes());
    }
}
