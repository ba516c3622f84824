//! `--protocol http`: HTTP/1.1 requests and the framing of their responses.
//!
//! The head is parsed with `httparse`; the body is framed as RFC 9112 §6.3 says: none for
//! HEAD, 1xx, 204 and 304; chunked when it is the last transfer coding (trailers read and
//! dropped); else by Content-Length; else until the server closes. Interim 1xx responses
//! are skipped (101 is an error: tcpbench does not switch protocols).

use super::{Progress, ProtoError, SpecError};

/// An HTTP response head may take this much at most, whatever `--max-response` says.
pub const MAX_HEAD: usize = 64 * 1024;
/// Response headers a head may have.
const MAX_HEADERS: usize = 64;

/// The request method.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    /// A HEAD's response has no body, whatever its Content-Length says.
    Head,
}

/// The validated request, rendered once in its two forms.
#[derive(Clone, Debug)]
pub struct HttpSpec {
    method: Method,
    expect_status: Option<u16>,
    /// The request that keeps the connection open.
    keep_alive: Vec<u8>,
    /// The same with `Connection: close`, for the last request when the server closes first.
    closing: Vec<u8>,
}

impl HttpSpec {
    /// Validates `--http-path`, `--http-host`, each `--http-header 'K: V'` and
    /// `--http-expect-status`. A `Host` among the headers replaces `host`.
    pub fn new(
        method: Method,
        path: &str,
        host: &str,
        headers: &[String],
        expect_status: Option<u16>,
    ) -> Result<HttpSpec, SpecError> {
        let path_ok = path == "*" || path.starts_with('/') || path.contains("://");
        if !path_ok || !visible(path) {
            return Err(SpecError(format!(
                "--http-path {path:?}: give a path that starts with '/', without spaces or control characters"
            )));
        }
        if host.is_empty() || !visible(host) {
            return Err(SpecError(format!(
                "--http-host {host:?}: give a host[:port] without spaces or control characters"
            )));
        }
        if let Some(s) = expect_status
            && !(100..=599).contains(&s)
        {
            return Err(SpecError(format!(
                "--http-expect-status {s}: give a status code from 100 to 599"
            )));
        }
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<_, _>>()?;
        let verb = match method {
            Method::Get => "GET",
            Method::Head => "HEAD",
        };
        let mut head = format!("{verb} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {host}\r\n"));
        }
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        Ok(HttpSpec {
            method,
            expect_status,
            keep_alive: format!("{head}\r\n").into_bytes(),
            closing: format!("{head}Connection: close\r\n\r\n").into_bytes(),
        })
    }

    pub(super) fn request(&self, close: bool, buf: &mut Vec<u8>) {
        buf.extend_from_slice(if close {
            &self.closing
        } else {
            &self.keep_alive
        });
    }
}

/// Printable ASCII without spaces: what a request line's target and a Host may hold.
fn visible(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses one `--http-header 'Name: value'`.
pub fn parse_header(s: &str) -> Result<(String, String), SpecError> {
    let bad = |why: &str| {
        SpecError(format!(
            "--http-header {s:?}: {why}; write it as 'Name: value'"
        ))
    };
    let (name, value) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(bad("the name must be letters, digits or !#$%&'*+-.^_`|~"));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(bad("the value holds a control character"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Where a response stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    Head,
    /// This many body bytes still to come.
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

/// Where a chunked body stands, byte by byte.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading the chunk size's hex digits.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: whitespace or a chunk extension, up to CR.
    Ext {
        size: u64,
    },
    /// The LF after the size line's CR.
    SizeLf {
        size: u64,
    },
    /// This many data bytes still to come.
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: a trailer field, or the CR of the final empty line.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
}

/// Decodes one response after another on a keep-alive connection.
#[derive(Debug)]
pub struct HttpDecoder {
    head_request: bool,
    expect_status: Option<u16>,
    max: usize,
    state: State,
    /// A head split over reads, collected until it parses.
    head: Vec<u8>,
    /// Bytes of this response so far.
    total: usize,
    closes: bool,
}

/// What a complete head says.
struct Head {
    len: usize,
    status: u16,
    /// The body's framing when the response has one.
    body: State,
    closes: bool,
}

impl HttpDecoder {
    pub(super) fn new(spec: &HttpSpec, max_response: usize) -> HttpDecoder {
        HttpDecoder {
            head_request: spec.method == Method::Head,
            expect_status: spec.expect_status,
            max: max_response,
            state: State::Head,
            head: Vec::new(),
            total: 0,
            closes: false,
        }
    }

    pub(super) fn reset(&mut self) {
        self.state = State::Head;
        self.head.clear();
        self.total = 0;
        self.closes = false;
    }

    pub(super) fn peer_closes(&self) -> bool {
        self.closes
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<Progress, ProtoError> {
        let mut pos = 0;
        loop {
            let rest = &bytes[pos..];
            match self.state {
                State::Done => return Ok(Progress::complete(pos, bytes.len())),
                State::Head => match self.head_from(rest)? {
                    None => {
                        self.count(rest.len())?;
                        return Ok(Progress::NeedMore);
                    }
                    Some(used) => {
                        self.count(used)?;
                        pos += used;
                    }
                },
                State::Length(left) => {
                    let take = left.min(rest.len() as u64);
                    self.count(take as usize)?;
                    pos += take as usize;
                    self.state = match left - take {
                        0 => State::Done,
                        left => State::Length(left),
                    };
                    if self.state != State::Done {
                        return Ok(Progress::NeedMore);
                    }
                }
                State::Chunked(c) => {
                    let (used, next) = self.chunked(c, rest)?;
                    self.count(used)?;
                    pos += used;
                    self.state = next;
                    if pos == bytes.len() && next != State::Done {
                        return Ok(Progress::NeedMore);
                    }
                }
                State::UntilClose => {
                    self.count(rest.len())?;
                    return Ok(Progress::NeedMore);
                }
            }
        }
    }

    pub(super) fn eof(&mut self) -> Result<Progress, ProtoError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(Progress::Complete {
                    consumed: 0,
                    extra: 0,
                })
            }
            _ => Err(ProtoError::Closed),
        }
    }

    /// Adds `n` bytes to the response's size.
    fn count(&mut self, n: usize) -> Result<(), ProtoError> {
        self.total += n;
        if self.total > self.max {
            return Err(ProtoError::TooLarge { limit: self.max });
        }
        Ok(())
    }

    /// Takes what it can of a head from `rest`: the bytes of `rest` a complete head used
    /// (and the state moves on), or `None` when the head is still partial (all of `rest`
    /// is kept).
    fn head_from(&mut self, rest: &[u8]) -> Result<Option<usize>, ProtoError> {
        let limit = self.max.min(MAX_HEAD);
        let before = self.head.len();
        let parsed = if before == 0 {
            parse_head(rest, self.head_request)?
        } else {
            self.head.extend_from_slice(rest);
            parse_head(&self.head, self.head_request)?
        };
        let Some(head) = parsed else {
            if before == 0 {
                self.head.extend_from_slice(rest);
            }
            if self.head.len() > limit {
                return Err(ProtoError::TooLarge { limit });
            }
            return Ok(None);
        };
        self.head.clear();
        if head.len > limit {
            return Err(ProtoError::TooLarge { limit });
        }
        let used = head.len - before;
        match head.status {
            101 => return Err(ProtoError::Protocol("101 Switching Protocols")),
            100..=199 => return Ok(Some(used)), // interim: the final head follows
            _ => {}
        }
        let failed = match self.expect_status {
            Some(want) => head.status != want,
            None => head.status >= 400,
        };
        if failed {
            return Err(ProtoError::HttpStatus(head.status));
        }
        if let State::Length(n) = head.body
            && (self.total + used) as u64 + n > self.max as u64
        {
            return Err(ProtoError::TooLarge { limit: self.max });
        }
        self.closes = head.closes || head.body == State::UntilClose;
        self.state = head.body;
        Ok(Some(used))
    }

    /// Steps the chunked body through `rest`; returns the bytes used and the next state.
    fn chunked(&self, mut c: Chunk, rest: &[u8]) -> Result<(usize, State), ProtoError> {
        let bad = ProtoError::Protocol;
        let mut i = 0;
        while i < rest.len() {
            if let Chunk::Data(left) = c {
                let take = left.min((rest.len() - i) as u64);
                i += take as usize;
                c = if left == take {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left - take)
                };
                continue;
            }
            let b = rest[i];
            i += 1;
            c = match (c, b) {
                (Chunk::Size { size, digits }, _) if b.is_ascii_hexdigit() => {
                    if digits == 15 {
                        return Err(bad("chunk size too long"));
                    }
                    let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                    Chunk::Size {
                        size: size * 16 + d,
                        digits: digits + 1,
                    }
                }
                (Chunk::Size { digits: 0, .. }, _) => return Err(bad("chunk size is not hex")),
                (Chunk::Size { size, .. }, b';' | b' ' | b'\t') => Chunk::Ext { size },
                (Chunk::Size { size, .. } | Chunk::Ext { size }, b'\r') => Chunk::SizeLf { size },
                (Chunk::Size { .. }, _) => return Err(bad("chunk size is not hex")),
                (Chunk::Ext { .. }, b'\n') => return Err(bad("chunk size line without CR")),
                (Chunk::Ext { size }, _) => Chunk::Ext { size },
                (Chunk::SizeLf { size: 0 }, b'\n') => Chunk::TrailerStart,
                (Chunk::SizeLf { size }, b'\n') => {
                    if self.total as u64 + i as u64 + size > self.max as u64 {
                        return Err(ProtoError::TooLarge { limit: self.max });
                    }
                    Chunk::Data(size)
                }
                (Chunk::DataCr, b'\r') => Chunk::DataLf,
                (Chunk::DataLf, b'\n') => Chunk::Size { size: 0, digits: 0 },
                (Chunk::DataCr | Chunk::DataLf, _) => {
                    return Err(bad("chunk data not followed by CRLF"));
                }
                (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
                (Chunk::TrailerStart, b'\n') => return Err(bad("trailer line without CR")),
                (Chunk::TrailerLine, b'\r') => Chunk::TrailerLf,
                (Chunk::TrailerLine, b'\n') => return Err(bad("trailer line without CR")),
                (Chunk::TrailerStart | Chunk::TrailerLine, _) => Chunk::TrailerLine,
                (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
                (Chunk::EndLf, b'\n') => return Ok((i, State::Done)),
                (Chunk::SizeLf { .. } | Chunk::TrailerLf | Chunk::EndLf, _) => {
                    return Err(bad("CR not followed by LF"));
                }
                (Chunk::Data(_), _) => unreachable!("data is skipped above"),
            };
        }
        Ok((i, State::Chunked(c)))
    }
}

/// Parses a response head at the start of `buf`: `None` while it is incomplete.
fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<Head>, ProtoError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ProtoError::Protocol("more than 64 header fields"));
        }
        Err(httparse::Error::Status | httparse::Error::Version) => {
            return Err(ProtoError::Protocol("not an HTTP status line"));
        }
        Err(_) => return Err(ProtoError::Protocol("malformed response head")),
    };
    let status = res.code.unwrap_or(0);
    let http10 = res.version == Some(0);
    let mut chunked = None;
    let mut length: Option<u64> = None;
    let (mut close, mut keep_alive) = (false, false);
    for h in res.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("");
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding of the last field decides.
            if let Some(last) = value.rsplit(',').map(str::trim).find(|t| !t.is_empty()) {
                chunked = Some(last.eq_ignore_ascii_case("chunked"));
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            for v in value.split(',').map(str::trim) {
                let n = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<u64>().ok())
                    .flatten()
                    .ok_or(ProtoError::Protocol("bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(ProtoError::Protocol("conflicting Content-Length values"));
                }
                length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in value.split(',').map(str::trim) {
                close |= t.eq_ignore_ascii_case("close");
                keep_alive |= t.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    let body = if head_request || matches!(status, 100..=199 | 204 | 304) {
        State::Done
    } else {
        match (chunked, length) {
            (Some(true), _) => State::Chunked(Chunk::Size { size: 0, digits: 0 }),
            (Some(false), _) => State::UntilClose,
            (None, Some(0)) => State::Done,
            (None, Some(n)) => State::Length(n),
            (None, None) => State::UntilClose,
        }
    };
    Ok(Some(Head {
        len,
        status,
        body,
        closes: close || (http10 && !keep_alive),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Outcome, run, same_in_every_split};
    use super::super::{Decoder, Protocol};
    use super::*;

    fn spec(method: Method, expect: Option<u16>) -> HttpSpec {
        HttpSpec::new(method, "/", "127.0.0.1:8080", &[], expect).unwrap()
    }

    fn decoder(method: Method, expect: Option<u16>, max: usize) -> Decoder {
        Protocol::Http(spec(method, expect)).decoder(max)
    }

    fn get() -> Decoder {
        decoder(Method::Get, None, 1 << 20)
    }

    fn check(input: &str, eof: bool, want: Outcome) {
        same_in_every_split(&mut get(), input.as_bytes(), eof, &want);
    }

    #[test]
    fn requests_keep_alive_and_the_last_asks_for_close_when_the_server_closes() {
        let p = Protocol::Http(
            HttpSpec::new(
                Method::Get,
                "/index.html?q=1",
                "example.test",
                &["X-Run: 7".into(), "Accept:*/*".into()],
                None,
            )
            .unwrap(),
        );
        let mut buf = Vec::new();
        p.request(0, false, true, &mut buf);
        assert_eq!(
            String::from_utf8_lossy(&buf),
            "GET /index.html?q=1 HTTP/1.1\r\nHost: example.test\r\nX-Run: 7\r\nAccept: */*\r\n\r\n"
        );
        buf.clear();
        p.request(1, true, false, &mut buf);
        assert!(!String::from_utf8_lossy(&buf).contains("Connection"));
        buf.clear();
        p.request(1, true, true, &mut buf);
        assert!(String::from_utf8_lossy(&buf).ends_with("\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn a_host_header_replaces_the_default_host() {
        let s = HttpSpec::new(Method::Get, "/", "a:1", &["host: b".into()], None).unwrap();
        let mut buf = Vec::new();
        s.request(false, &mut buf);
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains("host: b\r\n") && !text.contains("Host: a:1"),
            "{text}"
        );
    }

    #[test]
    fn bad_user_strings_name_their_flag() {
        for (h, why) in [
            ("NoColon", "no ':'"),
            ("Bad Name: x", "the name"),
            (": x", "the name"),
        ] {
            let e = parse_header(h).unwrap_err().0;
            assert!(e.starts_with("--http-header") && e.contains(why), "{e}");
        }
        assert_eq!(
            parse_header("K:  v v ").unwrap(),
            ("K".into(), "v v".into())
        );
        let e = |path, host, code| {
            HttpSpec::new(Method::Get, path, host, &[], code)
                .unwrap_err()
                .0
        };
        assert!(e("index", "h", None).starts_with("--http-path"));
        assert!(e("/a b", "h", None).starts_with("--http-path"));
        assert!(e("/", "", None).starts_with("--http-host"));
        assert!(e("/", "h", Some(42)).starts_with("--http-expect-status"));
    }

    #[test]
    fn content_length_bodies_complete_in_every_split() {
        let r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        check(r, false, Ok(Some(r.len())));
        let nginx = "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";
        check(nginx, false, Ok(Some(nginx.len())));
        check(
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            Ok(Some(38)),
        );
        // Truncated: EOF before the length is reached.
        check(
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello",
            true,
            Err(ProtoError::Closed),
        );
    }

    #[test]
    fn pipelined_responses_leave_extra_bytes_for_the_next() {
        let one = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let two = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
        let both = format!("{one}{two}");
        let mut d = get();
        d.reset();
        let Progress::Complete { consumed, extra } = d.feed(both.as_bytes()).unwrap() else {
            panic!("first response incomplete")
        };
        assert_eq!((consumed, extra), (one.len(), two.len()));
        d.reset();
        assert_eq!(
            d.feed(&both.as_bytes()[consumed..]).unwrap(),
            Progress::complete(two.len(), two.len())
        );
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        for r in [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\nA;name=v\r\n0123456789\r\n2 \r\nab\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            // Transfer-Encoding wins over Content-Length.
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\nf\r\n0123456789abcde\r\n0\r\n\r\n",
        ] {
            check(r, false, Ok(Some(r.len())));
        }
    }

    #[test]
    fn bad_chunks_are_protocol_errors() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        for (body, why) in [
            ("zz\r\n", "chunk size is not hex"),
            ("\r\n", "chunk size is not hex"),
            (
                "5\r\nhelloX\r\n0\r\n\r\n",
                "chunk data not followed by CRLF",
            ),
            ("5\rhello", "CR not followed by LF"),
            ("5;ext\nhello", "chunk size line without CR"),
            ("1234567890abcdef0\r\n", "chunk size too long"),
            ("0\r\nX: y\n\r\n", "trailer line without CR"),
            ("0\r\n\rX", "CR not followed by LF"),
        ] {
            check(
                &format!("{head}{body}"),
                true,
                Err(ProtoError::Protocol(why)),
            );
        }
        // A chunked body cut short by the close.
        check(&format!("{head}5\r\nhel"), true, Err(ProtoError::Closed));
    }

    #[test]
    fn a_body_without_length_ends_at_the_close() {
        let r = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
        check(r, true, Ok(Some(r.len())));
        let mut d = get();
        assert_eq!(run(&mut d, &[r.as_bytes()], false), Ok(None));
        assert!(d.peer_closes());
        // Not chunked as the last coding: also until close.
        let r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxyz";
        check(r, true, Ok(Some(r.len())));
    }

    #[test]
    fn no_body_for_head_204_304_and_interim_1xx_is_skipped() {
        let mut head = decoder(Method::Head, None, 1 << 20);
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 612\r\n\r\n";
        same_in_every_split(&mut head, r, false, &Ok(Some(r.len())));
        for r in [
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ] {
            check(r, false, Ok(Some(r.len())));
        }
        check(
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            false,
            Err(ProtoError::Protocol("101 Switching Protocols")),
        );
    }

    #[test]
    fn error_statuses_and_the_expected_status() {
        check(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            false,
            Err(ProtoError::HttpStatus(404)),
        );
        check(
            "HTTP/1.1 503 Busy\r\n\r\n",
            false,
            Err(ProtoError::HttpStatus(503)),
        );
        let r = b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx";
        let mut want_404 = decoder(Method::Get, Some(404), 1 << 20);
        same_in_every_split(&mut want_404, r, false, &Ok(Some(r.len())));
        let mut want_204 = decoder(Method::Get, Some(204), 1 << 20);
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        same_in_every_split(&mut want_204, ok, false, &Err(ProtoError::HttpStatus(200)));
    }

    #[test]
    fn garbage_and_malformed_heads_are_protocol_errors() {
        check(
            "garbage\r\n\r\n",
            true,
            Err(ProtoError::Protocol("not an HTTP status line")),
        );
        check(
            "HTTP/1.1 abc OK\r\n\r\n",
            true,
            Err(ProtoError::Protocol("not an HTTP status line")),
        );
        check(
            "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            true,
            Err(ProtoError::Protocol("bad Content-Length")),
        );
        check(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            true,
            Err(ProtoError::Protocol("conflicting Content-Length values")),
        );
        let same_twice = "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok";
        check(same_twice, false, Ok(Some(same_twice.len())));
        check(
            "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
            true,
            Err(ProtoError::Protocol("malformed response head")),
        );
        let many: String = (0..65).map(|i| format!("X-{i}: v\r\n")).collect();
        check(
            &format!("HTTP/1.1 200 OK\r\n{many}\r\n"),
            true,
            Err(ProtoError::Protocol("more than 64 header fields")),
        );
        // Closed before any byte, or mid-head.
        check("", true, Err(ProtoError::Closed));
        check("HTTP/1.1 200 O", true, Err(ProtoError::Closed));
    }

    #[test]
    fn oversize_responses_are_too_large_in_every_split() {
        let mut small = decoder(Method::Get, None, 100);
        let big = |body: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let fits = big(&"x".repeat(100 - 39));
        assert_eq!(fits.len(), 100);
        same_in_every_split(&mut small, fits.as_bytes(), false, &Ok(Some(100)));
        let over = big(&"x".repeat(100 - 38));
        same_in_every_split(
            &mut small,
            over.as_bytes(),
            false,
            &Err(ProtoError::TooLarge { limit: 100 }),
        );
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{}\r\n0\r\n\r\n",
            "y".repeat(64)
        );
        same_in_every_split(
            &mut small,
            chunked.as_bytes(),
            true,
            &Err(ProtoError::TooLarge { limit: 100 }),
        );
        let until_close = format!("HTTP/1.1 200 OK\r\n\r\n{}", "z".repeat(100));
        same_in_every_split(
            &mut small,
            until_close.as_bytes(),
            true,
            &Err(ProtoError::TooLarge { limit: 100 }),
        );
        // A head that never ends is bounded by MAX_HEAD even under a larger --max-response.
        let endless = format!("HTTP/1.1 200 OK\r\nX: {}", "h".repeat(MAX_HEAD));
        let mut d = get();
        assert_eq!(
            run(&mut d, &[endless.as_bytes()], false),
            Err(ProtoError::TooLarge { limit: MAX_HEAD })
        );
    }

    #[test]
    fn connection_close_and_http_1_0_say_the_server_closes() {
        for (r, closes) in [
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            (
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n",
                true,
            ),
            ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", true),
            (
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                false,
            ),
        ] {
            let mut d = get();
            assert_eq!(
                run(&mut d, &[r.as_bytes()], false),
                Ok(Some(r.len())),
                "{r}"
            );
            assert_eq!(d.peer_closes(), closes, "{r}");
        }
    }
}
