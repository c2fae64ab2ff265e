//! Wiring and lifecycle: the only module that names both adapters and services. `build` opens
//! the store, binds both listeners and assembles the services; `run` serves until the shutdown
//! future resolves, then drains in order: readiness turns 503, WebSocket sessions close with
//! 1001, in-flight requests finish, workers stop, the store closes — all within
//! `--shutdown-timeout-secs`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::serve::Listener as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapters::blobs::ObjectBlobStore;
use crate::adapters::clock::SystemClock;
use crate::adapters::did::cache::CachingResolver;
use crate::adapters::did::HttpResolver;
use crate::adapters::notifier::memory::LocalHub;
use crate::adapters::notifier::redis::RedisNotifier;
use crate::adapters::push_queue::memory::MemoryPushQueue;
use crate::adapters::push_queue::redis::RedisPushQueue;
use crate::adapters::rate_limit::redis::RedisRateLimiter;
use crate::adapters::redis_link::{LinkError, RedisLink};
use crate::adapters::store::{self, PoolOptions};
use crate::adapters::ttl_cache::memory::MemoryTtlCache;
use crate::adapters::ttl_cache::redis::RedisTtlCache;
use crate::config::Settings;
use crate::ports::blobs::BlobStore;
use crate::ports::clock::Clock;
use crate::ports::mls::{ConvoStore, KeyPackageStore};
use crate::ports::notifier::Notifier;
use crate::ports::push::{PushProvider, PushQueue};
use crate::ports::rate_limit::{Allowance, SharedRateLimiter};
use crate::ports::store::{AccountStore, MessageStore, Store};
use crate::ports::ttl_cache::TtlCache;
use crate::services::accounts::Accounts;
use crate::services::attachments::Attachments;
use crate::services::delivery::Delivery;
use crate::services::health::Health;
use crate::services::messaging::Messaging;
use crate::services::mls::blobs::ConvoBlobs;
use crate::services::mls::convos::Conversations;
use crate::services::mls::devices::Devices;
use crate::services::mls::events::{ConvoEvents, EventWaker};
use crate::services::mls::key_packages::KeyPackages;
use crate::services::orphans::{OrphanSweep, RecordedObjects};
use crate::services::passwords::Passwords;
use crate::services::prekeys::PreKeys;
use crate::services::push::PushTokens;
use crate::services::push_dispatch::{PushDispatch, PushTiming};
use crate::services::service_auth::ServiceAuth;
use crate::services::tokens::Tokens;
use crate::transport::connections::ConnectionSlots;
use crate::transport::listener::ApiListener;
use crate::transport::rate_limit::{IpTier, Limiter};
use crate::transport::serve::serve;
use crate::transport::tls::{self, ReloadableCert, TlsError};
use crate::transport::xrpc::proxy::DevProxy;
use crate::transport::xrpc::{MlsServices, StreamSettings, XrpcState};
use crate::transport::{api_router, mgmt::mgmt_router, AppState, RateLimits};
use crate::workers::{self, expiry};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("database: {0}")]
    Store(#[from] crate::ports::store::StoreError),
    #[error("attachment storage: {0}")]
    Blobs(#[from] crate::ports::blobs::BlobError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
    #[error("start-up: {0}")]
    Startup(#[from] crate::services::ServiceError),
    #[error("pub/sub: {0}")]
    PubSub(#[from] LinkError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("DID resolver: {0}")]
    Resolver(#[from] crate::ports::did::ResolveError),
    #[error("HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// A built server, listening but not yet serving.
pub struct App {
    settings: Settings,
    api: ApiListener,
    mgmt: TcpListener,
    /// The API port's certificate when it serves TLS.
    tls: Option<Arc<ReloadableCert>>,
    state: AppState,
    store: Arc<dyn Store>,
    attachments: Arc<Attachments>,
    /// The blob store's sweep for objects without a record (attachments and MLS files).
    orphans: Arc<OrphanSweep>,
    clock: Arc<dyn Clock>,
    push: Option<Arc<PushDispatch>>,
    /// Push deliveries in flight, awaited on shutdown.
    deliveries: TaskTracker,
    /// Stops background tasks of adapters (the pub/sub listener) last, after the sessions.
    adapters_stop: CancellationToken,
}

/// Parts of the app the caller may supply instead of the defaults.
pub struct Parts {
    /// Source of time (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// Where wake-up pushes go. Without one, no push is scheduled: messages still wait for the
    /// next connection.
    pub push_provider: Option<Arc<dyn PushProvider>>,
}

impl Default for Parts {
    fn default() -> Self {
        Self { clock: Arc::new(SystemClock), push_provider: None }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr).await.map_err(|source| AppError::Bind { addr, source })
}

impl App {
    /// Opens the store (migrating it), binds both ports and assembles the services.
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        Self::build_with(settings, Parts::default()).await
    }

    /// `build` with some parts supplied by the caller (tests: a manual clock, a push provider).
    pub async fn build_with(settings: Settings, parts: Parts) -> Result<Self, AppError> {
        // Before anything else: a certificate that cannot be used should fail fast.
        let tls = settings.tls.clone().map(ReloadableCert::load).transpose()?;
        let clock = parts.clock;
        let store = store::open(
            &settings.storage.database_url,
            PoolOptions {
                max_connections: settings.storage.db_max_connections,
                min_connections: settings.storage.db_min_connections,
                acquire_timeout: settings.storage.db_acquire_timeout,
                idle_timeout: settings.storage.db_idle_timeout,
                max_lifetime: settings.storage.db_max_lifetime,
                max_size_bytes: settings.storage.sqlite_max_size_bytes,
            },
        )
        .await?;
        let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::open(&settings.storage.blobs)?);
        let adapters_stop = CancellationToken::new();
        let redis = settings.pubsub.clone().map(RedisLink::new).transpose()?.map(Arc::new);
        let notifier: Arc<dyn Notifier> = match &redis {
            Some(link) => {
                let notifier =
                    RedisNotifier::start(Arc::clone(link), settings.user_channel_capacity, adapters_stop.clone());
                // Not fatal: the server serves without Redis and the listener keeps trying.
                if !notifier.wait_listening(link.settings().timeout).await {
                    tracing::warn!("Redis is unreachable at start-up; serving without it until it answers");
                }
                Arc::new(notifier)
            }
            None => Arc::new(LocalHub::new(settings.user_channel_capacity)),
        };

        let tokens = Arc::new(Tokens::new(
            &settings.jwt_secret,
            settings.access_token_ttl,
            settings.refresh_token_ttl,
            store.clone(),
            Arc::clone(&clock),
        ));
        let prekeys =
            Arc::new(PreKeys::new(store.clone(), Arc::clone(&notifier), Arc::clone(&clock), settings.max_pre_keys));
        let accounts = Arc::new(Accounts::new(
            store.clone(),
            Arc::clone(&prekeys),
            Passwords::new(settings.password_hashing)?,
            Arc::clone(&tokens),
            Arc::clone(&clock),
        ));
        let push = parts.push_provider.map(|provider| {
            let queue: Arc<dyn PushQueue> = match &redis {
                Some(link) => Arc::new(RedisPushQueue::new(Arc::clone(link))),
                None => Arc::new(MemoryPushQueue::new()),
            };
            Arc::new(PushDispatch::new(
                queue,
                provider,
                store.clone(),
                Arc::clone(&clock),
                PushTiming { delay: settings.push.delay, lease: settings.push.lease },
            ))
        });
        let messaging = Arc::new(Messaging::new(
            store.clone(),
            Arc::clone(&notifier),
            Arc::clone(&clock),
            settings.message_ttl,
            settings.inbox_cap,
            push.clone(),
        ));
        let delivery = Arc::new(Delivery::new(
            store.clone(),
            store.clone(),
            Arc::clone(&notifier),
            Arc::clone(&clock),
            settings.page_size,
            settings.refill_threshold,
            push.clone(),
        ));
        let attachments = Arc::new(Attachments::new(
            store.clone(),
            Arc::clone(&blobs),
            Arc::clone(&clock),
            settings.message_ttl,
            settings.attachment_max_bytes,
            settings.attachment_quota_bytes,
        ));
        let health =
            Arc::new(Health::new(store.clone(), Arc::clone(&blobs), Arc::clone(&notifier), settings.health_timeouts));
        let limits = &settings.rate_limits;
        let trusted: Arc<[ipnet::IpNet]> = limits.trusted_proxies.clone().into();
        let shared_limits: Option<Arc<dyn SharedRateLimiter>> =
            redis.as_ref().map(|link| Arc::new(RedisRateLimiter::new(Arc::clone(link))) as Arc<dyn SharedRateLimiter>);
        let shared = || shared_limits.clone();
        // Shared by the v1 gateway and the MLS event stream: both end on shutdown and are awaited.
        let (shutdown, sessions) = (CancellationToken::new(), TaskTracker::new());
        let xrpc = match &settings.mls {
            Some(mls) => {
                let replay: Arc<dyn TtlCache> = match &redis {
                    Some(link) => Arc::new(RedisTtlCache::new(Arc::clone(link))),
                    None => Arc::new(MemoryTtlCache::new()),
                };
                let fetcher = Arc::new(HttpResolver::new(mls.resolver.clone())?);
                let resolution_limiter = Arc::new(Limiter::new("did_resolution", mls.resolutions, shared()));
                let resolver = Arc::new(CachingResolver::new(fetcher, mls.cache, Arc::clone(&clock)));
                if mls.auth.dev_secret.is_some() {
                    tracing::warn!("development mode: HS256 caller tokens are accepted (--dev-mode, JWT_SECRET)");
                } else if mls.dev_secret_ignored {
                    tracing::warn!(
                        "--dev-jwt-secret (JWT_SECRET) is set but ignored: development mode needs --dev-mode"
                    );
                }
                let key_packages = Arc::new(KeyPackages::new(store.clone(), Arc::clone(&clock), mls.key_packages));
                let waker = Arc::new(EventWaker::new(store.clone(), Arc::clone(&notifier)));
                let convos =
                    Arc::new(Conversations::new(store.clone(), Arc::clone(&clock), mls.convos, Arc::clone(&waker)));
                let devices =
                    Arc::new(Devices::new(store.clone(), Arc::clone(&clock), mls.devices, Arc::clone(&waker)));
                let convo_blobs =
                    Arc::new(ConvoBlobs::new(store.clone(), Arc::clone(&blobs), Arc::clone(&clock), mls.blobs));
                let events = Arc::new(ConvoEvents::new(
                    store.clone(),
                    waker,
                    Arc::clone(&notifier),
                    Arc::clone(&clock),
                    Arc::clone(&replay),
                    &settings.jwt_secret,
                    mls.events,
                ));
                // The largest call (addMembers) carries a commit, a Welcome and a GroupInfo, base64
                // in JSON.
                let group_state = mls.convos.max_group_state_bytes.saturating_mul(2);
                let largest = mls.convos.max_message_bytes.saturating_add(group_state);
                let body_limit = largest.saturating_mul(4) / 3 + 64 * 1024;
                let proxy = match &mls.proxy {
                    Some(upstream) => {
                        tracing::warn!(upstream = %upstream, "development proxy on: unknown XRPC methods are forwarded");
                        Some(Arc::new(DevProxy::new(upstream.clone(), body_limit)?))
                    }
                    None => None,
                };
                Some(XrpcState {
                    auth: Arc::new(ServiceAuth::new(
                        mls.auth.clone(),
                        resolver,
                        Arc::clone(&resolution_limiter) as Arc<dyn Allowance<std::net::IpAddr>>,
                        replay,
                        Arc::clone(&clock),
                    )),
                    resolution_limiter,
                    mls: MlsServices { key_packages, convos, devices, events, blobs: convo_blobs },
                    stream: StreamSettings {
                        ping_interval: settings.gateway.ping_interval,
                        idle_timeout: settings.gateway.idle_timeout,
                    },
                    tls: settings.tls.is_some(),
                    shutdown: shutdown.clone(),
                    sessions: sessions.clone(),
                    limiter: Arc::new(Limiter::new("xrpc", mls.rate, shared())),
                    endpoint: mls.endpoint.clone(),
                    body_limit,
                    proxy,
                })
            }
            None => None,
        };
        let state = AppState {
            accounts,
            prekeys,
            messaging,
            delivery,
            attachments: Arc::clone(&attachments),
            push_tokens: Arc::new(PushTokens::new(store.clone(), Arc::clone(&clock))),
            health,
            tokens,
            limits: RateLimits {
                standard: IpTier {
                    limiter: Arc::new(Limiter::new("standard", limits.standard, shared())),
                    trusted: trusted.clone(),
                },
                auth: IpTier { limiter: Arc::new(Limiter::new("auth", limits.auth, shared())), trusted },
                bundle: Arc::new(Limiter::new("bundle", limits.bundle, shared())),
            },
            gateway: settings.gateway,
            gateway_sessions: Arc::new(crate::services::gateway_sessions::GatewaySessions::new(
                settings.gateway.max_sessions_per_user,
            )),
            max_message_bytes: settings.max_message_bytes,
            shutdown,
            draining: Arc::new(AtomicBool::new(false)),
            sessions,
            xrpc,
        };
        let api = bind(settings.api_addr).await?;
        let slots = ConnectionSlots::new(settings.max_connections);
        let api = match &tls {
            Some(cert) => ApiListener::tls(api, cert.server_config()?, slots)?,
            None => ApiListener::plain(api, slots)?,
        };
        let mgmt = bind(settings.mgmt_addr).await?;
        let mut stored_kinds: Vec<Arc<dyn RecordedObjects>> =
            vec![Arc::clone(&attachments) as Arc<dyn RecordedObjects>];
        if let Some(xrpc) = &state.xrpc {
            stored_kinds.push(Arc::clone(&xrpc.mls.blobs) as Arc<dyn RecordedObjects>);
        }
        let orphans = Arc::new(OrphanSweep::new(blobs, Arc::clone(&clock), stored_kinds));
        Ok(Self {
            settings,
            api,
            mgmt,
            tls,
            state,
            store,
            attachments,
            orphans,
            clock,
            push,
            deliveries: TaskTracker::new(),
            adapters_stop,
        })
    }

    /// Where the API listens (useful with port 0).
    pub fn api_addr(&self) -> Result<SocketAddr, AppError> {
        Ok(self.api.local_addr()?)
    }

    /// Where the management endpoints listen.
    pub fn mgmt_addr(&self) -> Result<SocketAddr, AppError> {
        Ok(self.mgmt.local_addr()?)
    }

    fn spawn_workers(&self, cancel: &CancellationToken) -> Vec<JoinHandle<()>> {
        let s = &self.settings;
        let (messages, accounts, clock) = (
            self.store.clone() as Arc<dyn MessageStore>,
            self.store.clone() as Arc<dyn AccountStore>,
            Arc::clone(&self.clock),
        );
        let attachments = Arc::clone(&self.attachments);
        let batch = s.attachment_cleanup_batch;
        let key_packages = self.store.clone() as Arc<dyn KeyPackageStore>;
        let convo_data = self.store.clone() as Arc<dyn ConvoStore>;
        let limits = self.state.limits.clone();
        let xrpc_limiters =
            self.state.xrpc.as_ref().map(|x| (Arc::clone(&x.limiter), Arc::clone(&x.resolution_limiter)));
        let mls_clock = Arc::clone(&self.clock);
        let events = self.state.xrpc.as_ref().map(|x| Arc::clone(&x.mls.events));
        let convo_blobs = self.state.xrpc.as_ref().map(|x| Arc::clone(&x.mls.blobs));
        let orphans = Arc::clone(&self.orphans);
        let mut handles = Vec::new();
        if let Some(push) = &self.push {
            let (push, slots, deliveries) =
                (Arc::clone(push), Arc::new(Semaphore::new(s.push.concurrency)), self.deliveries.clone());
            handles.push(workers::every("push", s.push.poll_interval, cancel.clone(), move || {
                let (push, slots, deliveries) = (Arc::clone(&push), Arc::clone(&slots), deliveries.clone());
                async move { workers::push::poll(&push, &slots, &deliveries).await }
            }));
        }
        handles.extend([
            workers::every("message-expiry", s.cleanup_interval, cancel.clone(), move || {
                let (messages, accounts, clock) = (Arc::clone(&messages), Arc::clone(&accounts), Arc::clone(&clock));
                async move {
                    expiry::expire_messages(&messages, &clock).await;
                    expiry::expire_refresh_tokens(&accounts, &clock).await;
                }
            }),
            workers::every("mls-expiry", s.cleanup_interval, cancel.clone(), move || {
                let (key_packages, convo_data) = (Arc::clone(&key_packages), Arc::clone(&convo_data));
                let clock = Arc::clone(&mls_clock);
                let events = events.clone();
                async move {
                    expiry::expire_key_packages(&key_packages, &clock).await;
                    expiry::expire_convo_data(&convo_data, &clock).await;
                    if let Some(events) = &events {
                        expiry::expire_events(events).await;
                    }
                }
            }),
            workers::every("attachment-expiry", s.attachment_cleanup_interval, cancel.clone(), move || {
                let (attachments, convo_blobs, orphans) =
                    (Arc::clone(&attachments), convo_blobs.clone(), Arc::clone(&orphans));
                async move {
                    expiry::expire_stored_objects(&attachments, convo_blobs.as_deref(), &orphans, batch).await;
                }
            }),
            workers::every("rate-limit-sweep", s.rate_limits.sweep_interval, cancel.clone(), move || {
                limits.sweep();
                if let Some((calls, resolutions)) = &xrpc_limiters {
                    calls.sweep();
                    resolutions.sweep();
                }
                std::future::ready(())
            }),
        ]);
        handles
    }

    /// Serves until `shutdown` resolves, then drains (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), AppError> {
        let workers_cancel = CancellationToken::new();
        let workers = self.spawn_workers(&workers_cancel);
        let state = self.state.clone();
        let stop_api = state.shutdown.clone();
        #[cfg(unix)]
        if let Some(cert) = &self.tls {
            if let Err(err) = tls::reload_on_sighup(Arc::clone(cert), workers_cancel.clone()) {
                tracing::warn!(error = %err, "cannot watch SIGHUP; the TLS certificate will not be reloaded");
            }
        }
        let api = serve(self.api, api_router(state.clone()), self.settings.http, stop_api);
        // The management port keeps axum's server: it is for operators and probes, not clients.
        let stop_mgmt = CancellationToken::new();
        let mgmt_stopped = stop_mgmt.clone();
        let mgmt = axum::serve(self.mgmt, mgmt_router(state.clone()))
            .with_graceful_shutdown(async move { mgmt_stopped.cancelled().await });
        let api_task = tokio::spawn(api);
        let mgmt_task = tokio::spawn(async move { mgmt.await });

        shutdown.await;
        let deadline = Instant::now() + self.settings.shutdown_timeout;
        tracing::info!("shutting down");
        state.draining.store(true, Ordering::Release);
        state.shutdown.cancel();
        state.sessions.close();
        if timeout_at(deadline, state.sessions.wait()).await.is_err() {
            tracing::warn!("WebSocket sessions still open at the shutdown deadline");
        }
        if timeout_at(deadline, api_task).await.is_err() {
            tracing::warn!("requests still running at the shutdown deadline");
        }
        workers_cancel.cancel();
        for worker in workers {
            if timeout_at(deadline, worker).await.is_err() {
                tracing::warn!("a worker was still running at the shutdown deadline");
            }
        }
        self.deliveries.close();
        if timeout_at(deadline, self.deliveries.wait()).await.is_err() {
            tracing::warn!("push deliveries still running at the shutdown deadline");
        }
        stop_mgmt.cancel();
        let _ = timeout_at(deadline, mgmt_task).await;
        self.adapters_stop.cancel();
        let _ = timeout_at(deadline, self.store.close()).await;
        tracing::info!("stopped");
        Ok(())
    }
}
