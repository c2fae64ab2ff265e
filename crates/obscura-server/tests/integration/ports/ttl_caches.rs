//! The TTL-cache contract (jti replay detection) on both adapters: the first insert of a key
//! wins, exactly once even under concurrency, on every replica, until the key expires.

use std::sync::Arc;
use std::time::Duration;

use obscura_server::adapters::redis_link::RedisLink;
use obscura_server::adapters::ttl_cache::memory::MemoryTtlCache;
use obscura_server::adapters::ttl_cache::redis::RedisTtlCache;
use obscura_server::ports::ttl_cache::TtlCache;
use obscura_testkit::eventually;
use obscura_testkit::services::redis_settings;

async fn first_insert_wins_until_the_key_expires(cache: Arc<dyn TtlCache>, other_replica: Arc<dyn TtlCache>) {
    let ttl = Duration::from_millis(300);
    assert!(cache.insert_new("jti:a", ttl).await.unwrap());
    assert!(!cache.insert_new("jti:a", ttl).await.unwrap(), "a second insert is refused");
    assert!(!other_replica.insert_new("jti:a", ttl).await.unwrap(), "on every replica");
    assert!(cache.insert_new("jti:b", ttl).await.unwrap(), "keys are independent");
    let expired = eventually(Duration::from_secs(5), || {
        let cache = Arc::clone(&cache);
        async move { cache.insert_new("jti:a", ttl).await.unwrap() }
    })
    .await;
    assert!(expired, "the key is accepted again once its TTL has passed");
    let racers = (0..20).map(|_| {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move { cache.insert_new("jti:race", Duration::from_secs(60)).await.unwrap() })
    });
    let wins = futures_util::future::join_all(racers).await.into_iter().filter(|won| *won.as_ref().unwrap()).count();
    assert_eq!(wins, 1, "exactly one concurrent insert wins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cache_keeps_a_key_until_it_expires() {
    let cache: Arc<dyn TtlCache> = Arc::new(MemoryTtlCache::new());
    first_insert_wins_until_the_key_expires(Arc::clone(&cache), cache).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_keeps_a_key_until_it_expires_on_every_replica() {
    let Some(settings) = redis_settings() else { return };
    let replica =
        || -> Arc<dyn TtlCache> { Arc::new(RedisTtlCache::new(Arc::new(RedisLink::new(settings.clone()).unwrap()))) };
    first_insert_wins_until_the_key_expires(replica(), replica()).await;
}
