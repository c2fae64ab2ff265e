//! JSON shapes shared by several v1 endpoints, and their decoding into domain types.

use serde::{Deserialize, Serialize};

use crate::domain::ids::PreKeyId;
use crate::domain::keys::{KeyFormatError, OneTimePreKey, PublicKey, Signature, SignedPreKey};
use crate::services::accounts::Session;

/// `{"keyId", "publicKey", "signature"}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedPreKeyDto {
    pub key_id: i32,
    pub public_key: String,
    pub signature: String,
}

impl SignedPreKeyDto {
    pub fn decode(&self) -> Result<SignedPreKey, KeyFormatError> {
        Ok(SignedPreKey {
            id: PreKeyId(self.key_id),
            public_key: PublicKey::from_base64(&self.public_key)?,
            signature: Signature::from_base64(&self.signature)?,
        })
    }

    #[must_use]
    pub fn encode(key: &SignedPreKey) -> Self {
        Self { key_id: key.id.0, public_key: key.public_key.to_base64(), signature: key.signature.to_base64() }
    }
}

/// `{"keyId", "publicKey"}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OneTimePreKeyDto {
    pub key_id: i32,
    pub public_key: String,
}

impl OneTimePreKeyDto {
    #[must_use]
    pub fn encode(key: &OneTimePreKey) -> Self {
        Self { key_id: key.id.0, public_key: key.public_key.to_base64() }
    }
}

/// Decodes a list of one-time keys, stopping at the first bad one.
pub fn decode_one_time(keys: &[OneTimePreKeyDto]) -> Result<Vec<OneTimePreKey>, KeyFormatError> {
    keys.iter()
        .map(|k| Ok(OneTimePreKey { id: PreKeyId(k.key_id), public_key: PublicKey::from_base64(&k.public_key)? }))
        .collect()
}

/// Answer to register, login and refresh.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub token: String,
    pub refresh_token: String,
    pub expires_at: i64,
}

impl From<Session> for AuthResponse {
    fn from(session: Session) -> Self {
        Self { token: session.access_token, refresh_token: session.refresh_token, expires_at: session.expires_at }
    }
}
