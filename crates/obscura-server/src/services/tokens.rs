//! Access tokens (HS256 JWTs with `sub` and `exp`; an `nbf`, when present, is honoured) and
//! opaque refresh tokens, which are stored as SHA-256 hashes so a database leak does not leak
//! sessions. A genuine token whose user has no account (a restored database, another server
//! with the same secret) is refused like a forged one, by one primary-key lookup per request.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::ServiceError;
use crate::domain::ids::UserId;
use crate::ports::clock::Clock;
use crate::ports::store::{AccountStore, NewRefreshToken, RefreshTokenHash};

/// Tolerated clock skew when checking `exp`, in seconds.
const EXP_LEEWAY_SECS: i64 = 60;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

/// A freshly issued access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    /// Unix seconds of `exp`.
    pub expires_at: i64,
}

/// Issues and verifies tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
    accounts: Arc<dyn AccountStore>,
    clock: Arc<dyn Clock>,
}

impl Tokens {
    #[must_use]
    pub fn new(
        secret: &[u8],
        access_ttl: Duration,
        refresh_ttl: Duration,
        accounts: Arc<dyn AccountStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` and `nbf` are checked against our clock port below, not the library's wall clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = ["exp".to_owned()].into();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
            accounts,
            clock,
        }
    }

    /// A new access token for `user`.
    pub fn issue_access(&self, user: UserId) -> Result<AccessToken, ServiceError> {
        let exp = self.clock.now().plus(self.access_ttl).as_secs();
        let claims = Claims { sub: user.to_string(), exp: u64::try_from(exp).unwrap_or(0), nbf: None };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(AccessToken { token, expires_at: exp })
    }

    /// The user an access token was issued to, if it is genuine, within its lifetime and the
    /// user has an account.
    pub async fn authenticate(&self, token: &str) -> Result<UserId, ServiceError> {
        let user = self.verify_access(token)?;
        if !self.accounts.user_exists(user).await? {
            return Err(ServiceError::Unauthorized);
        }
        Ok(user)
    }

    /// The user an access token was issued to, if it is genuine and within its lifetime (the
    /// account itself is not looked up: see `authenticate`).
    fn verify_access(&self, token: &str) -> Result<UserId, ServiceError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| ServiceError::Unauthorized)?;
        let now = self.clock.now().as_secs();
        let exp = i64::try_from(data.claims.exp).map_err(|_| ServiceError::Unauthorized)?;
        if exp.saturating_add(EXP_LEEWAY_SECS) < now {
            return Err(ServiceError::Unauthorized);
        }
        if let Some(nbf) = data.claims.nbf {
            let nbf = i64::try_from(nbf).map_err(|_| ServiceError::Unauthorized)?;
            if nbf > now.saturating_add(EXP_LEEWAY_SECS) {
                return Err(ServiceError::Unauthorized);
            }
        }
        data.claims.sub.parse().map_err(|_| ServiceError::Unauthorized)
    }

    /// A new random refresh token and what to store about it.
    #[must_use]
    pub fn new_refresh(&self) -> (String, NewRefreshToken) {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = URL_SAFE_NO_PAD.encode(raw);
        let stored =
            NewRefreshToken { hash: hash_refresh(&token), expires_at: self.clock.now().plus(self.refresh_ttl) };
        (token, stored)
    }
}

/// The stored form of a refresh token.
#[must_use]
pub fn hash_refresh(token: &str) -> RefreshTokenHash {
    RefreshTokenHash(hex::encode(Sha256::digest(token.as_bytes())))
}
