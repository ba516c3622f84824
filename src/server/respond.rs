//! The embedded server's minimal responders for `--protocol http` and `resp`, as pure
//! functions: given the bytes a connection has read so far, what to answer and whether to
//! close after it. The connection loop keeps the bytes, calls again with what is left after
//! `consumed`, writes what was appended to `out`, and closes when told to.
//!
//! - HTTP/1.1: every request is answered `200 OK` with a fixed small body; the connection
//!   stays open unless the request says `Connection: close` (HTTP/1.0: unless it says
//!   `keep-alive`), and then the server closes first. A malformed request gets `400` and a
//!   close.
//! - RESP: `PING` is answered `+PONG` (`PING msg` with `msg`), `QUIT` with `+OK` and a
//!   close, any other command with an error reply, as Redis words them. Both the RESP array
//!   form clients send and the inline form (`PING\r\n`) are read.

/// A request (head and body, or one command) may take this much at most.
pub const MAX_REQUEST: usize = 64 * 1024;
/// The body every HTTP request gets.
pub const HTTP_BODY: &[u8] = b"ok\n";

/// What to do with the bytes read so far.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The request is not complete yet: read more (nothing was appended to `out`).
    NeedMore,
    /// The first `consumed` bytes were one request; its answer was appended to `out` (an
    /// empty inline RESP line gets none). `close`: close after writing it.
    Reply { consumed: usize, close: bool },
}

const HTTP_HEADERS: usize = 32;

/// Answers the HTTP/1.x request at the start of `input`.
pub fn http(input: &[u8], out: &mut Vec<u8>) -> Answer {
    let mut headers = [httparse::EMPTY_HEADER; HTTP_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() <= MAX_REQUEST => return Answer::NeedMore,
        Ok(httparse::Status::Partial) => {
            return http_error(out, input.len(), "431 Request Header Fields Too Large");
        }
        Err(_) => return http_error(out, input.len(), "400 Bad Request"),
    };
    let http10 = req.version == Some(0);
    let (mut close, mut keep_alive, mut body) = (false, false, 0usize);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("");
        if h.name.eq_ignore_ascii_case("connection") {
            for t in value.split(',').map(str::trim) {
                close |= t.eq_ignore_ascii_case("close");
                keep_alive |= t.eq_ignore_ascii_case("keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match value.trim().parse::<usize>() {
                Ok(n) if head + n <= MAX_REQUEST => body = n,
                Ok(_) => return http_error(out, input.len(), "413 Content Too Large"),
                Err(_) => return http_error(out, input.len(), "400 Bad Request"),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return http_error(out, input.len(), "501 Not Implemented");
        }
    }
    if input.len() < head + body {
        return Answer::NeedMore;
    }
    let close = close || (http10 && !keep_alive);
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ");
    out.extend_from_slice(HTTP_BODY.len().to_string().as_bytes());
    out.extend_from_slice(match (close, http10) {
        (true, _) => &b"\r\nConnection: close\r\n\r\n"[..],
        (false, true) => b"\r\nConnection: keep-alive\r\n\r\n",
        (false, false) => b"\r\n\r\n",
    });
    if req.method != Some("HEAD") {
        out.extend_from_slice(HTTP_BODY);
    }
    Answer::Reply {
        consumed: head + body,
        close,
    }
}

/// An error status without a body, and a close: what is left of the input is not trusted.
fn http_error(out: &mut Vec<u8>, consumed: usize, status: &str) -> Answer {
    out.extend_from_slice(
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    Answer::Reply {
        consumed,
        close: true,
    }
}

/// Answers the RESP command at the start of `input`.
pub fn resp(input: &[u8], out: &mut Vec<u8>) -> Answer {
    let parsed = if input.first() == Some(&b'*') {
        multibulk(input)
    } else {
        inline(input)
    };
    let (consumed, words) = match parsed {
        Ok(Some(command)) => command,
        Ok(None) if input.len() <= MAX_REQUEST => return Answer::NeedMore,
        Ok(None) => return resp_error(out, input.len(), "Protocol error: too big request"),
        Err(why) => return resp_error(out, input.len(), why),
    };
    let Some((name, args)) = words.split_first() else {
        return Answer::Reply {
            consumed,
            close: false,
        }; // an empty inline line: Redis ignores it
    };
    let close = if name.eq_ignore_ascii_case(b"PING") {
        match args {
            [] => out.extend_from_slice(b"+PONG\r\n"),
            [msg] => {
                out.extend_from_slice(format!("${}\r\n", msg.len()).as_bytes());
                out.extend_from_slice(msg);
                out.extend_from_slice(b"\r\n");
            }
            _ => out.extend_from_slice(b"-ERR wrong number of arguments for 'ping' command\r\n"),
        }
        false
    } else if name.eq_ignore_ascii_case(b"QUIT") {
        out.extend_from_slice(b"+OK\r\n");
        true
    } else {
        let shown: String = String::from_utf8_lossy(name)
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect();
        out.extend_from_slice(format!("-ERR unknown command '{shown}'\r\n").as_bytes());
        false
    };
    Answer::Reply { consumed, close }
}

/// A Redis error reply, then a close, for input that cannot be framed.
fn resp_error(out: &mut Vec<u8>, consumed: usize, why: &str) -> Answer {
    out.extend_from_slice(format!("-ERR {why}\r\n").as_bytes());
    Answer::Reply {
        consumed,
        close: true,
    }
}

/// A command's length in bytes and its words; `None` while incomplete.
type Command<'a> = Option<(usize, Vec<&'a [u8]>)>;

/// `*N\r\n` then N `$len\r\n<bytes>\r\n`, as clients send commands.
fn multibulk(input: &[u8]) -> Result<Command<'_>, &'static str> {
    let Some((count, mut pos)) = line(input, 0) else {
        return Ok(None);
    };
    let n = number(&count[1..])
        .filter(|n| (0..=1024).contains(n))
        .ok_or("Protocol error: invalid multibulk length")?;
    let mut words = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let Some((len_line, at)) = line(input, pos) else {
            return Ok(None);
        };
        if len_line.first() != Some(&b'$') {
            return Err("Protocol error: expected '$'");
        }
        let len = number(&len_line[1..])
            .filter(|n| (0..=MAX_REQUEST as i64).contains(n))
            .ok_or("Protocol error: invalid bulk length")? as usize;
        if input.len() < at + len + 2 {
            return Ok(None);
        }
        if &input[at + len..at + len + 2] != b"\r\n" {
            return Err("Protocol error: bulk string not followed by CRLF");
        }
        words.push(&input[at..at + len]);
        pos = at + len + 2;
    }
    Ok(Some((pos, words)))
}

/// One line of words separated by spaces, ended by LF (a CR before it is dropped).
fn inline(input: &[u8]) -> Result<Command<'_>, &'static str> {
    let Some(end) = input.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let text = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
    let words = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    Ok(Some((end + 1, words)))
}

/// The line starting at `from`, without its CRLF, and where the next begins.
fn line(input: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let end = from + input[from..].windows(2).position(|w| w == b"\r\n")?;
    Some((&input[from..end], end + 2))
}

fn number(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(f: fn(&[u8], &mut Vec<u8>) -> Answer, input: &[u8]) -> (Answer, String) {
        let mut out = Vec::new();
        let a = f(input, &mut out);
        (a, String::from_utf8(out).unwrap())
    }

    /// Every proper prefix of a request needs more and writes nothing.
    fn prefixes_need_more(f: fn(&[u8], &mut Vec<u8>) -> Answer, request: &[u8]) {
        for k in 0..request.len() {
            assert_eq!(
                answer(f, &request[..k]),
                (Answer::NeedMore, String::new()),
                "prefix {k}"
            );
        }
    }

    #[test]
    fn http_keeps_alive_and_closes_when_asked() {
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        prefixes_need_more(http, get);
        let (a, out) = answer(http, get);
        assert_eq!(
            a,
            Answer::Reply {
                consumed: get.len(),
                close: false
            }
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
        );
        let close = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let (a, out) = answer(http, close);
        assert_eq!(
            a,
            Answer::Reply {
                consumed: close.len(),
                close: true
            }
        );
        assert!(
            out.contains("\r\nConnection: close\r\n") && out.ends_with("ok\n"),
            "{out}"
        );
    }

    #[test]
    fn http_1_0_closes_unless_keep_alive_and_head_gets_no_body() {
        let (a, out) = answer(http, b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(
            a,
            Answer::Reply {
                consumed: 18,
                close: true
            }
        );
        assert!(out.contains("Connection: close"));
        let (a, out) = answer(http, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(matches!(a, Answer::Reply { close: false, .. }));
        assert!(out.contains("Connection: keep-alive"));
        let (_, out) = answer(http, b"HEAD / HTTP/1.1\r\n\r\n");
        assert!(out.ends_with("Content-Length: 3\r\n\r\n"), "{out}");
    }

    #[test]
    fn http_pipelined_requests_and_bodies_are_consumed_one_at_a_time() {
        let post = b"POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody";
        prefixes_need_more(http, post);
        let two = [&post[..], b"GET / HTTP/1.1\r\n\r\n"].concat();
        let (a, _) = answer(http, &two);
        assert_eq!(
            a,
            Answer::Reply {
                consumed: post.len(),
                close: false
            }
        );
        let (a, _) = answer(http, &two[post.len()..]);
        assert_eq!(
            a,
            Answer::Reply {
                consumed: 18,
                close: false
            }
        );
    }

    #[test]
    fn bad_http_gets_an_error_status_and_a_close() {
        for (input, status) in [
            (&b"\x16\x03\x01garbage\r\n\r\n"[..], "400"),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "400"),
            (b"GET / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", "413"),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "501",
            ),
        ] {
            let (a, out) = answer(http, input);
            assert_eq!(
                a,
                Answer::Reply {
                    consumed: input.len(),
                    close: true
                }
            );
            assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
        }
        let endless = [&b"GET / HTTP/1.1\r\nX: "[..], &[b'a'; MAX_REQUEST]].concat();
        assert!(answer(http, &endless).1.starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn resp_ping_pong_in_both_forms() {
        let array = b"*1\r\n$4\r\nPING\r\n";
        prefixes_need_more(resp, array);
        assert_eq!(
            answer(resp, array),
            (
                Answer::Reply {
                    consumed: 14,
                    close: false
                },
                "+PONG\r\n".into()
            )
        );
        prefixes_need_more(resp, b"PING\r\n");
        assert_eq!(
            answer(resp, b"ping\r\n"),
            (
                Answer::Reply {
                    consumed: 6,
                    close: false
                },
                "+PONG\r\n".into()
            )
        );
        let (_, out) = answer(resp, b"*2\r\n$4\r\nPING\r\n$5\r\nhe\r\no\r\n");
        assert_eq!(out, "$5\r\nhe\r\no\r\n");
        let (_, out) = answer(resp, b"PING a b\r\n");
        assert!(out.starts_with("-ERR wrong number of arguments"));
    }

    #[test]
    fn resp_other_commands_are_errors_quit_closes() {
        let (a, out) = answer(resp, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(
            a,
            Answer::Reply {
                consumed: 20,
                close: false
            }
        );
        assert_eq!(out, "-ERR unknown command 'GET'\r\n");
        assert_eq!(
            answer(resp, b"QUIT\r\n"),
            (
                Answer::Reply {
                    consumed: 6,
                    close: true
                },
                "+OK\r\n".into()
            )
        );
        assert_eq!(
            answer(resp, b"\r\n"),
            (
                Answer::Reply {
                    consumed: 2,
                    close: false
                },
                String::new()
            )
        );
        // Pipelined: one command at a time.
        let (a, _) = answer(resp, b"PING\r\nPING\r\n");
        assert_eq!(
            a,
            Answer::Reply {
                consumed: 6,
                close: false
            }
        );
    }

    #[test]
    fn bad_resp_is_a_protocol_error_and_a_close() {
        for (input, why) in [
            (&b"*x\r\n"[..], "invalid multibulk length"),
            (b"*2000\r\n", "invalid multibulk length"),
            (b"*1\r\n+PING\r\n", "expected '$'"),
            (b"*1\r\n$-5\r\n", "invalid bulk length"),
            (b"*1\r\n$4\r\nPINGxx", "not followed by CRLF"),
        ] {
            let (a, out) = answer(resp, input);
            assert_eq!(
                a,
                Answer::Reply {
                    consumed: input.len(),
                    close: true
                },
                "{out}"
            );
            assert!(
                out.starts_with("-ERR Protocol error") && out.contains(why),
                "{out}"
            );
        }
        let endless = vec![b'x'; MAX_REQUEST + 1];
        assert!(answer(resp, &endless).1.contains("too big request"));
    }

    #[test]
    fn the_client_decoders_frame_what_the_responders_answer() {
        use crate::load::proto::{HttpSpec, Method, Progress, Protocol, RespSpec};
        let p = Protocol::Http(HttpSpec::new(Method::Get, "/", "h", &[], None).unwrap());
        for (last, closes) in [(false, false), (true, true)] {
            let mut req = Vec::new();
            p.request(0, last, true, &mut req);
            let mut out = Vec::new();
            let a = http(&req, &mut out);
            assert_eq!(
                a,
                Answer::Reply {
                    consumed: req.len(),
                    close: closes
                }
            );
            let mut d = p.decoder(1 << 20);
            d.reset();
            assert_eq!(
                d.feed(&out),
                Ok(Progress::Complete {
                    consumed: out.len(),
                    extra: 0
                })
            );
            assert_eq!(d.peer_closes(), closes);
        }
        for p in [
            Protocol::Resp(RespSpec::ping()),
            Protocol::Resp(RespSpec::command("PING hi").unwrap()),
        ] {
            let mut req = Vec::new();
            p.request(0, true, false, &mut req);
            let mut out = Vec::new();
            assert_eq!(
                resp(&req, &mut out),
                Answer::Reply {
                    consumed: req.len(),
                    close: false
                }
            );
            let mut d = p.decoder(1 << 20);
            d.reset();
            assert_eq!(
                d.feed(&out),
                Ok(Progress::Complete {
                    consumed: out.len(),
                    extra: 0
                })
            );
        }
    }
}
