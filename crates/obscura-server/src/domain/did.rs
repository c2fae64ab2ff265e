//! ATProto identities. A `Did` is parsed once at the edge with the ATProto syntax rules, so the
//! services only ever see well-formed identifiers; the fragment form `did#device` names one
//! device (one MLS client) of a user.

use std::fmt;

use serde::Serialize;

/// Longest DID accepted (the ATProto limit).
pub const MAX_DID_LEN: usize = 2048;

/// Why a string is not a DID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DID: {0}")]
pub struct DidError(&'static str);

/// A decentralised identifier such as `did:plc:ewvi7nxzyoun6zhxrhs64oiz` or `did:web:example.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Did(String);

impl Did {
    /// Checks the ATProto DID syntax: `did:<method>:<identifier>`, method of lowercase letters,
    /// identifier of `[A-Za-z0-9._:%-]` not ending in `:` or `%`.
    pub fn parse(text: &str) -> Result<Self, DidError> {
        if text.len() > MAX_DID_LEN {
            return Err(DidError("longer than 2048 characters"));
        }
        let rest = text.strip_prefix("did:").ok_or(DidError("must start with 'did:'"))?;
        let (method, identifier) = rest.split_once(':').ok_or(DidError("missing method"))?;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(DidError("method must be lowercase letters"));
        }
        if identifier.is_empty() || !identifier.bytes().all(|b| b.is_ascii_alphanumeric() || b".:_%-".contains(&b)) {
            return Err(DidError("identifier has characters outside [A-Za-z0-9._:%-]"));
        }
        if identifier.ends_with(':') || identifier.ends_with('%') {
            return Err(DidError("identifier must not end with ':' or '%'"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The DID as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The method (`plc`, `web`, ...).
    #[must_use]
    pub fn method(&self) -> &str {
        self.0.split(':').nth(1).unwrap_or_default()
    }

    /// Everything after `did:<method>:`.
    #[must_use]
    pub fn identifier(&self) -> &str {
        self.0.splitn(3, ':').nth(2).unwrap_or_default()
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Did {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plc_and_web_dids() {
        let plc = Did::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz").unwrap();
        assert_eq!((plc.method(), plc.identifier()), ("plc", "ewvi7nxzyoun6zhxrhs64oiz"));
        let web = Did::parse("did:web:mls.example.com%3A8443").unwrap();
        assert_eq!((web.method(), web.identifier()), ("web", "mls.example.com%3A8443"));
    }

    #[test]
    fn refuses_malformed_dids() {
        for bad in [
            "",
            "did:",
            "did:plc",
            "did:plc:",
            "DID:plc:abc",
            "did:PLC:abc",
            "did:plc:abc:",
            "did:plc:abc%",
            "did:plc:a b",
            "did:plc:abc#frag",
            "plc:abc",
        ] {
            assert!(Did::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Did::parse(&format!("did:plc:{}", "a".repeat(MAX_DID_LEN))).is_err());
    }
}
