//! The embedded default backend: one SQLite file per app (WAL journal), so
//! values survive restarts. Atomic operations run in `BEGIN IMMEDIATE`
//! transactions, so they are atomic across concurrent requests and across
//! processes sharing the file. SQLite calls block, so they run on tokio's
//! blocking pool.
//!
//! Durability: every write commits (its own statement, or one transaction
//! for a batch) before the guest's call returns. With `synchronous =
//! NORMAL` a commit is written to the WAL but not `fsync`ed, so an
//! acknowledged write survives the process being killed at any point, not
//! necessarily a power loss or an OS crash (an `fsync` per commit costs
//! ~100× as much; `docs/capabilities.md`, "Durability").

use super::backend::{Backend, PAGE, add, parse_counter};
use super::memory::page;
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Stores in one SQLite file.
pub struct Sqlite {
    connection: Arc<Mutex<Connection>>,
}

impl Sqlite {
    /// Opens (creating it if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Sqlite> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the data directory {}", dir.display()))?;
        }
        let connection = Connection::open(path)
            .with_context(|| format!("opening the key-value database {}", path.display()))?;
        connection
            .execute_batch(
                // See the module documentation for what NORMAL guarantees.
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS kv (
                     store TEXT NOT NULL,
                     key TEXT NOT NULL,
                     value BLOB NOT NULL,
                     PRIMARY KEY (store, key)
                 ) WITHOUT ROWID;",
            )
            .with_context(|| format!("preparing the key-value database {}", path.display()))?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .context("setting the SQLite busy timeout")?;
        Ok(Sqlite {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .map_err(|_| anyhow::anyhow!("the SQLite connection is poisoned"))?;
            f(&mut connection)
        })
        .await
        .context("the SQLite task failed")?
    }
}

#[async_trait::async_trait]
impl Backend for Sqlite {
    async fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(move |c| {
            c.query_row(
                "SELECT value FROM kv WHERE store = ?1 AND key = ?2",
                params![store, key],
                |row| row.get(0),
            )
            .optional()
            .context("reading a value")
        })
        .await
    }

    async fn set(&self, store: &str, key: &str, value: Vec<u8>) -> Result<()> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(move |c| {
            c.execute(
                "INSERT INTO kv (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                params![store, key, value],
            )
            .context("writing a value")?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, store: &str, key: &str) -> Result<()> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(move |c| {
            c.execute(
                "DELETE FROM kv WHERE store = ?1 AND key = ?2",
                params![store, key],
            )
            .context("deleting a value")?;
            Ok(())
        })
        .await
    }

    async fn list_keys(
        &self,
        store: &str,
        cursor: Option<u64>,
    ) -> Result<(Vec<String>, Option<u64>)> {
        let store = store.to_string();
        let skip = cursor.unwrap_or(0);
        self.run(move |c| {
            let mut statement = c
                .prepare("SELECT key FROM kv WHERE store = ?1 ORDER BY key LIMIT ?2 OFFSET ?3")
                .context("listing keys")?;
            let keys = statement
                .query_map(
                    params![
                        store,
                        (PAGE + 1) as i64,
                        i64::try_from(skip).unwrap_or(i64::MAX)
                    ],
                    |row| row.get::<_, String>(0),
                )
                .context("listing keys")?
                .collect::<Result<Vec<_>, _>>()
                .context("listing keys")?;
            Ok(page(keys, usize::try_from(skip).unwrap_or(usize::MAX)))
        })
        .await
    }

    async fn increment(&self, store: &str, key: &str, delta: u64) -> Result<u64> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .context("starting an increment")?;
            let current: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT value FROM kv WHERE store = ?1 AND key = ?2",
                    params![store, key],
                    |row| row.get(0),
                )
                .optional()
                .context("reading a counter")?;
            let next = add(current.as_deref().map_or(Ok(0), parse_counter)?, delta)?;
            tx.execute(
                "INSERT INTO kv (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                params![store, key, next.to_string().into_bytes()],
            )
            .context("writing a counter")?;
            tx.commit().context("committing an increment")?;
            Ok(next)
        })
        .await
    }

    async fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .context("starting a compare-and-swap")?;
            let current: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT value FROM kv WHERE store = ?1 AND key = ?2",
                    params![store, key],
                    |row| row.get(0),
                )
                .optional()
                .context("reading a value")?;
            if current != expected {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO kv (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                params![store, key, new],
            )
            .context("writing a value")?;
            tx.commit().context("committing a compare-and-swap")?;
            Ok(true)
        })
        .await
    }

    async fn set_many(&self, store: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<()> {
        let store = store.to_string();
        self.run(move |c| {
            let tx = c.transaction().context("starting a batch")?;
            for (key, value) in pairs {
                tx.execute(
                    "INSERT INTO kv (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                    params![store, key, value],
                )
                .context("writing a value")?;
            }
            tx.commit().context("committing a batch")
        })
        .await
    }

    async fn delete_many(&self, store: &str, keys: Vec<String>) -> Result<()> {
        let store = store.to_string();
        self.run(move |c| {
            let tx = c.transaction().context("starting a batch")?;
            for key in keys {
                tx.execute(
                    "DELETE FROM kv WHERE store = ?1 AND key = ?2",
                    params![store, key],
                )
                .context("deleting a value")?;
            }
            tx.commit().context("committing a batch")
        })
        .await
    }
}
