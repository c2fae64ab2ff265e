//! The public signing keys of ATProto identities (K-256 and P-256, as published in DID
//! documents) and the signature rule we enforce for them: 64-byte `r || s` ECDSA over SHA-256,
//! and only the low-S form on both curves, so a signature cannot be re-encoded into a second
//! valid one (the ATProto cryptography rules; high-S signatures are refused, not normalised).

use k256::ecdsa::signature::Verifier as _;

/// Multicodec prefixes (unsigned varints) of compressed public keys.
const SECP256K1_PUB: [u8; 2] = [0xe7, 0x01];
const P256_PUB: [u8; 2] = [0x80, 0x24];

/// Why a published key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is not base58btc multibase ('z...')")]
    NotMultibase,
    #[error("key type is neither secp256k1 nor P-256")]
    UnsupportedKeyType,
    #[error("key is not a valid curve point")]
    InvalidPoint,
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature is not 64 bytes of r || s")]
    Malformed,
    #[error("signature is in high-S form")]
    HighS,
    #[error("signature does not match")]
    Mismatch,
}

/// The JWS algorithm a key signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// secp256k1 (`ES256K`).
    Es256k,
    /// NIST P-256 (`ES256`).
    Es256,
}

/// A verification key of an ATProto identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtprotoKey {
    K256(k256::ecdsa::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl AtprotoKey {
    /// Decodes a `Multikey` value: `z` + base58btc(multicodec prefix + compressed point).
    pub fn from_multikey(multibase: &str) -> Result<Self, KeyError> {
        let bytes = decode_multibase(multibase)?;
        if let Some(point) = bytes.strip_prefix(&SECP256K1_PUB) {
            return Self::from_sec1(KeyAlg::Es256k, point);
        }
        if let Some(point) = bytes.strip_prefix(&P256_PUB) {
            return Self::from_sec1(KeyAlg::Es256, point);
        }
        Err(KeyError::UnsupportedKeyType)
    }

    /// Decodes a legacy verification method (`EcdsaSecp256k1VerificationKey2019`,
    /// `EcdsaSecp256r1VerificationKey2019`): multibase of the bare SEC1 point.
    pub fn from_legacy(alg: KeyAlg, multibase: &str) -> Result<Self, KeyError> {
        Self::from_sec1(alg, &decode_multibase(multibase)?)
    }

    /// A key from its SEC1 encoding (compressed or not).
    pub fn from_sec1(alg: KeyAlg, point: &[u8]) -> Result<Self, KeyError> {
        match alg {
            KeyAlg::Es256k => {
                k256::ecdsa::VerifyingKey::from_sec1_bytes(point).map(Self::K256).map_err(|_| KeyError::InvalidPoint)
            }
            KeyAlg::Es256 => {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map(Self::P256).map_err(|_| KeyError::InvalidPoint)
            }
        }
    }

    /// The algorithm this key verifies.
    #[must_use]
    pub fn alg(&self) -> KeyAlg {
        match self {
            Self::K256(_) => KeyAlg::Es256k,
            Self::P256(_) => KeyAlg::Es256,
        }
    }

    /// The `Multikey` encoding of this key (compressed point).
    #[must_use]
    pub fn to_multikey(&self) -> String {
        let (prefix, point) = match self {
            Self::K256(key) => (SECP256K1_PUB, key.to_encoded_point(true).as_bytes().to_vec()),
            Self::P256(key) => (P256_PUB, key.to_encoded_point(true).as_bytes().to_vec()),
        };
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(&point);
        format!("z{}", bs58::encode(bytes).into_string())
    }

    /// Checks a 64-byte `r || s` signature of `message` (hashed with SHA-256).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match self {
            Self::K256(key) => {
                let sig = k256::ecdsa::Signature::from_slice(signature).map_err(|_| SignatureError::Malformed)?;
                if sig.normalize_s().is_some() {
                    return Err(SignatureError::HighS);
                }
                key.verify(message, &sig).map_err(|_| SignatureError::Mismatch)
            }
            Self::P256(key) => {
                let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|_| SignatureError::Malformed)?;
                if sig.normalize_s().is_some() {
                    return Err(SignatureError::HighS);
                }
                key.verify(message, &sig).map_err(|_| SignatureError::Mismatch)
            }
        }
    }
}

fn decode_multibase(multibase: &str) -> Result<Vec<u8>, KeyError> {
    let base58 = multibase.strip_prefix('z').ok_or(KeyError::NotMultibase)?;
    bs58::decode(base58).into_vec().map_err(|_| KeyError::NotMultibase)
}

#[cfg(test)]
mod tests {
    use k256::ecdsa::signature::Signer as _;

    use super::*;

    #[test]
    fn multikeys_round_trip_for_both_curves() {
        let k = k256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let p = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        for key in [AtprotoKey::K256(*k.verifying_key()), AtprotoKey::P256(*p.verifying_key())] {
            assert_eq!(AtprotoKey::from_multikey(&key.to_multikey()), Ok(key));
        }
        let k256_multikey = AtprotoKey::K256(*k.verifying_key()).to_multikey();
        assert!(k256_multikey.starts_with("zQ3s"), "secp256k1 multikeys start with zQ3s: {k256_multikey}");
    }

    #[test]
    fn high_s_signatures_are_refused_on_both_curves() {
        let k = k256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let sig: k256::ecdsa::Signature = k.sign(b"payload");
        let key = AtprotoKey::K256(*k.verifying_key());
        assert_eq!(key.verify(b"payload", &sig.to_bytes()), Ok(()));
        let (r, s) = sig.split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        assert_eq!(key.verify(b"payload", &high.to_bytes()), Err(SignatureError::HighS));
        assert_eq!(key.verify(b"other", &sig.to_bytes()), Err(SignatureError::Mismatch));

        let p = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let sig: p256::ecdsa::Signature = p.sign(b"payload");
        let sig = sig.normalize_s().unwrap_or(sig);
        let key = AtprotoKey::P256(*p.verifying_key());
        assert_eq!(key.verify(b"payload", &sig.to_bytes()), Ok(()));
        let (r, s) = sig.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        assert_eq!(key.verify(b"payload", &high.to_bytes()), Err(SignatureError::HighS));
    }

    #[test]
    fn unknown_key_types_are_refused() {
        let ed25519 = format!("z{}", bs58::encode([0xed, 0x01, 1, 2, 3]).into_string());
        assert_eq!(AtprotoKey::from_multikey(&ed25519), Err(KeyError::UnsupportedKeyType));
        assert_eq!(AtprotoKey::from_multikey("uABC"), Err(KeyError::NotMultibase));
    }
}
