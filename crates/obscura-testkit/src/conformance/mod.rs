//! Contract tests every adapter of a port must pass. Each check takes a fresh instance; the
//! server's tests instantiate them once per adapter.

pub mod blob_store;
pub mod convo_blob_store;
pub mod convo_store;
pub mod device_store;
pub mod mls_store;
pub mod notifier;
pub mod push_queue;
pub mod store;

/// Generates one `#[tokio::test]` per named check of `conformance::$module`, each with a fresh
/// instance from `$make`, which yields the instance and a guard that keeps its resources (a
/// directory, a schema) alive for the test, or `None` when the service it needs is missing
/// (see `services::service_url`: reported as skipped, or a failure under `CI=true`).
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some((instance, _keep)) = $make.await else { return };
                $crate::conformance::$module::$check(instance).await;
            }
        )+
    };
}
