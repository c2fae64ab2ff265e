//! Binary fields of XRPC bodies. Lexicon `bytes` travel as `{"$bytes": "<base64>"}` (the
//! message and commit fields to come); several lexicon fields are plain base64 strings. Both
//! are read leniently (standard or URL-safe alphabet, padded or not); `bytes` are written as
//! standard unpadded base64 (the ATProto form), string fields the lexicon calls base64url as
//! unpadded base64url.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_ANY: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Decodes base64 in either alphabet, with or without padding.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD_ANY.decode(text).or_else(|_| URL_SAFE_ANY.decode(text)).ok()
}

/// Standard unpadded base64.
#[must_use]
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD_NO_PAD.encode(bytes)
}

/// Unpadded base64url, for the lexicon string fields documented as base64url.
#[must_use]
pub fn encode_base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A lexicon `bytes` value: `{"$bytes": "..."}` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LexBytes(pub Vec<u8>);

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(rename = "$bytes", borrow)]
    bytes: std::borrow::Cow<'a, str>,
}

impl Serialize for LexBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire { bytes: encode_base64(&self.0).into() }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LexBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        decode_base64(&wire.bytes).map(Self).ok_or_else(|| serde::de::Error::custom("$bytes is not base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_accept_padded_unpadded_and_url_safe_base64() {
        for text in ["+/8=", "+/8", "-_8=", "-_8"] {
            let json = format!(r#"{{"$bytes":"{text}"}}"#);
            let bytes: LexBytes = serde_json::from_str(&json).unwrap();
            assert_eq!(bytes.0, [0xfb, 0xff], "{text}");
        }
        assert_eq!(serde_json::to_string(&LexBytes(vec![0xfb, 0xff])).unwrap(), r#"{"$bytes":"+/8"}"#);
        assert!(serde_json::from_str::<LexBytes>(r#"{"$bytes":"not base64!"}"#).is_err());
        assert!(serde_json::from_str::<LexBytes>(r#""AAAA""#).is_err());
        assert_eq!(decode_base64("AAE="), Some(vec![0, 1]));
        assert_eq!(decode_base64("AAE"), Some(vec![0, 1]));
    }
}
