//! Prekey publication and bundle hand-out. Checks every upload (duplicates, batch size, the
//! XEdDSA signature) before the store applies it atomically, and ends every session of a user
//! whose device was taken over.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::instrument;

use super::ServiceError;
use crate::domain::ids::UserId;
use crate::domain::keys::{Identity, OneTimePreKey, PreKeyBundle, PublicKey, SignedPreKey};
use crate::domain::xeddsa::verify_signed_pre_key;
use crate::ports::clock::Clock;
use crate::ports::notifier::{Notifier, UserEvent};
use crate::ports::store::{IdentityUpdate, KeyUpload, KeyUploadOutcome, KeyUploadRejection, PreKeyStore};
use crate::telemetry::metrics as m;

/// A `POST /v1/keys` request after decoding.
#[derive(Debug, Clone)]
pub struct KeyUploadRequest {
    pub identity_key: Option<PublicKey>,
    pub registration_id: Option<i32>,
    pub signed_pre_key: SignedPreKey,
    pub one_time_pre_keys: Vec<OneTimePreKey>,
}

/// Prekey use cases.
pub struct PreKeys {
    store: Arc<dyn PreKeyStore>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    max_one_time_keys: u32,
}

impl PreKeys {
    #[must_use]
    pub fn new(
        store: Arc<dyn PreKeyStore>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        max_one_time_keys: u32,
    ) -> Self {
        Self { store, notifier, clock, max_one_time_keys }
    }

    /// Checks a key set as registration and upload both require: no repeated one-time key id,
    /// a signed prekey signed by `identity`, no more one-time keys than allowed.
    pub fn check_key_set(
        &self,
        identity: &PublicKey,
        signed: &SignedPreKey,
        one_time: &[OneTimePreKey],
    ) -> Result<(), ServiceError> {
        let mut seen = HashSet::with_capacity(one_time.len());
        if let Some(dup) = one_time.iter().find(|k| !seen.insert(k.id)) {
            return Err(ServiceError::DuplicatePreKeyId(dup.id));
        }
        if !verify_signed_pre_key(identity, &signed.public_key, &signed.signature) {
            return Err(ServiceError::InvalidSignature);
        }
        if one_time.len() > self.max_one_time_keys as usize {
            return Err(ServiceError::TooManyPreKeys { limit: self.max_one_time_keys });
        }
        Ok(())
    }

    /// Refills one-time keys, rotates the signed prekey, or takes the account over for a new
    /// identity key (deleting old keys and pending messages, closing every session).
    #[instrument(skip_all, fields(user = %user, one_time = request.one_time_pre_keys.len()))]
    pub async fn upload(&self, user: UserId, request: KeyUploadRequest) -> Result<(), ServiceError> {
        let identity = match (request.identity_key, request.registration_id) {
            (Some(_), None) => return Err(ServiceError::RegistrationIdRequired),
            (Some(key), Some(registration_id)) => IdentityUpdate::Set(Identity { key, registration_id }),
            (None, _) => {
                let stored = self.store.identity(user).await?.ok_or(ServiceError::IdentityKeyMissing)?;
                IdentityUpdate::Keep(stored.key)
            }
        };
        let signer = match identity {
            IdentityUpdate::Keep(key) => key,
            IdentityUpdate::Set(identity) => identity.key,
        };
        self.check_key_set(&signer, &request.signed_pre_key, &request.one_time_pre_keys)?;
        let upload = KeyUpload {
            identity,
            signed_pre_key: request.signed_pre_key,
            one_time_pre_keys: request.one_time_pre_keys,
            max_one_time_keys: self.max_one_time_keys,
            now: self.clock.now(),
        };
        match self.store.apply_key_upload(user, upload).await? {
            Ok(KeyUploadOutcome::Refilled) => Ok(()),
            Ok(KeyUploadOutcome::TakenOver { messages_deleted }) => {
                metrics::counter!(m::KEY_TAKEOVERS).increment(1);
                tracing::info!(messages_deleted, "device takeover");
                if let Err(err) = self.notifier.publish(user, UserEvent::Disconnect).await {
                    tracing::warn!(error = %err, "takeover disconnect not published");
                }
                Ok(())
            }
            Err(KeyUploadRejection::IdentityChanged) => Err(ServiceError::IdentityChanged),
            Err(KeyUploadRejection::SignedPreKeyNotNewer { new, current }) => {
                Err(ServiceError::SignedPreKeyNotNewer { new, current })
            }
        }
    }

    /// A bundle of `target` for `requester`, consuming one one-time key.
    #[instrument(skip_all, fields(requester = %requester, target = %target))]
    pub async fn take_bundle(&self, requester: UserId, target: UserId) -> Result<PreKeyBundle, ServiceError> {
        let bundle = self.store.take_bundle(target).await?.ok_or(ServiceError::NotFound)?;
        if bundle.one_time_pre_key.is_none() {
            metrics::counter!(m::PREKEYS_EXHAUSTED).increment(1);
        }
        Ok(bundle)
    }
}
