//! Real-time conversation events: subscription tickets, where a subscription starts (its
//! cursor), the pages of events it reads, GroupInfo refresh requests, and the wake-ups that
//! tell subscriptions on every replica to read again.
//!
//! A ticket is a short HS256 token naming the subscriber (and the conversation it may filter
//! on), signed with a key derived from the server's JWT secret so every replica can check it,
//! and spent once through the shared TTL cache. Events themselves are durable (the event
//! store); wake-ups carry nothing and a lost one only delays a session until its next poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::convos::group_id;
use super::MlsError;
use crate::domain::did::Did;
use crate::domain::time::UnixMillis;
use crate::ports::clock::Clock;
use crate::ports::mls::PageBudget;
use crate::ports::mls::{EventPage, EventStore, Visible};
use crate::ports::notifier::{Notifier, Subscription};
use crate::ports::store::StoreError;
use crate::ports::ttl_cache::TtlCache;

/// The audience of subscription tickets: the method they open.
const TICKET_AUDIENCE: &str = "blue.catbird.mls.subscribeConvoEvents";

/// Limits of the event stream.
#[derive(Debug, Clone, Copy)]
pub struct EventSettings {
    /// How long a ticket may wait before it is used.
    pub ticket_ttl: Duration,
    /// Events read (and sent) per page, in count and bytes.
    pub page: PageBudget,
    /// How long events are kept for resuming subscriptions.
    pub replay_window: Duration,
    /// Open subscriptions per user on one replica.
    pub max_connections_per_user: usize,
}

/// Why a subscription cannot start (each becomes an error frame).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the ticket is not one this server issued")]
    InvalidTicket,
    #[error("the ticket has expired; get a new one")]
    ExpiredTicket,
    #[error("the ticket has been used; get a new one for every connection")]
    TicketUsed,
    #[error("the ticket is for another conversation")]
    ConvoMismatch,
    #[error("the cursor is not one this server issued")]
    InvalidCursor,
    #[error("the cursor is ahead of the stream")]
    FutureCursor,
    #[error("events after this cursor have been deleted; catch up with getMessages and subscribe without a cursor")]
    OutdatedCursor,
    #[error("at most {0} subscriptions per user")]
    TooManyConnections(usize),
    #[error("temporarily unavailable")]
    Unavailable(String),
}

impl From<StoreError> for StreamError {
    fn from(err: StoreError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

/// A signed subscription ticket.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub token: String,
    pub expires_at: UnixMillis,
}

#[derive(Serialize, Deserialize)]
struct TicketClaims {
    sub: String,
    aud: String,
    exp: i64,
    jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    convo: Option<String>,
}

/// Who a redeemed ticket lets in, and what it may filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub did: Did,
    /// Only this conversation's events.
    pub convo: Option<String>,
}

/// A ticket that verified and has not been spent yet.
#[derive(Debug, Clone)]
pub struct CheckedTicket {
    pub subscriber: Subscriber,
    jti: String,
    ttl: Duration,
}

/// One open subscription of a user; dropping it frees the place.
pub struct Slot {
    open: Arc<Mutex<HashMap<Did, usize>>>,
    did: Did,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.did) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.did);
            }
        }
    }
}

/// Tells the subscriptions of a conversation's members, on every replica, to read again.
pub struct EventWaker {
    store: Arc<dyn EventStore>,
    notifier: Arc<dyn Notifier>,
}

impl EventWaker {
    #[must_use]
    pub fn new(store: Arc<dyn EventStore>, notifier: Arc<dyn Notifier>) -> Self {
        Self { store, notifier }
    }

    /// Wakes the current members of `convo` and `also` (someone who just left). Never fails
    /// the caller: the events are stored, and sessions poll if a wake-up is lost.
    pub async fn wake(&self, convo: &str, also: &[Did]) {
        let mut members = match self.store.audience(convo).await {
            Ok(members) => members,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read whom to wake; subscriptions will poll");
                also.to_vec()
            }
        };
        members.extend(also.iter().cloned());
        if let Err(err) = self.notifier.publish_members(&members).await {
            tracing::debug!(error = %err, "member wake-up not published");
        }
    }
}

/// The event stream's use cases.
pub struct ConvoEvents {
    store: Arc<dyn EventStore>,
    waker: Arc<EventWaker>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    spent: Arc<dyn TtlCache>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    open: Arc<Mutex<HashMap<Did, usize>>>,
    settings: EventSettings,
}

impl ConvoEvents {
    /// `secret` is the server's JWT secret; tickets are signed with a key derived from it.
    #[must_use]
    pub fn new(
        store: Arc<dyn EventStore>,
        waker: Arc<EventWaker>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        spent: Arc<dyn TtlCache>,
        secret: &[u8],
        settings: EventSettings,
    ) -> Self {
        let key = Sha256::new().chain_update(b"obscura mls subscription ticket\0").chain_update(secret).finalize();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[TICKET_AUDIENCE]);
        // Expiry is checked against our clock below, not the system's.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["sub", "aud", "exp"]);
        Self {
            store,
            waker,
            notifier,
            clock,
            spent,
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
            open: Arc::default(),
            settings,
        }
    }

    /// `getSubscriptionTicket`: a single-use ticket for the caller, limited to `convo` (of
    /// which the caller must be a member) when given.
    pub async fn issue_ticket(&self, caller: &Did, convo: Option<String>) -> Result<Ticket, MlsError> {
        let convo = convo.as_deref().map(group_id).transpose()?;
        if let Some(convo) = &convo {
            match self.store.membership(convo, caller).await? {
                Visible::Found(()) => {}
                Visible::ConvoNotFound => return Err(MlsError::ConvoNotFound),
                Visible::NotMember => return Err(MlsError::NotMember),
            }
        }
        let expires_at = self.clock.now().plus(self.settings.ticket_ttl);
        let claims = TicketClaims {
            sub: caller.to_string(),
            aud: TICKET_AUDIENCE.to_owned(),
            exp: expires_at.as_secs().saturating_add(1),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            convo,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| crate::services::ServiceError::Internal(format!("ticket signing: {e}")))?;
        Ok(Ticket { token, expires_at })
    }

    /// Checks a ticket without spending it. `convo` is the filter the subscriber asked for,
    /// which must agree with the ticket's.
    pub fn check_ticket(&self, token: &str, convo: Option<&str>) -> Result<CheckedTicket, StreamError> {
        let claims = jsonwebtoken::decode::<TicketClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| StreamError::InvalidTicket)?
            .claims;
        let did = Did::parse(&claims.sub).map_err(|_| StreamError::InvalidTicket)?;
        let now = self.clock.now();
        if now.as_secs() >= claims.exp {
            return Err(StreamError::ExpiredTicket);
        }
        // An id that is not one is a filter nothing matches, so it cannot agree with the ticket.
        let asked = convo.map(|c| group_id(c).map_err(|_| StreamError::ConvoMismatch)).transpose()?;
        let convo = match (claims.convo, asked) {
            (Some(bound), Some(asked)) if bound != asked => return Err(StreamError::ConvoMismatch),
            (bound, asked) => bound.or(asked),
        };
        let left = u64::try_from(claims.exp.saturating_sub(now.as_secs())).unwrap_or(1).max(1);
        Ok(CheckedTicket { subscriber: Subscriber { did, convo }, jti: claims.jti, ttl: Duration::from_secs(left) })
    }

    /// Spends a checked ticket: only its first use succeeds, on any replica.
    pub async fn spend_ticket(&self, ticket: CheckedTicket) -> Result<Subscriber, StreamError> {
        let first = self
            .spent
            .insert_new(&format!("mls-ticket:{}", ticket.jti), ticket.ttl)
            .await
            .map_err(|e| StreamError::Unavailable(e.to_string()))?;
        if !first {
            return Err(StreamError::TicketUsed);
        }
        Ok(ticket.subscriber)
    }

    /// Takes one of the user's subscription places on this replica.
    pub fn occupy(&self, did: &Did) -> Result<Slot, StreamError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(did.clone()).or_insert(0);
        if *count >= self.settings.max_connections_per_user {
            return Err(StreamError::TooManyConnections(self.settings.max_connections_per_user));
        }
        *count += 1;
        Ok(Slot { open: Arc::clone(&self.open), did: did.clone() })
    }

    /// Where a subscription starts: after `cursor`, or at the newest event (live events only).
    pub async fn start(&self, cursor: Option<&str>) -> Result<u64, StreamError> {
        let bounds = self.store.event_bounds().await?;
        let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
            return Ok(bounds.head);
        };
        let position: u64 = cursor.parse().map_err(|_| StreamError::InvalidCursor)?;
        if position > bounds.head {
            return Err(StreamError::FutureCursor);
        }
        if position < bounds.purged_through {
            return Err(StreamError::OutdatedCursor);
        }
        Ok(position)
    }

    /// Wake-ups for the subscriber; take it before the first read so nothing falls between.
    #[must_use]
    pub fn listen(&self, subscriber: &Subscriber) -> Subscription {
        self.notifier.subscribe_member(&subscriber.did)
    }

    /// The subscriber's next events after `after`.
    pub async fn page(&self, subscriber: &Subscriber, after: u64) -> Result<EventPage, StoreError> {
        self.store.events_for(&subscriber.did, subscriber.convo.as_deref(), after, self.settings.page).await
    }

    /// `groupInfoRefresh`: asks the other members for a fresh GroupInfo. Returns how many
    /// members hear it.
    pub async fn request_group_info_refresh(&self, caller: &Did, convo: &str) -> Result<u64, MlsError> {
        let convo = &group_id(convo)?;
        match self.store.request_group_info_refresh(convo, caller, self.clock.now()).await? {
            Visible::Found(members) => {
                self.waker.wake(convo, &[]).await;
                Ok(members)
            }
            Visible::ConvoNotFound => Err(MlsError::ConvoNotFound),
            Visible::NotMember => Err(MlsError::NotMember),
        }
    }

    /// Deletes up to `batch` events older than the replay window; returns how many.
    pub async fn purge_old(&self, batch: u32) -> Result<u64, StoreError> {
        let before = self.clock.now().minus(self.settings.replay_window);
        self.store.delete_old_events(before, batch).await
    }
}
