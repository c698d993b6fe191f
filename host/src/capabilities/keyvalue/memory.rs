//! The in-memory backend: one map per process, gone when it exits. For
//! `_local` runs and tests that ask for it (`AMIMONO_KEYVALUE=memory`).

use super::backend::{Backend, PAGE, add, parse_counter};
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Stores in a process-wide map.
#[derive(Default)]
pub struct Memory {
    data: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl Memory {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<(String, String), Vec<u8>>) -> R) -> Result<R> {
        let mut data = self
            .data
            .lock()
            .map_err(|_| anyhow::anyhow!("the in-memory store is poisoned"))?;
        Ok(f(&mut data))
    }
}

fn id(store: &str, key: &str) -> (String, String) {
    (store.to_string(), key.to_string())
}

#[async_trait::async_trait]
impl Backend for Memory {
    async fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|d| d.get(&id(store, key)).cloned())
    }

    async fn set(&self, store: &str, key: &str, value: Vec<u8>) -> Result<()> {
        self.with(|d| {
            d.insert(id(store, key), value);
        })
    }

    async fn delete(&self, store: &str, key: &str) -> Result<()> {
        self.with(|d| {
            d.remove(&id(store, key));
        })
    }

    async fn list_keys(
        &self,
        store: &str,
        cursor: Option<u64>,
    ) -> Result<(Vec<String>, Option<u64>)> {
        let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        self.with(|d| {
            let keys: Vec<String> = d
                .keys()
                .filter(|(s, _)| s == store)
                .skip(skip)
                .take(PAGE + 1)
                .map(|(_, k)| k.clone())
                .collect();
            page(keys, skip)
        })
    }

    async fn increment(&self, store: &str, key: &str, delta: u64) -> Result<u64> {
        self.with(|d| {
            let entry = d.entry(id(store, key)).or_insert_with(|| b"0".to_vec());
            let next = add(parse_counter(entry)?, delta)?;
            *entry = next.to_string().into_bytes();
            Ok(next)
        })?
    }

    async fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool> {
        self.with(|d| {
            let id = id(store, key);
            if d.get(&id) == expected.as_ref() {
                d.insert(id, new);
                true
            } else {
                false
            }
        })
    }
}

/// Cuts a page of at most [`PAGE`] keys (fetched with one extra) starting
/// at offset `skip`.
pub fn page(mut keys: Vec<String>, skip: usize) -> (Vec<String>, Option<u64>) {
    if keys.len() > PAGE {
        keys.truncate(PAGE);
        (keys, Some((skip + PAGE) as u64))
    } else {
        (keys, None)
    }
}
