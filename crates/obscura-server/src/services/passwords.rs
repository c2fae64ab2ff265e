//! Password hashing with Argon2id on the blocking pool. Unknown users are checked against a
//! dummy hash so that login takes the same time whether or not the name exists.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::Argon2;

use super::ServiceError;

/// Hashes and verifies passwords (Argon2id, the crate's recommended parameters).
#[derive(Debug, Clone)]
pub struct Passwords {
    dummy_hash: String,
}

impl Passwords {
    /// Prepares the dummy hash used for unknown users.
    pub fn new() -> Result<Self, ServiceError> {
        Ok(Self { dummy_hash: hash_now("obscura-dummy-password")? })
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, ServiceError> {
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
    }

    /// True if `password` matches `stored`. With `stored = None` the same work is done
    /// against a dummy hash and the answer is false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ServiceError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| ServiceError::Internal(e.to_string()))?;
            Ok::<_, ServiceError>(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
        Ok(known && matches)
    }
}

fn hash_now(password: &str) -> Result<String, ServiceError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(e.to_string()))
}
