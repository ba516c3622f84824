//! A histogram that serializes as HdrHistogram's standard compressed V2 form in base64, the
//! form HdrHistogram's own log tools read, so reports merge and re-analyse losslessly.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize, Serializer};

/// A latency histogram in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Hdr(pub Histogram<u64>);

impl Hdr {
    /// The base64 of the compressed V2 encoding.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .expect("serializing into memory does not fail");
        STANDARD.encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Hdr, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| format!("hdr is not base64: {e}"))?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map(Hdr)
            .map_err(|e| format!("hdr is not an HdrHistogram V2 encoding: {e:?}"))
    }
}

impl Serialize for Hdr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Hdr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hdr, D::Error> {
        let text = String::deserialize(d)?;
        Hdr::decode(&text).map_err(serde::de::Error::custom)
    }
}

/// In a JSON Schema: a string, the base64 of the compressed V2 encoding.
impl schemars::JsonSchema for Hdr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Hdr".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "contentEncoding": "base64",
            "description": "An HdrHistogram of nanoseconds in the compressed V2 encoding, base64."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn round_trips_losslessly() {
        let mut h = new_histogram();
        for v in [1u64, 15_300, 15_300, 67_000, 163_000, 1_000_000_000] {
            h.record(v).unwrap();
        }
        let back = Hdr::decode(&Hdr(h.clone()).encode()).unwrap();
        assert_eq!(back.0.len(), h.len());
        assert_eq!(back.0.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back.0.max(), h.max());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Hdr::decode("not base64!").is_err());
        assert!(Hdr::decode("aGVsbG8=").is_err());
    }
}
