//! What a key-value backend must do. Values are bytes; counters are stored
//! as decimal text (as wasmtime's `wasi:keyvalue` and Redis do), so a value
//! set by one backend reads the same through another.

use anyhow::Result;

/// Keys returned per `list-keys` page.
pub const PAGE: usize = 1000;

/// A key-value backend, shared by every store of an app. `store` is the
/// store's name; backends keep stores apart.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// The value of `key`, if any.
    async fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets `key` to `value`.
    async fn set(&self, store: &str, key: &str, value: Vec<u8>) -> Result<()>;
    /// Removes `key` (absent is fine).
    async fn delete(&self, store: &str, key: &str) -> Result<()>;
    /// Whether `key` has a value.
    async fn exists(&self, store: &str, key: &str) -> Result<bool> {
        Ok(self.get(store, key).await?.is_some())
    }
    /// A page of keys after `cursor` (an opaque position); the next cursor,
    /// or `None` at the end.
    async fn list_keys(
        &self,
        store: &str,
        cursor: Option<u64>,
    ) -> Result<(Vec<String>, Option<u64>)>;
    /// Atomically adds `delta` to the counter at `key` (absent counts as 0);
    /// the new value.
    async fn increment(&self, store: &str, key: &str, delta: u64) -> Result<u64>;
    /// Atomically sets `key` to `new` if its value is `expected` (`None`:
    /// absent); whether it did.
    async fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool>;
    /// The values of `keys`, in order.
    async fn get_many(
        &self,
        store: &str,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.get(store, &key).await?;
            values.push(value.map(|v| (key, v)));
        }
        Ok(values)
    }
    /// Sets every pair.
    async fn set_many(&self, store: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<()> {
        for (key, value) in pairs {
            self.set(store, &key, value).await?;
        }
        Ok(())
    }
    /// Removes every key.
    async fn delete_many(&self, store: &str, keys: Vec<String>) -> Result<()> {
        for key in keys {
            self.delete(store, &key).await?;
        }
        Ok(())
    }
}

/// Parses a counter's stored text.
pub fn parse_counter(value: &[u8]) -> Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("the value is not a counter (decimal text of a u64)"))
}

/// `current + delta`, or an overflow error.
pub fn add(current: u64, delta: u64) -> Result<u64> {
    current
        .checked_add(delta)
        .ok_or_else(|| anyhow::anyhow!("overflow incrementing the counter"))
}
