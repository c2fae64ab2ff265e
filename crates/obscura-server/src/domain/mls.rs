//! MLS vocabulary of the Delivery Service: cipher suites by their lexicon names, member
//! identities (`did` or `did#device`, the MLS credential's identity), and KeyPackage
//! validation. Validation runs `openmls` on public data only: signatures, lifetime, cipher
//! suite, credential identity. Nothing here decrypts.

use std::fmt;

use openmls::prelude::tls_codec::DeserializeBytes as _;
use openmls::prelude::{BasicCredential, KeyPackageIn, MlsMessageBodyIn, ProtocolVersion};
use openmls_rust_crypto::RustCrypto;
use sha2::{Digest as _, Sha256};

use super::did::Did;
use super::mls_wire;
use super::time::UnixMillis;

/// The cipher suites of RFC 9420 by lexicon name; only those we can verify signatures of are
/// accepted (Ed25519 and P-256 suites).
const SUITES: [(u16, &str, bool); 6] = [
    (1, "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519", true),
    (2, "MLS_128_DHKEMP256_AES128GCM_SHA256_P256", true),
    (3, "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519", true),
    (4, "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448", false),
    (5, "MLS_256_DHKEMP521_AES256GCM_SHA512_P521", false),
    (6, "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448", false),
];

/// A supported MLS cipher suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CipherSuite(u16);

impl CipherSuite {
    /// The suite with this lexicon name, if we support it.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        SUITES.iter().find(|(_, n, ok)| *ok && *n == name).map(|(id, _, _)| Self(*id))
    }

    /// The suite with this RFC 9420 code point, if we support it.
    #[must_use]
    pub fn from_id(id: u16) -> Option<Self> {
        SUITES.iter().find(|(i, _, ok)| *ok && *i == id).map(|(id, _, _)| Self(*id))
    }

    #[must_use]
    pub fn id(self) -> u16 {
        self.0
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        SUITES.iter().find(|(id, _, _)| *id == self.0).map_or("unknown", |(_, name, _)| name)
    }
}

/// Longest device id inside a credential identity.
const MAX_DEVICE_LEN: usize = 64;

/// Whether `text` can name a device: `[A-Za-z0-9._-]{1,64}`, the form it takes in a credential
/// identity (server-made device ids are UUIDs, which fit).
#[must_use]
pub fn is_device_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_DEVICE_LEN
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Who an MLS leaf is: a user's DID and, for multi-device users, the device (the credential
/// identity `did#device`; empty for a single-device `did`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberIdentity {
    pub did: Did,
    pub device: String,
}

impl MemberIdentity {
    /// Reads a credential identity: `did` or `did#device` with a device of
    /// `[A-Za-z0-9._-]{1,64}`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (did, device) = match text.split_once('#') {
            Some((did, device)) => (did, device),
            None => (text, ""),
        };
        let device_ok = if text.contains('#') { is_device_id(device) } else { device.is_empty() };
        if !device_ok {
            return None;
        }
        Some(Self { did: Did::parse(did).ok()?, device: device.to_owned() })
    }
}

impl fmt::Display for MemberIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.device.is_empty() {
            write!(f, "{}", self.did)
        } else {
            write!(f, "{}#{}", self.did, self.device)
        }
    }
}

/// Why a KeyPackage was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyPackageError {
    #[error("not an MLS KeyPackage")]
    Malformed,
    #[error("KeyPackage does not verify: {0}")]
    Invalid(String),
    #[error("cipher suite {0} is not supported")]
    UnsupportedSuite(u16),
    #[error("KeyPackage is for {actual}, not the declared {declared}")]
    SuiteMismatch { declared: &'static str, actual: &'static str },
    #[error("credential is not a basic credential naming the caller's DID")]
    WrongIdentity,
    #[error("KeyPackage lifetime has ended or not begun")]
    NotCurrentlyValid,
    #[error("credential names a registered device that has another signature key")]
    WrongDevice,
}

/// A KeyPackage that passed validation, with what the server keeps about it.
#[derive(Debug, Clone)]
pub struct ValidKeyPackage {
    pub identity: MemberIdentity,
    pub suite: CipherSuite,
    /// The MLS KeyPackageRef (RFC 9420 §5.2): how Welcomes name their recipients.
    pub key_ref: Vec<u8>,
    /// Hex SHA-256 of the bytes as uploaded: the lexicons' `keyPackageHash`.
    pub sha256: String,
    pub last_resort: bool,
    /// End of the KeyPackage's own lifetime.
    pub not_after: UnixMillis,
    /// The leaf's signature public key: which MLS client (device) made the package.
    pub signature_key: Vec<u8>,
}

/// Runs a parser of client bytes so that a panic inside the MLS library (a bug there, or one
/// of its debug assertions) is a refused input, never a dropped connection.
fn guarded<T>(parse: impl FnOnce() -> Result<T, KeyPackageError>) -> Result<T, KeyPackageError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(parse)).unwrap_or(Err(KeyPackageError::Malformed))
}

/// Hex SHA-256 of `bytes`.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Parses `bytes` (a bare KeyPackage or one wrapped in an MLSMessage) and checks it: both
/// signatures, protocol version, distinct init and encryption keys, supported suite equal to
/// `declared` when given, a basic credential whose identity is `caller` (or `caller#device`),
/// and a lifetime that contains `now`.
pub fn validate_key_package(
    bytes: &[u8],
    caller: &Did,
    declared: Option<CipherSuite>,
    now: UnixMillis,
) -> Result<ValidKeyPackage, KeyPackageError> {
    let crypto = RustCrypto::default();
    let key_package = guarded(|| {
        // Both forms start with the protocol version; then an MLSMessage has its wire format
        // (5 = key package) where a bare KeyPackage has its cipher suite (5 is one we refuse).
        // Every claimed length is checked against the input before openmls, whose decoders
        // allocate what a length claims (see `mls_wire`), reads it.
        let key_package_in = if bytes.get(2..4) == Some(&[0, 5]) {
            if !mls_wire::mls_message(bytes).is_ok_and(<[u8]>::is_empty) {
                return Err(KeyPackageError::Malformed);
            }
            let (version, body) =
                ProtocolVersion::tls_deserialize_bytes(bytes).map_err(|_| KeyPackageError::Malformed)?;
            match MlsMessageBodyIn::tls_deserialize_exact_bytes(body) {
                Ok(MlsMessageBodyIn::KeyPackage(kp)) if version == ProtocolVersion::Mls10 => kp,
                _ => return Err(KeyPackageError::Malformed),
            }
        } else {
            mls_wire::bare_key_package(bytes).map_err(|_| KeyPackageError::Malformed)?;
            KeyPackageIn::tls_deserialize_exact_bytes(bytes).map_err(|_| KeyPackageError::Malformed)?
        };
        key_package_in.validate(&crypto, ProtocolVersion::Mls10).map_err(|e| KeyPackageError::Invalid(e.to_string()))
    })?;
    let suite_id = u16::from(key_package.ciphersuite());
    let suite = CipherSuite::from_id(suite_id).ok_or(KeyPackageError::UnsupportedSuite(suite_id))?;
    if let Some(declared) = declared.filter(|d| *d != suite) {
        return Err(KeyPackageError::SuiteMismatch { declared: declared.name(), actual: suite.name() });
    }
    let credential = BasicCredential::try_from(key_package.leaf_node().credential().clone())
        .map_err(|_| KeyPackageError::WrongIdentity)?;
    let identity = std::str::from_utf8(credential.identity())
        .ok()
        .and_then(MemberIdentity::parse)
        .filter(|identity| identity.did == *caller)
        .ok_or(KeyPackageError::WrongIdentity)?;
    let lifetime = key_package.life_time();
    let to_millis = |secs: u64| UnixMillis(i64::try_from(secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000));
    let (not_before, not_after) = (to_millis(lifetime.not_before()), to_millis(lifetime.not_after()));
    if now < not_before || now >= not_after {
        return Err(KeyPackageError::NotCurrentlyValid);
    }
    let key_ref = key_package.hash_ref(&crypto).map_err(|e| KeyPackageError::Invalid(e.to_string()))?;
    Ok(ValidKeyPackage {
        identity,
        suite,
        key_ref: key_ref.as_slice().to_vec(),
        sha256: sha256_hex(bytes),
        last_resort: key_package.last_resort(),
        not_after,
        signature_key: key_package.leaf_node().signature_key().as_slice().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_are_known_by_name_and_code_point() {
        let suite = CipherSuite::from_name("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519").unwrap();
        assert_eq!((suite.id(), CipherSuite::from_id(1)), (1, Some(suite)));
        assert_eq!(CipherSuite::from_name("MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448"), None);
        assert_eq!(CipherSuite::from_name("nonsense"), None);
    }

    #[test]
    fn member_identities_are_a_did_with_an_optional_device() {
        let plain = MemberIdentity::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz").unwrap();
        assert_eq!(plain.device, "");
        let device = MemberIdentity::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz#phone-1").unwrap();
        assert_eq!((device.device.as_str(), device.to_string().ends_with("#phone-1")), ("phone-1", true));
        for bad in ["did:plc:abc#", "did:plc:abc#a b", "not-a-did#x", "did:plc:abc#a#b"] {
            assert_eq!(MemberIdentity::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn garbage_is_not_a_key_package() {
        let did = Did::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz").unwrap();
        assert_eq!(
            validate_key_package(b"\x00\x01garbage", &did, None, UnixMillis(0)).err(),
            Some(KeyPackageError::Malformed)
        );
    }
}
