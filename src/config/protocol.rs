//! What each connection speaks (`--protocol`), as plain data: the request's settings and
//! the response's end rule, validated by [`crate::cli::resolve`], serialized into the
//! report's `config`, and turned into a codec by `load::proto`.

use serde::{Deserialize, Serialize};

/// The default of `--max-response`: 1 MiB.
pub const DEFAULT_MAX_RESPONSE: usize = 1 << 20;

/// The protocol of a run, with its settings. Reports written before protocols existed have
/// none: they were `echo`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProtocolConfig {
    /// `--payload` bytes out, the same bytes back, verified byte for byte.
    #[default]
    Echo,
    /// HTTP/1.1 GET requests, keep-alive between them.
    Http(HttpConfig),
    /// One Redis command per exchange.
    Resp(RespConfig),
    /// Fixed bytes out, and an end rule for what comes back.
    Raw(RawConfig),
}

impl ProtocolConfig {
    /// The `--protocol` value that names it.
    pub fn name(&self) -> &'static str {
        match self {
            ProtocolConfig::Echo => "echo",
            ProtocolConfig::Http(_) => "http",
            ProtocolConfig::Resp(_) => "resp",
            ProtocolConfig::Raw(_) => "raw",
        }
    }

    pub fn is_echo(&self) -> bool {
        matches!(self, ProtocolConfig::Echo)
    }
}

/// `--http-path`, `--http-host`, `--http-header`, `--http-expect-status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HttpConfig {
    pub path: String,
    /// The Host header; `None`: the target's address as connected to.
    pub host: Option<String>,
    /// Extra request headers, each `Name: value`.
    pub headers: Vec<String>,
    /// The status every response must have; `None`: any status below 400.
    pub expect_status: Option<u16>,
}

/// `--resp-command`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RespConfig {
    /// The command line, as redis-cli takes it; `None`: the inline `PING`.
    pub command: Option<String>,
}

/// `--send` and the end rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RawConfig {
    /// The request's bytes, written as `hex:..` (a valid `--send` value).
    #[serde(with = "hex")]
    #[schemars(with = "String")]
    pub send: Vec<u8>,
    pub end: RawEndConfig,
}

/// When a raw response is complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawEndConfig {
    /// `--expect-bytes N`.
    Bytes(u64),
    /// `--expect TEXT`: the response starts with these bytes (written as `hex:..`).
    Prefix(
        #[serde(with = "hex")]
        #[schemars(with = "String")]
        Vec<u8>,
    ),
    /// `--expect-close`: everything up to the server's FIN.
    Close,
}

/// What the embedded server (and `serve`) answers.
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ServerProtocol {
    /// Every byte back as it came.
    #[default]
    Echo,
    /// `200 OK` with a small body to every HTTP/1.x request.
    Http,
    /// `+PONG` to PING, an error reply to other commands (RESP2).
    Resp,
}

impl std::fmt::Display for ServerProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::write_value(self, f)
    }
}

/// Bytes as `hex:` and two hex digits each, in reports.
mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(4 + 2 * bytes.len());
        text.push_str("hex:");
        for b in bytes {
            text.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text
            .strip_prefix("hex:")
            .ok_or_else(|| serde::de::Error::custom("bytes are written as hex:.."))?;
        if digits.len() % 2 == 1 {
            return Err(serde::de::Error::custom("an odd number of hex digits"));
        }
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_json_and_bytes_are_hex() {
        let raw = ProtocolConfig::Raw(RawConfig {
            send: b"PING\r\n".to_vec(),
            end: RawEndConfig::Prefix(b"+PONG".to_vec()),
        });
        let json = serde_json::to_string(&raw).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"raw","send":"hex:50494e470d0a","end":{"prefix":"hex:2b504f4e47"}}"#
        );
        assert_eq!(serde_json::from_str::<ProtocolConfig>(&json).unwrap(), raw);
        let http = ProtocolConfig::Http(HttpConfig {
            path: "/x".into(),
            host: None,
            headers: vec!["A: b".into()],
            expect_status: Some(204),
        });
        let json = serde_json::to_string(&http).unwrap();
        assert_eq!(serde_json::from_str::<ProtocolConfig>(&json).unwrap(), http);
        assert_eq!(
            serde_json::to_string(&ProtocolConfig::Echo).unwrap(),
            r#"{"kind":"echo"}"#
        );
        assert!(serde_json::from_str::<RawConfig>(r#"{"send":"50","end":"close"}"#).is_err());
    }
}
