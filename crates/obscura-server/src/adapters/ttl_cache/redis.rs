//! TTL keys in Redis (`SET NX PX`): one atomic command decides which replica saw a key first.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::adapters::redis_link::RedisLink;
use crate::ports::ttl_cache::{TtlCache, TtlCacheError};

/// TTL keys shared by every replica.
pub struct RedisTtlCache {
    link: Arc<RedisLink>,
}

impl RedisTtlCache {
    #[must_use]
    pub fn new(link: Arc<RedisLink>) -> Self {
        Self { link }
    }
}

#[async_trait]
impl TtlCache for RedisTtlCache {
    async fn insert_new(&self, key: &str, ttl: Duration) -> Result<bool, TtlCacheError> {
        let key = self.link.key(&format!("ttl:{key}"));
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> =
            self.link
                .run(|mut conn| {
                    let key = key.clone();
                    async move {
                        redis::cmd("SET").arg(key).arg(1).arg("NX").arg("PX").arg(millis).query_async(&mut conn).await
                    }
                })
                .await
                .map_err(|e| TtlCacheError(e.to_string()))?;
        Ok(set.is_some())
    }
}
