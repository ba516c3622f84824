//! The protocol decoders under generated input: arbitrary bytes in arbitrary splits never
//! panic and give the outcome the whole input gives; well-formed HTTP responses and RESP
//! replies, however nested or framed, complete exactly at their last byte, also pipelined.
//!
//! Failing cases proptest finds are kept in tests/corpus/proto-regressions.txt and run
//! first on every later run.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use tcpbench::load::proto::{
    Decoder, EchoSpec, HttpSpec, Method, Progress, ProtoError, Protocol, RawEnd, RawSpec, RespSpec,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/corpus/proto-regressions.txt"
        )))),
        ..ProptestConfig::default()
    }
}

/// One protocol of each kind, with a small response limit so oversize paths are hit.
fn protocols() -> Vec<Protocol> {
    vec![
        Protocol::Echo(EchoSpec::new(b"abcdefgh"[..].into())),
        Protocol::Http(HttpSpec::new(Method::Get, "/", "h", &[], None).unwrap()),
        Protocol::Http(HttpSpec::new(Method::Head, "/", "h", &[], Some(204)).unwrap()),
        Protocol::Resp(RespSpec::ping()),
        Protocol::Raw(RawSpec::new(vec![], RawEnd::Bytes(7))),
        Protocol::Raw(RawSpec::new(vec![], RawEnd::Prefix(b"+OK"[..].into()))),
        Protocol::Raw(RawSpec::new(vec![], RawEnd::Close)),
    ]
}

/// Feeds `input` cut at `cuts` (positions, any order), then EOF when still incomplete;
/// returns the response's length or the error, checking `consumed + extra` on the way.
fn outcome(d: &mut Decoder, input: &[u8], cuts: &[usize]) -> Result<usize, ProtoError> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    at.push(input.len());
    at.sort_unstable();
    d.reset();
    let (mut from, mut taken) = (0, 0);
    for to in at {
        let chunk = &input[from..to];
        from = to;
        match d.feed(chunk)? {
            Progress::NeedMore => taken += chunk.len(),
            Progress::Complete { consumed, extra } => {
                assert_eq!(consumed + extra, chunk.len());
                return Ok(taken + consumed);
            }
        }
    }
    match d.eof()? {
        Progress::Complete {
            consumed: 0,
            extra: 0,
        } => Ok(taken),
        other => panic!("eof gave {other:?}"),
    }
}

/// A well-formed HTTP response: its bytes.
fn http_response() -> impl Strategy<Value = Vec<u8>> {
    let body = proptest::collection::vec(any::<u8>(), 0..300);
    let interim = proptest::collection::vec(prop_oneof![Just(100u16), Just(102), Just(103)], 0..3);
    let chunks = proptest::collection::vec(1usize..40, 0..6);
    (interim, 200u16..400, body, 0u8..3, chunks, any::<bool>()).prop_map(
        |(interim, status, body, framing, sizes, trailer)| {
            let mut out = Vec::new();
            for s in interim {
                out.extend_from_slice(format!("HTTP/1.1 {s} Interim\r\nX-I: 1\r\n\r\n").as_bytes());
            }
            let status = if matches!(status, 204 | 304) {
                200
            } else {
                status
            };
            out.extend_from_slice(
                format!("HTTP/1.1 {status} Whatever\r\nServer: t\r\n").as_bytes(),
            );
            match framing {
                0 => {
                    out.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                    );
                    out.extend_from_slice(&body);
                }
                1 => {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    let mut rest = &body[..];
                    for n in sizes {
                        let n = n.min(rest.len());
                        if n == 0 {
                            break;
                        }
                        out.extend_from_slice(format!("{n:x};e=1\r\n").as_bytes());
                        out.extend_from_slice(&rest[..n]);
                        out.extend_from_slice(b"\r\n");
                        rest = &rest[n..];
                    }
                    out.extend_from_slice(b"0\r\n");
                    if trailer {
                        out.extend_from_slice(b"X-Trailer: yes\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                }
                _ => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
            }
            out
        },
    )
}

/// A RESP2 value, nested up to four levels.
fn resp_value() -> impl Strategy<Value = Vec<u8>> {
    let text = "[a-zA-Z0-9 ]{0,20}";
    let leaf = prop_oneof![
        text.prop_map(|t| format!("+{t}\r\n").into_bytes()),
        any::<i64>().prop_map(|n| format!(":{n}\r\n").into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..50).prop_map(|b| {
            let mut v = format!("${}\r\n", b.len()).into_bytes();
            v.extend_from_slice(&b);
            v.extend_from_slice(b"\r\n");
            v
        }),
        Just(b"$-1\r\n".to_vec()),
        Just(b"*-1\r\n".to_vec()),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        proptest::collection::vec(inner, 0..6).prop_map(|items| {
            let mut v = format!("*{}\r\n", items.len()).into_bytes();
            for i in items {
                v.extend_from_slice(&i);
            }
            v
        })
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_in_any_split_never_panic_and_agree(
        input in proptest::collection::vec(any::<u8>(), 0..400),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        max in prop_oneof![Just(64usize), Just(1 << 20)],
    ) {
        for p in protocols() {
            let mut d = p.decoder(max);
            let whole = outcome(&mut d, &input, &[]);
            prop_assert_eq!(&outcome(&mut d, &input, &cuts), &whole, "{}", p.name());
        }
    }

    #[test]
    fn http_like_bytes_in_any_split_agree(
        head in "HTTP/1\\.[01] [0-9]{3} [A-Za-z]{0,6}\r\n([A-Za-z-]{1,12}: [ -~]{0,12}\r\n){0,4}(Transfer-Encoding: chunked\r\n|Content-Length: [0-9]{1,3}\r\n)?\r\n",
        body in "([0-9a-f]{1,3}(;x)?\r\n[a-z]{0,20}\r\n){0,3}(0\r\n)?([A-Za-z]{1,5}: v\r\n)?(\r\n)?",
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let input = format!("{head}{body}").into_bytes();
        let p = Protocol::Http(HttpSpec::new(Method::Get, "/", "h", &[], None).unwrap());
        let mut d = p.decoder(1 << 20);
        let whole = outcome(&mut d, &input, &[]);
        prop_assert_eq!(outcome(&mut d, &input, &cuts), whole);
    }

    #[test]
    fn well_formed_http_responses_complete_at_their_last_byte(
        first in http_response(),
        second in http_response(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let p = Protocol::Http(HttpSpec::new(Method::Get, "/", "h", &[], None).unwrap());
        let mut d = p.decoder(1 << 20);
        prop_assert_eq!(outcome(&mut d, &first, &cuts), Ok(first.len()));
        // Pipelined: the first completes with the second as its extra, which then decodes.
        let both = [&first[..], &second[..]].concat();
        d.reset();
        let done = d.feed(&both).unwrap();
        prop_assert_eq!(done, Progress::Complete { consumed: first.len(), extra: second.len() });
        prop_assert_eq!(outcome(&mut d, &second, &cuts), Ok(second.len()));
    }

    #[test]
    fn well_formed_resp_replies_complete_at_their_last_byte(
        first in resp_value(),
        second in resp_value(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut d = Protocol::Resp(RespSpec::ping()).decoder(1 << 20);
        prop_assert_eq!(outcome(&mut d, &first, &cuts), Ok(first.len()));
        let both = [&first[..], &second[..]].concat();
        d.reset();
        let done = d.feed(&both).unwrap();
        prop_assert_eq!(done, Progress::Complete { consumed: first.len(), extra: second.len() });
    }

    #[test]
    fn user_strings_give_a_value_or_an_error_naming_the_flag(s in "\\PC{0,40}") {
        if let Err(e) = tcpbench::load::proto::raw::parse_bytes("--send", &s) {
            prop_assert!(e.0.starts_with("--send"));
        }
        if let Err(e) = RespSpec::command(&s) {
            prop_assert!(e.0.starts_with("--resp-command"));
        }
        if let Err(e) = tcpbench::load::proto::http::parse_header(&s) {
            prop_assert!(e.0.starts_with("--http-header"));
        }
    }
}
