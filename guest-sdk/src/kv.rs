//! Key-value stores, through the standard `wasi:keyvalue` interfaces (and
//! Amimono's compare-and-swap): [`Store`] for bytes and counters, [`Typed`]
//! for serde values with [`Typed::modify`] (read-modify-write that retries
//! on conflict), and [`Index`], a secondary index over a typed store. A
//! component may open only the stores its manifest entry lists
//! (`keyvalue = ["visits"]`).

#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "amimono:runtime/keyvalue-guest",
        generate_all,
    });
}

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::marker::PhantomData;
use wit::amimono::keyvalue::cas;
use wit::wasi::keyvalue::{atomics, batch, store};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The store does not exist.
    NoSuchStore,
    /// The manifest does not grant this component the store.
    AccessDenied,
    /// The backend failed, or a value did not decode.
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchStore => f.write_str("no such store"),
            Error::AccessDenied => f.write_str("access to the store is denied"),
            Error::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NoSuchStore => Error::NoSuchStore,
            store::Error::AccessDenied => Error::AccessDenied,
            store::Error::Other(message) => Error::Other(message),
        }
    }
}

/// Result of store operations.
pub type Result<T> = std::result::Result<T, Error>;

/// An open store.
pub struct Store {
    bucket: store::Bucket,
}

impl Store {
    /// Opens the store `name`.
    pub fn open(name: &str) -> Result<Store> {
        Ok(Store {
            bucket: store::open(name)?,
        })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.bucket.get(key)?)
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        Ok(self.bucket.set(key, value)?)
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) -> Result<()> {
        Ok(self.bucket.delete(key)?)
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.bucket.exists(key)?)
    }

    /// Every key of the store.
    pub fn keys(&self) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.bucket.list_keys(cursor)?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Adds `delta` to the counter at `key` atomically; the new value.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64> {
        Ok(atomics::increment(&self.bucket, key, delta)?)
    }

    /// Sets `key` to `new` if its value is `expected` (`None`: absent),
    /// atomically; whether it did.
    pub fn swap(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> Result<bool> {
        Ok(cas::swap(&self.bucket, key, expected, new)?)
    }

    /// The values of `keys`.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(batch::get_many(&self.bucket, keys)?
            .into_iter()
            .map(|pair| pair.map(|(_, value)| value))
            .collect())
    }
}

/// A store of serde values (JSON-encoded).
pub struct Typed<T> {
    store: Store,
    _values: PhantomData<T>,
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Other(format!("cannot decode a stored value: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Other(format!("cannot encode a value: {e}")))
}

impl<T: Serialize + DeserializeOwned> Typed<T> {
    /// Opens the store `name` for values of type `T`.
    pub fn open(name: &str) -> Result<Typed<T>> {
        Ok(Typed {
            store: Store::open(name)?,
            _values: PhantomData,
        })
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Result<Option<T>> {
        self.store.get(key)?.map(|bytes| decode(&bytes)).transpose()
    }

    /// Stores `value` at `key`.
    pub fn put(&self, key: &str, value: &T) -> Result<()> {
        self.store.set(key, &encode(value)?)
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) -> Result<()> {
        self.store.delete(key)
    }

    /// Reads the value at `key`, applies `change`, and writes the result
    /// (`None` deletes) — atomically: if another writer changed the value
    /// in between, it reads again and retries. The value written.
    pub fn modify(
        &self,
        key: &str,
        change: impl FnMut(Option<T>) -> Option<T>,
    ) -> Result<Option<T>> {
        modify_in(&self.store, key, change)
    }

    /// The underlying byte store.
    pub fn raw(&self) -> &Store {
        &self.store
    }
}

/// Read-modify-write of the serde value at `key` of `store`, retried on
/// conflict with compare-and-swap.
fn modify_in<V: Serialize + DeserializeOwned>(
    store: &Store,
    key: &str,
    mut change: impl FnMut(Option<V>) -> Option<V>,
) -> Result<Option<V>> {
    for _ in 0..64 {
        let current = store.get(key)?;
        let old = current.as_deref().map(decode).transpose()?;
        match change(old) {
            Some(value) => {
                if store.swap(key, current.as_deref(), &encode(&value)?)? {
                    return Ok(Some(value));
                }
            }
            None => {
                if current.is_none() {
                    return Ok(None);
                }
                if store.get(key)? == current {
                    store.delete(key)?;
                    return Ok(None);
                }
            }
        }
    }
    Err(Error::Other(format!(
        "`{key}` kept changing: gave up after 64 attempts"
    )))
}

/// A secondary index over a [`Typed`] store: maps a derived value (say, an
/// e-mail address) to the keys of the records that have it. Keep it up to
/// date by writing through [`Index::put`].
pub struct Index<'a, T> {
    records: &'a Typed<T>,
    name: String,
    derive: fn(&T) -> String,
}

impl<'a, T: Serialize + DeserializeOwned> Index<'a, T> {
    /// An index called `name` over `records`, on the value `derive` computes.
    pub fn new(records: &'a Typed<T>, name: &str, derive: fn(&T) -> String) -> Index<'a, T> {
        Index {
            records,
            name: name.to_string(),
            derive,
        }
    }

    fn entry(&self, value: &str) -> String {
        format!("\u{0}index\u{0}{}\u{0}{value}", self.name)
    }

    /// Stores `record` at `key` and updates the index.
    pub fn put(&self, key: &str, record: &T) -> Result<()> {
        let previous = self.records.get(key)?;
        self.records.put(key, record)?;
        let new_value = (self.derive)(record);
        if let Some(previous) = previous {
            let old_value = (self.derive)(&previous);
            if old_value != new_value {
                self.unlink(&old_value, key)?;
            }
        }
        modify_in::<Vec<String>>(&self.records.store, &self.entry(&new_value), |keys| {
            let mut keys = keys.unwrap_or_default();
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_string());
            }
            Some(keys)
        })?;
        Ok(())
    }

    fn unlink(&self, value: &str, key: &str) -> Result<()> {
        modify_in::<Vec<String>>(&self.records.store, &self.entry(value), |keys| {
            let keys: Vec<String> = keys
                .unwrap_or_default()
                .into_iter()
                .filter(|k| k != key)
                .collect();
            (!keys.is_empty()).then_some(keys)
        })?;
        Ok(())
    }

    /// The records whose derived value is `value`.
    pub fn lookup(&self, value: &str) -> Result<Vec<T>> {
        let keys: Option<Vec<String>> = self
            .records
            .store
            .get(&self.entry(value))?
            .map(|bytes| decode(&bytes))
            .transpose()?;
        let mut records = Vec::new();
        for key in keys.unwrap_or_default() {
            if let Some(record) = self.records.get(&key)? {
                records.push(record);
            }
        }
        Ok(records)
    }
}
