//! The push queue in Redis, shared by every replica: whichever replica's worker leases a job
//! delivers it, and a cancel from any replica (the user connected there) removes it.
//!
//! Three keys per deployment: `push:jobs`, a sorted set of users scored by when their job is
//! next available (its due time, or its lease expiry while leased, which is the visibility
//! timeout); `push:leases`, a hash of the current lease id of each leased user; `push:again`,
//! the users scheduled again while leased. Each operation is one Lua script, so it is atomic.

use std::sync::Arc;

use ::redis::{Script, ScriptInvocation};
use async_trait::async_trait;

use crate::adapters::redis_link::RedisLink;
use crate::domain::ids::UserId;
use crate::domain::time::UnixMillis;
use crate::ports::push::{Lease, PushQueue, PushQueueError};

const SCHEDULE: &str = r"
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  redis.call('SADD', KEYS[3], ARGV[1])
end
";

const CANCEL: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
";

const LEASE_DUE: &str = r"
local users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local leased = {}
for _, user in ipairs(users) do
  local id = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[2], user, id)
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], user)
  table.insert(leased, user)
  table.insert(leased, id)
end
return leased
";

const COMPLETE: &str = r"
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('SREM', KEYS[3], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
";

/// Push jobs in Redis.
pub struct RedisPushQueue {
    link: Arc<RedisLink>,
    jobs: String,
    leases: String,
    again: String,
    lease_ids: String,
    scripts: Scripts,
}

struct Scripts {
    schedule: Script,
    cancel: Script,
    lease_due: Script,
    complete: Script,
}

fn failed(err: impl std::fmt::Display) -> PushQueueError {
    PushQueueError(err.to_string())
}

impl RedisPushQueue {
    #[must_use]
    pub fn new(link: Arc<RedisLink>) -> Self {
        Self {
            jobs: link.key("push:jobs"),
            leases: link.key("push:leases"),
            again: link.key("push:again"),
            lease_ids: link.key("push:lease-ids"),
            link,
            scripts: Scripts {
                schedule: Script::new(SCHEDULE),
                cancel: Script::new(CANCEL),
                lease_due: Script::new(LEASE_DUE),
                complete: Script::new(COMPLETE),
            },
        }
    }

    /// Runs a script invocation on the shared connection.
    async fn run<T: ::redis::FromRedisValue>(&self, invocation: ScriptInvocation<'_>) -> Result<T, PushQueueError> {
        self.link.run(|mut conn| async move { invocation.invoke_async(&mut conn).await }).await.map_err(failed)
    }
}

#[async_trait]
impl PushQueue for RedisPushQueue {
    async fn schedule(&self, user: UserId, due: UnixMillis) -> Result<(), PushQueueError> {
        let mut invocation = self.scripts.schedule.key(&self.jobs);
        invocation.key(&self.leases).key(&self.again).arg(user.to_string()).arg(due.0);
        self.run(invocation).await
    }

    async fn cancel(&self, user: UserId) -> Result<(), PushQueueError> {
        let mut invocation = self.scripts.cancel.key(&self.jobs);
        invocation.key(&self.leases).key(&self.again).arg(user.to_string());
        self.run(invocation).await
    }

    async fn lease_due(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        max: usize,
    ) -> Result<Vec<Lease>, PushQueueError> {
        let mut invocation = self.scripts.lease_due.key(&self.jobs);
        invocation.key(&self.leases).key(&self.lease_ids).arg(now.0).arg(lease_until.0).arg(max);
        let flat: Vec<(String, u64)> = self.run(invocation).await?;
        flat.into_iter()
            .map(|(user, id)| {
                let user = user.parse().map(UserId).map_err(|_| failed(format!("corrupt push job {user:?}")))?;
                Ok(Lease { user, id })
            })
            .collect()
    }

    async fn complete(&self, lease: Lease, now: UnixMillis) -> Result<(), PushQueueError> {
        let mut invocation = self.scripts.complete.key(&self.jobs);
        invocation.key(&self.leases).key(&self.again).arg(lease.user.to_string()).arg(lease.id).arg(now.0);
        self.run(invocation).await
    }

    async fn check(&self) -> Result<(), PushQueueError> {
        self.link.ping().await.map_err(failed)
    }
}
