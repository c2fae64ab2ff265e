//! Namespaced identifiers of XRPC methods (`blue.catbird.mls.sendMessage`), checked with the
//! ATProto syntax so a garbage path segment is told apart from a method we do not implement.

use std::fmt;

/// Longest NSID accepted (the ATProto limit).
const MAX_NSID_LEN: usize = 317;

/// Why a string is not an NSID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid NSID: {0}")]
pub struct NsidError(&'static str);

/// A reversed-domain authority followed by a name, at least three segments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nsid(String);

impl Nsid {
    /// Checks the syntax: domain segments of letters, digits and inner hyphens (the first
    /// starting with a letter), then a name of letters and digits starting with a letter.
    pub fn parse(text: &str) -> Result<Self, NsidError> {
        if text.len() > MAX_NSID_LEN {
            return Err(NsidError("longer than 317 characters"));
        }
        let segments: Vec<&str> = text.split('.').collect();
        let Some((name, authority)) = segments.split_last() else {
            return Err(NsidError("empty"));
        };
        if authority.len() < 2 {
            return Err(NsidError("needs at least three segments"));
        }
        for (i, segment) in authority.iter().enumerate() {
            let bytes = segment.as_bytes();
            let well_formed = (1..=63).contains(&bytes.len())
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && !segment.starts_with('-')
                && !segment.ends_with('-')
                && (i > 0 || bytes.first().is_some_and(u8::is_ascii_alphabetic));
            if !well_formed {
                return Err(NsidError("malformed domain segment"));
            }
        }
        let name_ok = (1..=63).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric())
            && name.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
        if !name_ok {
            return Err(NsidError("malformed name"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The NSID as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Nsid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_method_names() {
        for good in ["blue.catbird.mls.sendMessage", "com.atproto.sync.getRepo", "a-b.c.d3"] {
            assert!(Nsid::parse(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn refuses_malformed_names() {
        for bad in
            ["", "sendMessage", "a.b", "blue..mls.x", "-a.b.c", "blue.catbird.mls.send-Message", "1a.b.c", "a.b.1c"]
        {
            assert!(Nsid::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
