//! Registration, login, refresh-token rotation and logout.

use std::sync::Arc;

use tracing::instrument;

use super::passwords::Passwords;
use super::prekeys::PreKeys;
use super::tokens::{hash_refresh, Tokens};
use super::ServiceError;
use crate::domain::ids::UserId;
use crate::domain::keys::{Identity, OneTimePreKey, SignedPreKey};
use crate::domain::username::Username;
use crate::ports::clock::Clock;
use crate::ports::store::{AccountStore, NewAccount, Rotation};
use crate::telemetry::metrics as m;

/// Shortest accepted password, in bytes.
pub const MIN_PASSWORD_BYTES: usize = 12;
/// Longest accepted password, in bytes (hashing is deliberately expensive).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A registration after decoding.
#[derive(Debug, Clone)]
pub struct Registration {
    pub username: String,
    pub password: String,
    pub identity: Identity,
    pub signed_pre_key: SignedPreKey,
    pub one_time_pre_keys: Vec<OneTimePreKey>,
}

/// What a client gets when it signs in.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: UserId,
    pub access_token: String,
    pub refresh_token: String,
    /// Unix seconds at which the access token expires.
    pub expires_at: i64,
}

/// Account use cases.
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    prekeys: Arc<PreKeys>,
    passwords: Passwords,
    tokens: Arc<Tokens>,
    clock: Arc<dyn Clock>,
}

impl Accounts {
    #[must_use]
    pub fn new(
        store: Arc<dyn AccountStore>,
        prekeys: Arc<PreKeys>,
        passwords: Passwords,
        tokens: Arc<Tokens>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, prekeys, passwords, tokens, clock }
    }

    /// Creates an account with its keys and signs it in.
    #[instrument(skip_all, fields(one_time = registration.one_time_pre_keys.len()))]
    pub async fn register(&self, registration: Registration) -> Result<Session, ServiceError> {
        let username = Username::parse(&registration.username)?;
        check_password(&registration.password)?;
        self.prekeys.check_key_set(
            &registration.identity.key,
            &registration.signed_pre_key,
            &registration.one_time_pre_keys,
        )?;
        let password_hash = self.passwords.hash(registration.password).await?;
        let (refresh_token, stored_refresh) = self.tokens.new_refresh();
        let user = UserId::random();
        let created = self
            .store
            .create_account(NewAccount {
                id: user,
                username,
                password_hash,
                identity: registration.identity,
                signed_pre_key: registration.signed_pre_key,
                one_time_pre_keys: registration.one_time_pre_keys,
                refresh_token: stored_refresh,
                created_at: self.clock.now(),
            })
            .await?;
        if !created {
            return Err(ServiceError::UsernameTaken);
        }
        metrics::counter!(m::REGISTRATIONS).increment(1);
        self.session(user, refresh_token)
    }

    /// Checks a password and opens a new session.
    #[instrument(skip_all)]
    pub async fn login(&self, username: &str, password: String) -> Result<Session, ServiceError> {
        let found = match Username::parse(username) {
            Ok(name) => self.store.credentials(&name).await?,
            Err(_) => None,
        };
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), Some(hash)),
            None => (None, None),
        };
        let matches = self.passwords.verify(password, hash).await?;
        let user = user.filter(|_| matches).ok_or(ServiceError::Unauthorized)?;
        let (refresh_token, stored) = self.tokens.new_refresh();
        self.store.insert_refresh_token(user, stored, self.clock.now()).await?;
        metrics::counter!(m::LOGINS).increment(1);
        self.session(user, refresh_token)
    }

    /// Exchanges a live refresh token for a new session; a spent one revokes them all.
    #[instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, ServiceError> {
        let (new_token, stored) = self.tokens.new_refresh();
        match self.store.rotate_refresh_token(&hash_refresh(refresh_token), stored, self.clock.now()).await? {
            Rotation::Rotated(user) => {
                metrics::counter!(m::TOKEN_REFRESHES).increment(1);
                self.session(user, new_token)
            }
            Rotation::Reused(user) => {
                tracing::warn!(user = %user, "spent refresh token presented; all sessions revoked");
                metrics::counter!(m::REFRESH_TOKEN_REUSE).increment(1);
                Err(ServiceError::Unauthorized)
            }
            Rotation::Invalid => Err(ServiceError::Unauthorized),
        }
    }

    /// Forgets one of the user's refresh tokens.
    #[instrument(skip_all, fields(user = %user))]
    pub async fn logout(&self, user: UserId, refresh_token: &str) -> Result<(), ServiceError> {
        self.store.revoke_refresh_token(user, &hash_refresh(refresh_token)).await?;
        metrics::counter!(m::LOGOUTS).increment(1);
        Ok(())
    }

    fn session(&self, user: UserId, refresh_token: String) -> Result<Session, ServiceError> {
        let access = self.tokens.issue_access(user)?;
        Ok(Session { user, access_token: access.token, refresh_token, expires_at: access.expires_at })
    }
}

fn check_password(password: &str) -> Result<(), ServiceError> {
    if password.len() < MIN_PASSWORD_BYTES {
        return Err(ServiceError::PasswordTooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ServiceError::PasswordTooLong);
    }
    Ok(())
}
