//! `--protocol echo`: the request is the payload, and the response is the same bytes back.

use std::sync::Arc;

use super::{Progress, ProtoError};

/// A payload of `len` bytes in a repeating pattern, so a wrong echo is detected byte for
/// byte.
pub fn pattern(len: usize) -> Arc<[u8]> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The payload every request sends, shared by all the workers of a run.
#[derive(Clone, Debug)]
pub struct EchoSpec {
    payload: Arc<[u8]>,
}

impl EchoSpec {
    pub fn new(payload: Arc<[u8]>) -> EchoSpec {
        EchoSpec { payload }
    }

    pub fn payload(&self) -> &Arc<[u8]> {
        &self.payload
    }

    pub(super) fn request(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.payload);
    }
}

/// Compares what comes back with the payload as it arrives.
#[derive(Debug)]
pub struct EchoDecoder {
    payload: Arc<[u8]>,
    /// Payload bytes matched so far.
    got: usize,
}

impl EchoDecoder {
    pub(super) fn new(spec: &EchoSpec) -> EchoDecoder {
        EchoDecoder {
            payload: spec.payload.clone(),
            got: 0,
        }
    }

    pub(super) fn reset(&mut self) {
        self.got = 0;
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<Progress, ProtoError> {
        let want = (self.payload.len() - self.got).min(bytes.len());
        if bytes[..want] != self.payload[self.got..self.got + want] {
            return Err(ProtoError::Mismatch);
        }
        self.got += want;
        Ok(if self.got == self.payload.len() {
            Progress::complete(want, bytes.len())
        } else {
            Progress::NeedMore
        })
    }

    pub(super) fn eof(&mut self) -> Result<Progress, ProtoError> {
        if self.got == self.payload.len() {
            Ok(Progress::Complete {
                consumed: 0,
                extra: 0,
            })
        } else {
            Err(ProtoError::Closed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::same_in_every_split;
    use super::super::{Decoder, Protocol};
    use super::*;

    fn echo(payload: &[u8]) -> (Protocol, Decoder) {
        let p = Protocol::Echo(EchoSpec::new(payload.into()));
        let d = p.decoder(1 << 20);
        (p, d)
    }

    #[test]
    fn the_request_is_the_payload_and_its_echo_completes() {
        let (p, mut d) = echo(b"hello");
        let mut buf = Vec::new();
        p.request(0, true, false, &mut buf);
        assert_eq!(buf, b"hello");
        same_in_every_split(&mut d, b"hello", false, &Ok(Some(5)));
    }

    #[test]
    fn bytes_after_the_echo_are_extra() {
        let (_, mut d) = echo(b"abc");
        assert_eq!(
            d.feed(b"abcab").unwrap(),
            Progress::Complete {
                consumed: 3,
                extra: 2
            }
        );
        d.reset();
        assert_eq!(d.feed(b"ab").unwrap(), Progress::NeedMore);
    }

    #[test]
    fn a_wrong_byte_is_a_mismatch_and_a_short_echo_is_closed() {
        let (_, mut d) = echo(b"abcdef");
        same_in_every_split(&mut d, b"abXdef", false, &Err(ProtoError::Mismatch));
        same_in_every_split(&mut d, b"abc", true, &Err(ProtoError::Closed));
    }

    #[test]
    fn an_empty_payload_is_complete_at_once() {
        let (_, mut d) = echo(b"");
        d.reset();
        assert_eq!(
            d.feed(b"").unwrap(),
            Progress::Complete {
                consumed: 0,
                extra: 0
            }
        );
    }
}
