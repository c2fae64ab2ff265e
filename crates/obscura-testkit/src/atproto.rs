//! ATProto identities for tests: a random `did:plc` with a K-256 or P-256 key, minting the
//! inter-service JWTs a PDS would (fresh `jti`, `lxm`, short `exp`), plus raw signing so tests
//! can forge every kind of bad token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use k256::ecdsa::signature::Signer as _;
use obscura_server::domain::atproto_key::AtprotoKey;
use rand::Rng as _;
use serde_json::{json, Value};

/// Which curve an identity signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// secp256k1, `ES256K` (what PDSes use for accounts).
    K256,
    /// NIST P-256, `ES256`.
    P256,
}

#[derive(Clone)]
enum SigningKey {
    K256(k256::ecdsa::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

/// A user's identity: DID and signing key.
#[derive(Clone)]
pub struct AtprotoIdentity {
    pub did: String,
    key: SigningKey,
}

/// Unix seconds now (tests run the server on the system clock).
#[must_use]
#[expect(clippy::disallowed_methods, reason = "tokens are checked against the server's system clock")]
pub fn now_secs() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()).unwrap()
}

/// A random `did:plc` identifier (24 base32 characters).
#[must_use]
pub fn random_plc_did() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut rng = rand::thread_rng();
    let id: String = (0..24).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect();
    format!("did:plc:{id}")
}

impl AtprotoIdentity {
    /// A fresh identity with a random `did:plc`.
    #[must_use]
    pub fn generate(curve: Curve) -> Self {
        Self::with_did(random_plc_did(), curve)
    }

    /// A fresh key for a given DID.
    #[must_use]
    pub fn with_did(did: String, curve: Curve) -> Self {
        let mut rng = rand::rngs::OsRng;
        let key = match curve {
            Curve::K256 => SigningKey::K256(k256::ecdsa::SigningKey::random(&mut rng)),
            Curve::P256 => SigningKey::P256(p256::ecdsa::SigningKey::random(&mut rng)),
        };
        Self { did, key }
    }

    /// The same DID with a new key (a key rotation).
    #[must_use]
    pub fn rotated(&self) -> Self {
        Self::with_did(self.did.clone(), self.curve())
    }

    #[must_use]
    pub fn curve(&self) -> Curve {
        match self.key {
            SigningKey::K256(_) => Curve::K256,
            SigningKey::P256(_) => Curve::P256,
        }
    }

    /// The JWS `alg` of this identity.
    #[must_use]
    pub fn alg(&self) -> &'static str {
        match self.curve() {
            Curve::K256 => "ES256K",
            Curve::P256 => "ES256",
        }
    }

    /// The public key as a `Multikey` value for a DID document.
    #[must_use]
    pub fn multikey(&self) -> String {
        match &self.key {
            SigningKey::K256(k) => AtprotoKey::K256(*k.verifying_key()).to_multikey(),
            SigningKey::P256(k) => AtprotoKey::P256(*k.verifying_key()).to_multikey(),
        }
    }

    /// A 64-byte low-S `r || s` signature of `message`; `high_s` flips it to the other form.
    #[must_use]
    pub fn sign(&self, message: &[u8], high_s: bool) -> Vec<u8> {
        match &self.key {
            SigningKey::K256(k) => {
                let sig: k256::ecdsa::Signature = k.sign(message);
                let sig = sig.normalize_s().unwrap_or(sig);
                let sig = if high_s {
                    let (r, s) = sig.split_scalars();
                    k256::ecdsa::Signature::from_scalars(r, -*s).unwrap()
                } else {
                    sig
                };
                sig.to_bytes().to_vec()
            }
            SigningKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                let sig = sig.normalize_s().unwrap_or(sig);
                let sig = if high_s {
                    let (r, s) = sig.split_scalars();
                    p256::ecdsa::Signature::from_scalars(r, -*s).unwrap()
                } else {
                    sig
                };
                sig.to_bytes().to_vec()
            }
        }
    }

    /// The claims a PDS puts in a service token for `aud` and method `lxm`.
    #[must_use]
    pub fn claims(&self, aud: &str, lxm: &str) -> Value {
        let now = now_secs();
        json!({
            "iss": self.did,
            "aud": aud,
            "lxm": lxm,
            "iat": now,
            "exp": now + 60,
            "jti": format!("{:032x}", rand::random::<u128>()),
        })
    }

    /// A token with arbitrary claims, signed with this identity's algorithm.
    #[must_use]
    pub fn sign_claims(&self, claims: &Value) -> String {
        self.sign_token(&json!({"alg": self.alg(), "typ": "JWT"}), claims, false)
    }

    /// A token with an arbitrary header and claims.
    #[must_use]
    pub fn sign_token(&self, header: &Value, claims: &Value, high_s: bool) -> String {
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.sign(input.as_bytes(), high_s);
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A fresh, valid service token.
    #[must_use]
    pub fn service_token(&self, aud: &str, lxm: &str) -> String {
        self.sign_claims(&self.claims(aud, lxm))
    }
}

/// An HS256 development-mode token with `claims`.
#[must_use]
pub fn dev_token(secret: &str, claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), claims, &key).unwrap()
}
