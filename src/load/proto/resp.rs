//! `--protocol resp`: one Redis command per exchange, and a RESP2 reply parser that frames
//! any reply (`+`, `-`, `:`, `$`, `*` nested), so every command's answer is complete when it
//! is, not when a guess says.

use super::{Progress, ProtoError, SpecError};

/// Arrays may nest this deep.
const MAX_DEPTH: usize = 32;
/// A reply line (everything but bulk payloads) may be this long.
const MAX_LINE: usize = 64 * 1024;
/// The text of an error reply kept in [`ProtoError::RespError`].
const ERROR_TEXT: usize = 200;

/// The command every exchange sends, encoded once.
#[derive(Clone, Debug)]
pub struct RespSpec {
    request: Vec<u8>,
}

impl Default for RespSpec {
    fn default() -> Self {
        RespSpec::ping()
    }
}

impl RespSpec {
    /// The default: the inline command `PING`, answered `+PONG`.
    pub fn ping() -> RespSpec {
        RespSpec {
            request: b"PING\r\n".to_vec(),
        }
    }

    /// `--resp-command`: words split at whitespace, as redis-cli does: `"..."` takes the
    /// escapes `\"`, `\\`, `\r`, `\n`, `\t` and `\xNN`; `'...'` is literal but for `\'`.
    /// Sent as a RESP array of bulk strings.
    pub fn command(line: &str) -> Result<RespSpec, SpecError> {
        let words = split_command(line)?;
        let mut request = format!("*{}\r\n", words.len()).into_bytes();
        for w in &words {
            request.extend_from_slice(format!("${}\r\n", w.len()).as_bytes());
            request.extend_from_slice(w);
            request.extend_from_slice(b"\r\n");
        }
        Ok(RespSpec { request })
    }

    /// The bytes of one request.
    pub fn bytes(&self) -> &[u8] {
        &self.request
    }

    pub(super) fn request(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.request);
    }
}

/// Splits a command line into its words; errors name `--resp-command`.
fn split_command(line: &str) -> Result<Vec<Vec<u8>>, SpecError> {
    let bad = |why: &str| SpecError(format!("--resp-command {line:?}: {why}"));
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mut word = Vec::new();
        if first == '"' || first == '\'' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(bad("a quote is not closed; close it")),
                    Some(c) if c == first => break,
                    Some('\\') if first == '\'' => match chars.next_if_eq(&'\'') {
                        Some(_) => word.push(b'\''),
                        None => word.push(b'\\'),
                    },
                    Some('\\') => {
                        let e = chars
                            .next()
                            .ok_or_else(|| bad("a quote is not closed; close it"))?;
                        match e {
                            'n' => word.push(b'\n'),
                            'r' => word.push(b'\r'),
                            't' => word.push(b'\t'),
                            'x' => {
                                let hex: String = (0..2).filter_map(|_| chars.next()).collect();
                                let b =
                                    u8::from_str_radix(&hex, 16).ok().filter(|_| hex.len() == 2);
                                word.push(b.ok_or_else(|| bad("\\x takes two hex digits"))?);
                            }
                            c => word.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                        }
                    }
                    Some(c) => word.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(bad("a closing quote must be followed by a space"));
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
        }
        words.push(word);
    }
    if words.is_empty() {
        return Err(bad("it is empty; give a command such as 'GET key'"));
    }
    Ok(words)
}

/// Where a reply stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    /// Reading a type line into `line`.
    Line,
    /// Inside a bulk string: this many bytes to come, its CRLF included.
    Bulk(u64),
    Done,
}

/// Frames one RESP2 reply after another.
#[derive(Debug)]
pub struct RespDecoder {
    max: usize,
    state: State,
    /// The line being read, its CRLF included once complete.
    line: Vec<u8>,
    /// For each open array, the elements still to come.
    open: Vec<u64>,
    /// The text of a top-level error reply.
    error: Option<String>,
    /// Bytes of this reply so far.
    total: usize,
}

impl RespDecoder {
    pub(super) fn new(max_response: usize) -> RespDecoder {
        RespDecoder {
            max: max_response,
            state: State::Line,
            line: Vec::new(),
            open: Vec::new(),
            error: None,
            total: 0,
        }
    }

    pub(super) fn reset(&mut self) {
        self.state = State::Line;
        self.line.clear();
        self.open.clear();
        self.error = None;
        self.total = 0;
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<Progress, ProtoError> {
        let mut pos = 0;
        while pos < bytes.len() && self.state != State::Done {
            let rest = &bytes[pos..];
            match self.state {
                State::Line => match rest.iter().position(|&b| b == b'\n') {
                    None => {
                        self.take_line(rest)?;
                        pos = bytes.len();
                    }
                    Some(k) => {
                        self.take_line(&rest[..=k])?;
                        pos += k + 1;
                        self.element()?;
                        self.line.clear();
                    }
                },
                State::Bulk(left) if left > 2 => {
                    let take = (left - 2).min(rest.len() as u64);
                    pos += take as usize;
                    self.total += take as usize;
                    self.state = State::Bulk(left - take);
                }
                State::Bulk(left) => {
                    let want = if left == 2 { b'\r' } else { b'\n' };
                    if rest[0] != want {
                        return Err(ProtoError::Protocol("bulk string not followed by CRLF"));
                    }
                    pos += 1;
                    self.total += 1;
                    self.state = State::Bulk(left - 1);
                    if left == 1 {
                        self.state = State::Line;
                        self.finished();
                    }
                }
                State::Done => unreachable!("the loop ends at Done"),
            }
        }
        if self.state != State::Done {
            return Ok(Progress::NeedMore);
        }
        match self.error.take() {
            Some(text) => Err(ProtoError::RespError(text)),
            None => Ok(Progress::complete(pos, bytes.len())),
        }
    }

    pub(super) fn eof(&mut self) -> Result<Progress, ProtoError> {
        match self.state {
            State::Done => Ok(Progress::Complete {
                consumed: 0,
                extra: 0,
            }),
            _ => Err(ProtoError::Closed),
        }
    }

    /// Adds `piece` to the line being read. Past `--max-response` or [`MAX_LINE`] it fails
    /// with the limit a byte-by-byte feed would have crossed first, so splits agree.
    fn take_line(&mut self, piece: &[u8]) -> Result<(), ProtoError> {
        let to_total = self.max - self.total;
        let to_line = MAX_LINE - self.line.len();
        if piece.len() > to_total.min(to_line) {
            let limit = if to_total <= to_line {
                self.max
            } else {
                MAX_LINE
            };
            return Err(ProtoError::TooLarge { limit });
        }
        self.line.extend_from_slice(piece);
        self.total += piece.len();
        Ok(())
    }

    /// Acts on the complete line in `self.line`.
    fn element(&mut self) -> Result<(), ProtoError> {
        let line = match self.line.strip_suffix(b"\r\n") {
            Some(l) if !l.is_empty() => l,
            Some(_) => return Err(ProtoError::Protocol("empty RESP line")),
            None => return Err(ProtoError::Protocol("RESP line not ended by CRLF")),
        };
        let (kind, text) = (line[0], &line[1..]);
        match kind {
            b'+' => self.finished(),
            b'-' => {
                if self.open.is_empty() {
                    let cut = &text[..text.len().min(ERROR_TEXT)];
                    self.error = Some(String::from_utf8_lossy(cut).into_owned());
                }
                self.finished();
            }
            b':' => {
                number(text).ok_or(ProtoError::Protocol("bad RESP integer"))?;
                self.finished();
            }
            b'$' => match number(text) {
                Some(-1) => self.finished(),
                Some(n) if n >= 0 => {
                    if self.total as u64 + n as u64 + 2 > self.max as u64 {
                        return Err(ProtoError::TooLarge { limit: self.max });
                    }
                    self.state = State::Bulk(n as u64 + 2);
                }
                _ => return Err(ProtoError::Protocol("bad RESP bulk length")),
            },
            b'*' => match number(text) {
                Some(-1 | 0) => self.finished(),
                Some(n) if n > 0 => {
                    if self.open.len() == MAX_DEPTH {
                        return Err(ProtoError::Protocol("RESP arrays nested too deep"));
                    }
                    // Every element takes three bytes at least.
                    if (n as u64).saturating_mul(3) > self.max as u64 {
                        return Err(ProtoError::TooLarge { limit: self.max });
                    }
                    self.open.push(n as u64);
                }
                _ => return Err(ProtoError::Protocol("bad RESP array length")),
            },
            _ => return Err(ProtoError::Protocol("unknown RESP type byte")),
        }
        Ok(())
    }

    /// One element is complete: close the arrays it completes, or the reply.
    fn finished(&mut self) {
        loop {
            match self.open.last_mut() {
                None => {
                    self.state = State::Done;
                    return;
                }
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        return;
                    }
                    self.open.pop();
                }
            }
        }
    }
}

/// A RESP integer: an optional `-` and decimal digits.
fn number(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::Protocol;
    use super::super::testing::{Outcome, same_in_every_split};
    use super::*;

    fn check(input: &[u8], eof: bool, want: Outcome) {
        let mut d = Protocol::Resp(RespSpec::ping()).decoder(1 << 20);
        same_in_every_split(&mut d, input, eof, &want);
    }

    fn whole(input: &[u8]) {
        check(input, false, Ok(Some(input.len())));
    }

    #[test]
    fn ping_is_inline_and_commands_are_arrays() {
        let mut buf = Vec::new();
        Protocol::Resp(RespSpec::default()).request(0, true, false, &mut buf);
        assert_eq!(buf, b"PING\r\n");
        let set = RespSpec::command(r#"SET  "my key" 'it\'s' "a\x41\"\n""#).unwrap();
        assert_eq!(
            set.bytes(),
            b"*4\r\n$3\r\nSET\r\n$6\r\nmy key\r\n$4\r\nit's\r\n$4\r\naA\"\n\r\n"
        );
        assert_eq!(
            RespSpec::command("GET k").unwrap().bytes(),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        );
    }

    #[test]
    fn bad_commands_name_the_flag() {
        for (line, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("GET \"k", "not closed"),
            ("GET 'k", "not closed"),
            ("GET \"k\"x", "followed by a space"),
            ("GET \"\\xZZ\"", "two hex digits"),
        ] {
            let e = RespSpec::command(line).unwrap_err().0;
            assert!(
                e.starts_with("--resp-command") && e.contains(why),
                "{line}: {e}"
            );
        }
    }

    #[test]
    fn every_reply_type_is_framed_in_every_split() {
        whole(b"+PONG\r\n");
        whole(b":1000\r\n");
        whole(b":-42\r\n");
        whole(b"$5\r\nhello\r\n");
        whole(b"$0\r\n\r\n");
        whole(b"$-1\r\n");
        whole(b"*-1\r\n");
        whole(b"*0\r\n");
        // Binary bulk content holding CRLF, and nested arrays with every type inside.
        whole(b"$4\r\n\r\n\r\n\r\n");
        whole(b"*3\r\n$3\r\nfoo\r\n*2\r\n:1\r\n*1\r\n+x\r\n$-1\r\n");
        whole(b"*2\r\n*2\r\n:1\r\n:2\r\n*0\r\n");
        // An error inside an array (EXEC's replies) is part of the reply, not its failure.
        whole(b"*2\r\n+OK\r\n-ERR inside\r\n");
    }

    #[test]
    fn pipelined_replies_leave_extra_bytes() {
        let mut d = Protocol::Resp(RespSpec::ping()).decoder(1 << 20);
        d.reset();
        let two = b"*1\r\n$2\r\nab\r\n+PONG\r\n";
        assert_eq!(
            d.feed(two).unwrap(),
            Progress::Complete {
                consumed: 12,
                extra: 7
            }
        );
        d.reset();
        assert_eq!(
            d.feed(&two[12..]).unwrap(),
            Progress::Complete {
                consumed: 7,
                extra: 0
            }
        );
    }

    #[test]
    fn an_error_reply_is_a_resp_error_with_its_text() {
        check(
            b"-ERR unknown command 'FOO'\r\n",
            false,
            Err(ProtoError::RespError("ERR unknown command 'FOO'".into())),
        );
        let long = format!("-{}\r\n", "E".repeat(300));
        check(
            long.as_bytes(),
            false,
            Err(ProtoError::RespError("E".repeat(ERROR_TEXT))),
        );
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        for (r, why) in [
            (&b"PONG\r\n"[..], "unknown RESP type byte"),
            (b"+PONG\n", "RESP line not ended by CRLF"),
            (b"\r\n", "empty RESP line"),
            (b":12a\r\n", "bad RESP integer"),
            (b":\r\n", "bad RESP integer"),
            (b"$-2\r\n", "bad RESP bulk length"),
            (b"$x\r\n", "bad RESP bulk length"),
            (b"*-5\r\n", "bad RESP array length"),
            (b"$3\r\nabcd\r\n", "bulk string not followed by CRLF"),
            (b"$3\r\nabc\rX", "bulk string not followed by CRLF"),
            (b"HTTP/1.1 200 OK\r\n", "unknown RESP type byte"),
        ] {
            check(r, true, Err(ProtoError::Protocol(why)));
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        check(
            deep.as_bytes(),
            true,
            Err(ProtoError::Protocol("RESP arrays nested too deep")),
        );
        check(b"*2\r\n:1\r\n", true, Err(ProtoError::Closed));
        check(b"$5\r\nab", true, Err(ProtoError::Closed));
        check(b"", true, Err(ProtoError::Closed));
    }

    #[test]
    fn oversize_replies_are_too_large() {
        let mut d = Protocol::Resp(RespSpec::ping()).decoder(20);
        let fits = b"$10\r\n0123456789\r\n"; // 17 bytes
        same_in_every_split(&mut d, fits, false, &Ok(Some(17)));
        let over = b"$14\r\n0123456789abcd\r\n"; // 21 bytes
        same_in_every_split(&mut d, over, true, &Err(ProtoError::TooLarge { limit: 20 }));
        same_in_every_split(
            &mut d,
            b"*100\r\n",
            true,
            &Err(ProtoError::TooLarge { limit: 20 }),
        );
        let lines = b"*6\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n"; // 24 bytes of small elements
        same_in_every_split(
            &mut d,
            lines,
            true,
            &Err(ProtoError::TooLarge { limit: 20 }),
        );
        let mut big = Protocol::Resp(RespSpec::ping()).decoder(1 << 30);
        let endless = format!("+{}", "x".repeat(MAX_LINE + 1));
        assert_eq!(
            super::super::testing::run(&mut big, &[endless.as_bytes()], false),
            Err(ProtoError::TooLarge { limit: MAX_LINE })
        );
    }
}
