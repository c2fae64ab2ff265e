//! Metric names (one place, so dashboards and code agree) and the Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::FanoutBuilder;

use super::otel_metrics::OtelRecorder;

pub const HTTP_REQUESTS: &str = "obscura_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "obscura_http_request_duration_seconds";
pub const HTTP_CONNECTIONS: &str = "obscura_http_connections";
pub const HTTP_CONNECTIONS_REFUSED: &str = "obscura_http_connections_refused_total";
pub const HTTP_CONNECTIONS_TIMED_OUT: &str = "obscura_http_connections_timed_out_total";
pub const WEBSOCKET_CONNECTIONS: &str = "obscura_websocket_connections";
pub const WEBSOCKET_ACKS_RECEIVED: &str = "obscura_websocket_acks_received_total";
pub const WEBSOCKET_ACK_FAILURES: &str = "obscura_websocket_ack_failures_total";
pub const WEBSOCKET_BUFFERED_BYTES: &str = "obscura_websocket_buffered_bytes";
pub const REGISTRATIONS: &str = "obscura_registrations_total";
pub const LOGINS: &str = "obscura_logins_total";
pub const LOGOUTS: &str = "obscura_logouts_total";
pub const TOKEN_REFRESHES: &str = "obscura_token_refreshes_total";
pub const PASSWORD_HASHES_IN_PROGRESS: &str = "obscura_password_hashes_in_progress";
pub const PASSWORD_HASHES_REFUSED: &str = "obscura_password_hashes_refused_total";
pub const REFRESH_TOKEN_REUSE: &str = "obscura_refresh_token_reuse_total";
pub const KEY_TAKEOVERS: &str = "obscura_key_takeovers_total";
pub const PREKEYS_EXHAUSTED: &str = "obscura_prekey_bundles_without_one_time_key_total";
pub const PREKEY_THRESHOLD_REACHED: &str = "obscura_prekey_threshold_reached_total";
pub const MESSAGES_STORED: &str = "obscura_messages_stored_total";
pub const MESSAGES_DELIVERED: &str = "obscura_messages_delivered_total";
pub const MESSAGES_ACKNOWLEDGED: &str = "obscura_messages_acknowledged_total";
pub const MESSAGES_EVICTED: &str = "obscura_messages_overflow_total";
pub const MESSAGES_EXPIRED: &str = "obscura_messages_expired_total";
pub const MESSAGE_FETCH_BATCH_SIZE: &str = "obscura_message_fetch_batch_size";
pub const PENDING_MESSAGES: &str = "obscura_pending_messages";
pub const ATTACHMENT_UPLOAD_BYTES: &str = "obscura_attachment_upload_bytes_total";
pub const ATTACHMENTS_DELETED: &str = "obscura_attachments_deleted_total";
pub const ATTACHMENT_CLEANUP_ERRORS: &str = "obscura_attachment_cleanup_errors_total";
pub const ATTACHMENT_ORPHANS_DELETED: &str = "obscura_attachment_orphans_deleted_total";
pub const REFRESH_TOKENS_EXPIRED: &str = "obscura_refresh_tokens_expired_total";
pub const KEY_PACKAGES_EXPIRED: &str = "obscura_mls_key_packages_expired_total";
pub const MLS_CONVO_DATA_EXPIRED: &str = "obscura_mls_convo_data_expired_total";
pub const MLS_EVENTS_EXPIRED: &str = "obscura_mls_events_expired_total";
pub const MLS_BLOBS_EXPIRED: &str = "obscura_mls_blobs_expired_total";
pub const MLS_BLOB_UPLOAD_BYTES: &str = "obscura_mls_blob_upload_bytes_total";
pub const MLS_BLOB_ORPHANS_DELETED: &str = "obscura_mls_blob_orphans_deleted_total";
pub const MLS_SUBSCRIPTIONS: &str = "obscura_mls_subscriptions";
pub const MLS_EVENTS_SENT: &str = "obscura_mls_events_sent_total";
pub const PUSHES: &str = "obscura_push_notifications_total";
pub const DB_APPEND_BATCH_SIZE: &str = "obscura_db_append_batch_size";
pub const DB_WRITER_RESETS: &str = "obscura_db_writer_resets_total";
pub const RATE_LIMIT_DECISIONS: &str = "obscura_rate_limit_decisions_total";
pub const DID_RESOLUTIONS: &str = "obscura_mls_did_resolutions_total";

/// Latency buckets in seconds, from 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder: Prometheus, plus OpenTelemetry when a meter is given.
/// A process has one metrics registry; only the first call has an effect, and several servers
/// in one process (tests) share it.
pub fn install(otel: Option<opentelemetry::metrics::Meter>) -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            let installed = match otel {
                Some(meter) => metrics::set_global_recorder(
                    FanoutBuilder::default().add_recorder(recorder).add_recorder(OtelRecorder::new(meter)).build(),
                )
                .is_ok(),
                None => metrics::set_global_recorder(recorder).is_ok(),
            };
            installed.then_some(())?;
            Some(handle)
        })
        .as_ref()
}

/// The Prometheus handle, installing a Prometheus-only recorder if none is installed yet.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    install(None)
}
