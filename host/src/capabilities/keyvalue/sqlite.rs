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
//!
//! Checkpoints (copying the WAL back into the database, the only step that
//! `fsync`s) run on a background thread with a connection of its own, every
//! [`CHECKPOINT_EVERY`]: a passive checkpoint does not block writers, so a
//! slow disk flush never holds the connection requests wait for (with
//! SQLite's automatic checkpoints, the commit that crossed the threshold did
//! it, and every request behind it waited).

use super::backend::{Backend, PAGE, add, parse_counter};
use super::memory::page;
use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the background thread checkpoints the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Frames in the WAL (of a page each, 4 KiB) from which a checkpoint makes
/// the next commit start it over.
const RESTART_FRAMES: u64 = 8192;
/// The WAL file is truncated back to this after a checkpoint restarts it.
const WAL_SIZE_LIMIT: u64 = 64 << 20;

const SELECT: &str = "SELECT value FROM kv WHERE store = ?1 AND key = ?2";
const UPSERT: &str = "INSERT INTO kv (store, key, value) VALUES (?1, ?2, ?3)
     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value";
const DELETE: &str = "DELETE FROM kv WHERE store = ?1 AND key = ?2";

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
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
            ))
            .context("turning SQLite's automatic checkpoints off")?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .context("setting the SQLite busy timeout")?;
        let connection = Arc::new(Mutex::new(connection));
        start_checkpoints(path, Arc::downgrade(&connection))?;
        Ok(Sqlite { connection })
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

/// Checkpoints the WAL of `path` every [`CHECKPOINT_EVERY`] on a thread of
/// its own until `serving` is dropped.
///
/// A passive checkpoint beside running writers copies and flushes most of
/// the WAL, but never all of it, and SQLite starts the WAL over only after a
/// checkpoint that caught up with the last commit. So once the WAL holds
/// [`RESTART_FRAMES`], a second checkpoint runs holding `serving`'s lock:
/// it has only the frames committed since the first to copy, and the next
/// commit starts the WAL over.
fn start_checkpoints(path: &Path, serving: Weak<Mutex<Connection>>) -> Result<()> {
    let checkpointer = Connection::open(path)
        .with_context(|| format!("opening the key-value database {}", path.display()))?;
    let shown = path.display().to_string();
    std::thread::Builder::new()
        .name("amimono-sqlite-checkpoint".into())
        .spawn(move || {
            let mut failing = false;
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                let outcome = checkpoint(&checkpointer).and_then(|frames| {
                    if frames < RESTART_FRAMES {
                        return Ok(());
                    }
                    let Some(serving) = serving.upgrade() else {
                        return Ok(());
                    };
                    let _writers_wait = serving.lock();
                    checkpoint(&checkpointer).map(|_| ())
                });
                if serving.strong_count() == 0 {
                    return;
                }
                match outcome {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(database = %shown, "checkpointing the key-value WAL failed: {e}");
                    }
                    Err(_) => {}
                }
            }
        })
        .context("starting the SQLite checkpoint thread")?;
    Ok(())
}

/// A passive checkpoint; the frames in the WAL.
fn checkpoint(connection: &Connection) -> rusqlite::Result<u64> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        row.get::<_, i64>(1).map(|frames| frames.max(0) as u64)
    })
}

#[async_trait::async_trait]
impl Backend for Sqlite {
    async fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(move |c| {
            c.prepare_cached(SELECT)
                .context("reading a value")?
                .query_row(params![store, key], |row| row.get(0))
                .optional()
                .context("reading a value")
        })
        .await
    }

    async fn set(&self, store: &str, key: &str, value: Vec<u8>) -> Result<()> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(move |c| {
            c.prepare_cached(UPSERT)
                .context("writing a value")?
                .execute(params![store, key, value])
                .context("writing a value")?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, store: &str, key: &str) -> Result<()> {
        let (store, key) = (store.to_string(), key.to_string());
        self.run(move |c| {
            c.prepare_cached(DELETE)
                .context("deleting a value")?
                .execute(params![store, key])
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
                .prepare_cached(SELECT)
                .context("reading a value")?
                .query_row(params![store, key], |row| row.get(0))
                .optional()
                .context("reading a counter")?;
            let next = add(current.as_deref().map_or(Ok(0), parse_counter)?, delta)?;
            tx.prepare_cached(UPSERT)
                .context("writing a value")?
                .execute(params![store, key, next.to_string().into_bytes()])
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
                .prepare_cached(SELECT)
                .context("reading a value")?
                .query_row(params![store, key], |row| row.get(0))
                .optional()
                .context("reading a value")?;
            if current != expected {
                return Ok(false);
            }
            tx.prepare_cached(UPSERT)
                .context("writing a value")?
                .execute(params![store, key, new])
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
                tx.prepare_cached(UPSERT)
                    .context("writing a value")?
                    .execute(params![store, key, value])
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
                tx.prepare_cached(DELETE)
                    .context("deleting a value")?
                    .execute(params![store, key])
                    .context("deleting a value")?;
            }
            tx.commit().context("committing a batch")
        })
        .await
    }
}
