//! Verification of XEdDSA signatures, the scheme Signal clients use to sign their signed prekey
//! with their Curve25519 identity key.
//!
//! The identity key is a Montgomery u-coordinate; it is mapped to the Edwards point with
//! y = (u − 1)/(u + 1) and the signature checked as Ed25519. Clients in the wild differ in two
//! details, and all of them must keep working: whether they signed the 33-byte prefixed prekey
//! (libsignal) or the bare 32 bytes, and which sign bit the Edwards key has (XEdDSA stores it in
//! the top bit of the signature's last byte, which must be cleared before verifying).

use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{Signature as EdSignature, Verifier as _, VerifyingKey};

use super::keys::{PublicKey, Signature};

/// True when `signature` is a valid XEdDSA signature by `identity` over `signed` (either its
/// 33-byte serialized form or its bare 32-byte key).
#[must_use]
pub fn verify_signed_pre_key(identity: &PublicKey, signed: &PublicKey, signature: &Signature) -> bool {
    let mut sig = *signature.as_bytes();
    sig[63] &= 0x7f;
    let sig = EdSignature::from_bytes(&sig);
    let u = MontgomeryPoint(identity.montgomery_bytes());
    let bare = signed.montgomery_bytes();
    let messages: [&[u8]; 2] = [signed.as_bytes(), &bare];
    [0u8, 1].into_iter().filter_map(|sign| u.to_edwards(sign)).any(|point| {
        VerifyingKey::from_bytes(&point.compress().to_bytes())
            .is_ok_and(|key| messages.iter().any(|m| key.verify(m, &sig).is_ok()))
    })
}
