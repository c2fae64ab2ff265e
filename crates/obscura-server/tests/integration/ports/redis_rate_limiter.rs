use std::sync::Arc;
use std::time::Duration;

use obscura_server::adapters::rate_limit::redis::RedisRateLimiter;
use obscura_server::adapters::redis_link::RedisLink;
use obscura_server::ports::rate_limit::SharedRateLimiter;
use obscura_testkit::services::{redis_settings, redis_settings_at};

const SEC: Duration = Duration::from_secs(1);

#[tokio::test]
async fn two_replicas_draw_on_one_allowance_per_key() {
    let Some(settings) = redis_settings() else { return };
    let replica = || RedisRateLimiter::new(Arc::new(RedisLink::new(settings.clone()).unwrap()));
    let (a, b) = (replica(), replica());
    // One per second with a burst of two: two admitted in all, whichever replica asks.
    assert_eq!(a.admit("tier", "client", SEC, SEC * 2).await.unwrap(), Ok(()));
    assert_eq!(b.admit("tier", "client", SEC, SEC * 2).await.unwrap(), Ok(()));
    let wait = b.admit("tier", "client", SEC, SEC * 2).await.unwrap().err();
    assert!(wait.is_some_and(|w| w > Duration::ZERO && w <= SEC), "throttled with a wait of at most 1s: {wait:?}");
    assert_eq!(a.admit("tier", "other-client", SEC, SEC * 2).await.unwrap(), Ok(()), "keys are independent");
    assert_eq!(a.admit("other-tier", "client", SEC, SEC * 2).await.unwrap(), Ok(()), "tiers are independent");
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_decision() {
    // Nothing listens on port 1: this needs no Redis, so it always runs.
    let settings = redis_settings_at("redis://127.0.0.1:1", "unreachable");
    let limiter = RedisRateLimiter::new(Arc::new(RedisLink::new(settings).unwrap()));
    assert!(limiter.admit("tier", "client", SEC, SEC).await.is_err());
}
