//! Public key material of the Signal protocol as the relay stores it, and the decoding rules
//! (standard padded base64, 33-byte keys with the 0x05 type prefix, 64-byte signatures) whose
//! error texts clients already know.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::ids::PreKeyId;

/// Type byte libsignal puts in front of a 32-byte Curve25519 public key.
pub const DJB_KEY_TYPE: u8 = 0x05;
/// Length of a serialized public key: type byte + 32 bytes.
pub const PUBLIC_KEY_LEN: usize = 33;
/// Length of an XEdDSA signature.
pub const SIGNATURE_LEN: usize = 64;

/// Why key material in a request was refused. The texts are the reference server's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Not standard, canonically padded base64.
    #[error("{0}")]
    Base64(#[from] base64::DecodeError),
    #[error("Invalid key length: {0} (expected 33 bytes with 0x05 prefix)")]
    KeyLength(usize),
    #[error("Invalid key prefix (expected 0x05)")]
    KeyPrefix,
    #[error("Invalid signature length: {0} (expected 64)")]
    SignatureLength(usize),
}

/// A 33-byte Curve25519 public key with its 0x05 prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Decodes the wire form (base64 of 33 bytes).
    pub fn from_base64(text: &str) -> Result<Self, KeyFormatError> {
        Self::from_bytes(&STANDARD.decode(text)?)
    }

    /// Checks length and prefix of raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyFormatError> {
        let array: [u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| KeyFormatError::KeyLength(bytes.len()))?;
        if array[0] != DJB_KEY_TYPE {
            return Err(KeyFormatError::KeyPrefix);
        }
        Ok(Self(array))
    }

    /// The serialized form, prefix included.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// The 32-byte Montgomery u-coordinate, without the prefix.
    #[must_use]
    pub fn montgomery_bytes(&self) -> [u8; 32] {
        let mut u = [0u8; 32];
        u.copy_from_slice(&self.0[1..]);
        u
    }

    /// Standard padded base64 of the serialized form.
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// A 64-byte XEdDSA signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// Decodes the wire form (base64 of 64 bytes).
    pub fn from_base64(text: &str) -> Result<Self, KeyFormatError> {
        Self::from_bytes(&STANDARD.decode(text)?)
    }

    /// Checks the length of raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyFormatError> {
        bytes.try_into().map(Self).map_err(|_| KeyFormatError::SignatureLength(bytes.len()))
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }

    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", self.to_base64())
    }
}

/// A user's long-term identity: the key and the Signal registration id published with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub key: PublicKey,
    pub registration_id: i32,
}

/// A medium-term prekey signed by the identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedPreKey {
    pub id: PreKeyId,
    pub public_key: PublicKey,
    pub signature: Signature,
}

/// A single-use prekey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneTimePreKey {
    pub id: PreKeyId,
    pub public_key: PublicKey,
}

/// What another user needs to start a session with a user: handed out once per fetch, with at
/// most one one-time key, which the fetch consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreKeyBundle {
    pub identity: Identity,
    pub signed_pre_key: SignedPreKey,
    pub one_time_pre_key: Option<OneTimePreKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_need_33_bytes_and_the_0x05_prefix() {
        let good = STANDARD.encode([5u8; 33]);
        assert!(PublicKey::from_base64(&good).is_ok());
        let short = STANDARD.encode([5u8; 32]);
        assert_eq!(
            PublicKey::from_base64(&short).map_err(|e| e.to_string()),
            Err("Invalid key length: 32 (expected 33 bytes with 0x05 prefix)".to_owned())
        );
        let mut wrong = [5u8; 33];
        wrong[0] = 6;
        assert_eq!(PublicKey::from_base64(&STANDARD.encode(wrong)), Err(KeyFormatError::KeyPrefix));
    }

    #[test]
    fn base64_must_be_standard_and_padded() {
        let url_safe = "-_-_".repeat(11);
        assert!(matches!(PublicKey::from_base64(&url_safe), Err(KeyFormatError::Base64(_))));
        let unpadded = STANDARD.encode([5u8; 33]).trim_end_matches('=').to_owned() + "A";
        assert!(PublicKey::from_base64(&unpadded).is_err());
    }

    #[test]
    fn signatures_need_64_bytes() {
        assert!(Signature::from_base64(&STANDARD.encode([0u8; 64])).is_ok());
        assert_eq!(
            Signature::from_base64(&STANDARD.encode([0u8; 63])).map_err(|e| e.to_string()),
            Err("Invalid signature length: 63 (expected 64)".to_owned())
        );
    }
}
