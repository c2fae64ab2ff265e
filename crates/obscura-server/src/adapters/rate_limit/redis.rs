//! GCRA in Redis: one key per client holding its "theoretical arrival time" in microseconds of
//! Redis's own clock (replica clocks may disagree; Redis's is the one they share), expiring when
//! the client has fully recovered. One Lua script, so each decision is atomic.

use std::sync::Arc;
use std::time::Duration;

use ::redis::Script;
use async_trait::async_trait;

use crate::adapters::redis_link::RedisLink;
use crate::ports::rate_limit::{RateLimitError, SharedRateLimiter};

/// Returns 0 when admitted, otherwise the microseconds to wait.
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + emission
if next - now > tolerance then
  return next - now - tolerance
end
redis.call('SET', KEYS[1], next, 'PX', math.ceil((next - now) / 1000) + 1)
return 0
";

/// Rate-limit state in Redis.
pub struct RedisRateLimiter {
    link: Arc<RedisLink>,
    script: Script,
}

impl RedisRateLimiter {
    #[must_use]
    pub fn new(link: Arc<RedisLink>) -> Self {
        Self { link, script: Script::new(GCRA) }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[async_trait]
impl SharedRateLimiter for RedisRateLimiter {
    async fn admit(
        &self,
        tier: &str,
        key: &str,
        emission: Duration,
        tolerance: Duration,
    ) -> Result<Result<(), Duration>, RateLimitError> {
        let mut invocation = self.script.key(self.link.key(&format!("rate:{tier}:{key}")));
        invocation.arg(micros(emission)).arg(micros(tolerance));
        let wait: u64 = self
            .link
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
            .map_err(|e| RateLimitError(e.to_string()))?;
        Ok(if wait == 0 { Ok(()) } else { Err(Duration::from_micros(wait)) })
    }
}
