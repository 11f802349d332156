//! Redis stores: shared, exact limits across instances.
//!
//! Each decision is one atomic Lua script run on the Redis server with the
//! server's clock, so instances with skewed clocks still agree. Every key
//! carries a TTL: a budget lives until it is full again, a failure count a
//! window past its lock.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use portcullis_domain::error::Failure;
use portcullis_domain::limits::lockout::millis;
use portcullis_domain::limits::{
    Bucket, Charge, Decision, FailureCounter, FailureState, RateLimiter, Reservation,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use tokio::sync::Mutex;

use super::Quotas;

/// A lazily (re)connected Redis connection: the service starts and keeps
/// answering while Redis is down, and picks it up when it returns.
#[derive(Clone)]
pub struct RedisConnection {
    client: Client,
    manager: Arc<Mutex<Option<ConnectionManager>>>,
    /// After a failure, Redis is not tried again before this instant, so a
    /// dead or hanging Redis costs requests nothing while the fallback answers.
    down_until: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    prefix: String,
}

/// How long a failed Redis is left alone before it is tried again.
const BACKOFF: StdDuration = StdDuration::from_secs(5);

/// Opens a handle on `url` (`redis://host:port/db`). Nothing is contacted yet.
///
/// # Errors
/// When the URL is malformed.
pub fn connect_redis(url: &str, prefix: &str) -> anyhow::Result<RedisConnection> {
    let client = Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
    Ok(RedisConnection {
        client,
        manager: Arc::new(Mutex::new(None)),
        down_until: Arc::new(std::sync::Mutex::new(None)),
        prefix: prefix.to_owned(),
    })
}

impl RedisConnection {
    fn backing_off(&self) -> bool {
        let now = std::time::Instant::now();
        self.down_until
            .lock()
            .map(|until| until.is_some_and(|t| now < t))
            .unwrap_or(false)
    }

    /// Records a failure: Redis is skipped for [`BACKOFF`], then reconnected.
    async fn failed(&self, error: impl std::fmt::Display) -> Failure {
        if let Ok(mut until) = self.down_until.lock() {
            *until = Some(std::time::Instant::now() + BACKOFF);
        }
        *self.manager.lock().await = None;
        Failure::msg(format!("redis unavailable: {error}"))
    }

    async fn connection(&self) -> Result<ConnectionManager, Failure> {
        if self.backing_off() {
            return Err(Failure::msg("redis unavailable (backing off)"));
        }
        let mut slot = self.manager.lock().await;
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(StdDuration::from_millis(500)))
            .set_response_timeout(Some(StdDuration::from_millis(500)))
            .set_number_of_retries(1);
        match ConnectionManager::new_with_config(self.client.clone(), config).await {
            Ok(manager) => {
                *slot = Some(manager.clone());
                Ok(manager)
            }
            Err(error) => {
                drop(slot);
                Err(self.failed(error).await)
            }
        }
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// Round trip to Redis (readiness and tests).
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn ping(&self) -> Result<(), Failure> {
        let mut conn = self.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| Failure::msg(format!("redis ping: {e}")))
    }
}

fn now_ms_lua() -> &'static str {
    "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"
}

/// GCRA budgets in Redis: one key per bucket and client holding the
/// theoretical arrival time, expiring when the budget is full again.
pub struct RedisRateLimiter {
    redis: RedisConnection,
    quotas: Quotas,
    script: Script,
}

impl RedisRateLimiter {
    pub fn new(redis: RedisConnection, quotas: Quotas) -> Self {
        // ARGV: emission interval (ms), burst tolerance (ms). Returns 0 when
        // allowed, else the milliseconds to wait.
        let source = format!(
            "{now}
            local emission = tonumber(ARGV[1])
            local tolerance = tonumber(ARGV[2])
            local tat = tonumber(redis.call('GET', KEYS[1]) or now)
            if tat < now then tat = now end
            if tat - now > tolerance then return tat - now - tolerance end
            local next_tat = tat + emission
            redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now + 1000)
            return 0",
            now = now_ms_lua()
        );
        Self {
            redis,
            quotas,
            script: Script::new(&source),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, bucket: Bucket, key: &str) -> Result<Decision, Failure> {
        let quota = self.quotas.for_bucket(bucket);
        let emission_ms = 60_000 / u64::from(quota.per_minute.max(1));
        let tolerance_ms = emission_ms * u64::from(quota.burst.max(1) - 1);
        let mut conn = self.redis.connection().await?;
        let result: redis::RedisResult<u64> = self
            .script
            .key(self.redis.key(&["rate", bucket.as_str(), key]))
            .arg(emission_ms)
            .arg(tolerance_ms)
            .invoke_async(&mut conn)
            .await;
        let wait_ms = match result {
            Ok(value) => value,
            Err(error) => return Err(self.redis.failed(error).await),
        };
        Ok(if wait_ms == 0 {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after_secs: wait_ms.div_ceil(1000).max(1),
            }
        })
    }
}

/// Failure counters in Redis: one hash per key (`n`, the count, and
/// `until`, the end of its lock in server milliseconds) that expires a
/// window after both its last failure and the end of its lock. The
/// reservation is one script over every key it charges: the check of the
/// locks, the counts and the new locks happen in one atomic step, and a
/// lock only ever grows inside it.
pub struct RedisFailureCounter {
    redis: RedisConnection,
    reserve: Script,
    release: Script,
    state: Script,
}

impl RedisFailureCounter {
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            // KEYS: one counter per charge. ARGV, per charge: window (ms),
            // the number `m` of scheduled counts, then the lock (ms, 0 for
            // none) of counts 1..m; counts past m take the lock of m.
            // Returns {0, ms left of the longest lock} when refused, else
            // {1, count of each key}.
            reserve: Script::new(&format!(
                "{now}
                local longest = 0
                local counts = {{}}
                local untils = {{}}
                for i, key in ipairs(KEYS) do
                    local v = redis.call('HMGET', key, 'n', 'until')
                    counts[i] = tonumber(v[1]) or 0
                    untils[i] = tonumber(v[2]) or 0
                    if untils[i] - now > longest then longest = untils[i] - now end
                end
                if longest > 0 then return {{0, longest}} end
                local result = {{1}}
                local at = 1
                for i, key in ipairs(KEYS) do
                    local window = tonumber(ARGV[at])
                    local m = tonumber(ARGV[at + 1])
                    local n = counts[i] + 1
                    local lock = tonumber(ARGV[at + 1 + math.min(n, m)])
                    local untl = untils[i]
                    if lock > 0 and now + lock > untl then untl = now + lock end
                    redis.call('HSET', key, 'n', n, 'until', untl)
                    redis.call('PEXPIREAT', key, math.max(now, untl) + window)
                    result[#result + 1] = n
                    at = at + 2 + m
                end
                return result",
                now = now_ms_lua()
            )),
            // KEYS: counter. One failure fewer; the lock and the expiry stay.
            release: Script::new(
                "local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
                if n > 0 then redis.call('HINCRBY', KEYS[1], 'n', -1) end
                return 0",
            ),
            // KEYS: counter. Returns {count, ms left of its lock}.
            state: Script::new(&format!(
                "{now}
                local v = redis.call('HMGET', KEYS[1], 'n', 'until')
                return {{tonumber(v[1]) or 0, (tonumber(v[2]) or 0) - now}}",
                now = now_ms_lua()
            )),
        }
    }

    fn key(&self, key: &str) -> String {
        self.redis.key(&["lockout", key])
    }
}

fn secs_from_ms(left: i64) -> Option<u64> {
    (left > 0).then(|| u64::try_from(left).unwrap_or(0).div_ceil(1000).max(1))
}

#[async_trait]
impl FailureCounter for RedisFailureCounter {
    async fn state(&self, key: &str) -> Result<FailureState, Failure> {
        let mut conn = self.redis.connection().await?;
        let result: redis::RedisResult<(u32, i64)> =
            self.state.key(self.key(key)).invoke_async(&mut conn).await;
        let (failures, lock_ms) = match result {
            Ok(value) => value,
            Err(error) => return Err(self.redis.failed(error).await),
        };
        Ok(FailureState {
            failures,
            locked_for_secs: secs_from_ms(lock_ms),
        })
    }

    async fn reserve(&self, charges: &[Charge<'_>]) -> Result<Reservation, Failure> {
        let mut invocation = self.reserve.prepare_invoke();
        for charge in charges {
            let schedule = charge.policy.schedule_ms();
            invocation
                .key(self.key(charge.key))
                .arg(millis(charge.policy.window).max(1))
                .arg(schedule.len())
                .arg(schedule);
        }
        let mut conn = self.redis.connection().await?;
        let result: redis::RedisResult<Vec<i64>> = invocation.invoke_async(&mut conn).await;
        let answer = match result {
            Ok(value) => value,
            Err(error) => return Err(self.redis.failed(error).await),
        };
        match answer.as_slice() {
            [0, left_ms] => Ok(Reservation::Refused {
                retry_after_secs: secs_from_ms(*left_ms).unwrap_or(1),
            }),
            [1, counts @ ..] if counts.len() == charges.len() => Ok(Reservation::Reserved(
                counts
                    .iter()
                    .map(|n| u32::try_from(*n).unwrap_or(u32::MAX))
                    .collect(),
            )),
            other => Err(Failure::msg(format!(
                "redis reservation: unexpected answer {other:?}"
            ))),
        }
    }

    async fn release(&self, key: &str) -> Result<(), Failure> {
        let mut conn = self.redis.connection().await?;
        let result: redis::RedisResult<i64> = self
            .release
            .key(self.key(key))
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => Err(self.redis.failed(error).await),
        }
    }

    async fn clear(&self, key: &str) -> Result<(), Failure> {
        let mut conn = self.redis.connection().await?;
        redis::cmd("DEL")
            .arg(self.key(key))
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| Failure::msg(format!("redis clear: {e}")))
    }
}
