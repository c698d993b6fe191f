//! The Redis backend, for jobs with several replicas: every replica sees the
//! same stores. Keys are `amimono:<app>:<store>:<key>`. Increment is
//! `INCRBY`; compare-and-swap is a Lua script, both atomic in Redis.

use super::backend::Backend;
use anyhow::{Context, Result};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// Stores in a Redis server.
pub struct Redis {
    prefix: String,
    connection: ConnectionManager,
}

const SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
if (ARGV[1] == '0' and current == false) or (ARGV[1] == '1' and current == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0";

impl Redis {
    /// Connects to `url` for app `app`.
    pub async fn connect(url: &str, app: &str) -> Result<Redis> {
        let client =
            redis::Client::open(url).with_context(|| format!("`{url}` is not a Redis URL"))?;
        let connection = ConnectionManager::new(client)
            .await
            .with_context(|| format!("connecting to Redis at {url}"))?;
        Ok(Redis {
            prefix: format!("amimono:{app}:"),
            connection,
        })
    }

    fn key(&self, store: &str, key: &str) -> String {
        format!("{}{store}:{key}", self.prefix)
    }
}

#[async_trait::async_trait]
impl Backend for Redis {
    async fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let mut c = self.connection.clone();
        c.get(self.key(store, key)).await.context("Redis GET")
    }

    async fn set(&self, store: &str, key: &str, value: Vec<u8>) -> Result<()> {
        let mut c = self.connection.clone();
        c.set(self.key(store, key), value)
            .await
            .context("Redis SET")
    }

    async fn delete(&self, store: &str, key: &str) -> Result<()> {
        let mut c = self.connection.clone();
        c.del(self.key(store, key)).await.context("Redis DEL")
    }

    async fn exists(&self, store: &str, key: &str) -> Result<bool> {
        let mut c = self.connection.clone();
        c.exists(self.key(store, key)).await.context("Redis EXISTS")
    }

    async fn list_keys(
        &self,
        store: &str,
        cursor: Option<u64>,
    ) -> Result<(Vec<String>, Option<u64>)> {
        let mut c = self.connection.clone();
        let prefix = self.key(store, "");
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor.unwrap_or(0))
            .arg("MATCH")
            .arg(format!("{}*", redis_glob_escape(&prefix)))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .context("Redis SCAN")?;
        let keys = keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
            .collect();
        Ok((keys, (next != 0).then_some(next)))
    }

    async fn increment(&self, store: &str, key: &str, delta: u64) -> Result<u64> {
        let delta = i64::try_from(delta)
            .context("the increment does not fit Redis' signed 64-bit counters")?;
        let mut c = self.connection.clone();
        let next: i64 = c
            .incr(self.key(store, key), delta)
            .await
            .context("Redis INCRBY")?;
        u64::try_from(next).context("the counter is negative")
    }

    async fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool> {
        let mut c = self.connection.clone();
        let (present, old) = match expected {
            Some(old) => ("1", old),
            None => ("0", Vec::new()),
        };
        let swapped: i64 = redis::Script::new(SWAP)
            .key(self.key(store, key))
            .arg(present)
            .arg(old)
            .arg(new)
            .invoke_async(&mut c)
            .await
            .context("Redis compare-and-swap script")?;
        Ok(swapped == 1)
    }
}

/// Escapes Redis glob characters in `text`.
fn redis_glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
