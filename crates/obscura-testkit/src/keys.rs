//! Real Signal-style key material: Curve25519 identity keys that sign prekeys with XEdDSA,
//! exactly as libsignal clients do.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use rand::RngCore as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha512};

/// A Curve25519 key pair that can produce XEdDSA signatures.
#[derive(Clone)]
pub struct IdentityKeyPair {
    secret: [u8; 32],
    /// 0x05 || Montgomery u-coordinate.
    pub public: [u8; 33],
}

impl IdentityKeyPair {
    #[must_use]
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let secret = clamp_integer(secret);
        let u = MontgomeryPoint::mul_base_clamped(secret);
        let mut public = [0u8; 33];
        public[0] = 0x05;
        public[1..].copy_from_slice(u.as_bytes());
        Self { secret, public }
    }

    #[must_use]
    pub fn public_b64(&self) -> String {
        STANDARD.encode(self.public)
    }

    /// XEdDSA signature of `message` (Signal's specification, with random nonce input).
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut a = Scalar::from_bytes_mod_order(self.secret);
        let mut big_a = &a * ED25519_BASEPOINT_TABLE;
        if big_a.compress().as_bytes()[31] & 0x80 != 0 {
            a = -a;
            big_a = -big_a;
        }
        let mut z = [0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut z);
        let mut prefix = [0xffu8; 32];
        prefix[0] = 0xfe;
        let r =
            wide(Sha512::new().chain_update(prefix).chain_update(a.as_bytes()).chain_update(message).chain_update(z));
        let big_r = (&r * ED25519_BASEPOINT_TABLE).compress();
        let h = wide(
            Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(big_a.compress().as_bytes())
                .chain_update(message),
        );
        let s = r + h * a;
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(big_r.as_bytes());
        signature[32..].copy_from_slice(s.as_bytes());
        signature
    }
}

fn wide(hasher: Sha512) -> Scalar {
    let digest: [u8; 64] = hasher.finalize().into();
    Scalar::from_bytes_mod_order_wide(&digest)
}

/// A random 33-byte public key (0x05 prefix) for prekeys nobody needs to use.
#[must_use]
pub fn random_public_key() -> [u8; 33] {
    IdentityKeyPair::generate().public
}

/// An identity with a signed prekey and one-time prekeys, ready to publish.
#[derive(Clone)]
pub struct KeySet {
    pub identity: IdentityKeyPair,
    pub registration_id: i32,
    pub signed_pre_key_id: i32,
    pub signed_pre_key: [u8; 33],
    pub signature: [u8; 64],
    pub one_time: Vec<(i32, [u8; 33])>,
}

impl KeySet {
    /// A new identity with signed prekey `spk_id` and one-time keys `ids`.
    #[must_use]
    pub fn generate(spk_id: i32, ids: impl IntoIterator<Item = i32>) -> Self {
        let identity = IdentityKeyPair::generate();
        Self::for_identity(identity, spk_id, ids)
    }

    /// New prekeys for an existing identity.
    #[must_use]
    pub fn for_identity(identity: IdentityKeyPair, spk_id: i32, ids: impl IntoIterator<Item = i32>) -> Self {
        let signed_pre_key = random_public_key();
        let signature = identity.sign(&signed_pre_key);
        Self {
            identity,
            registration_id: 123,
            signed_pre_key_id: spk_id,
            signed_pre_key,
            signature,
            one_time: ids.into_iter().map(|id| (id, random_public_key())).collect(),
        }
    }

    #[must_use]
    pub fn signed_pre_key_json(&self) -> Value {
        json!({
            "keyId": self.signed_pre_key_id,
            "publicKey": STANDARD.encode(self.signed_pre_key),
            "signature": STANDARD.encode(self.signature),
        })
    }

    #[must_use]
    pub fn one_time_json(&self) -> Value {
        Value::Array(
            self.one_time.iter().map(|(id, key)| json!({"keyId": id, "publicKey": STANDARD.encode(key)})).collect(),
        )
    }

    /// The body of `POST /v1/users`.
    #[must_use]
    pub fn registration_json(&self, username: &str, password: &str) -> Value {
        json!({
            "username": username,
            "password": password,
            "identityKey": self.identity.public_b64(),
            "registrationId": self.registration_id,
            "signedPreKey": self.signed_pre_key_json(),
            "oneTimePreKeys": self.one_time_json(),
        })
    }

    /// The body of `POST /v1/keys`, with or without the identity (takeover vs refill).
    #[must_use]
    pub fn upload_json(&self, with_identity: bool) -> Value {
        let mut body = json!({
            "signedPreKey": self.signed_pre_key_json(),
            "oneTimePreKeys": self.one_time_json(),
        });
        if with_identity {
            body["identityKey"] = json!(self.identity.public_b64());
            body["registrationId"] = json!(self.registration_id);
        }
        body
    }
}
