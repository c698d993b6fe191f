//! `wasi:keyvalue@0.2.0-draft` (store, atomics, batch) and Amimono's
//! compare-and-swap extension (`amimono:keyvalue/cas`), per component: a
//! component may open only the stores the manifest grants it
//! (`keyvalue = ["visits"]`). Backends: SQLite by default (durable, one file
//! per app), in-memory, or Redis (several replicas), chosen by the
//! manifest's `[keyvalue]` table or `AMIMONO_KEYVALUE`.

mod backend;
mod memory;
mod redis;
mod sqlite;

pub use backend::Backend;

use super::{Capability, JobCapability, JobSetup, MemberInterface, NothingToLink};
use crate::app::App;
use crate::host_state::HostState;
use crate::manifest::{ComponentSpec, KeyValueBackend};
use crate::wasmtime_error::IntoAnyhow;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{ComponentType, Linker, Lower, Resource, ResourceType};

/// Environment variable that overrides the manifest's backend:
/// `memory`, `sqlite`, `sqlite:<file>` or a `redis://` URL.
pub const BACKEND_ENV: &str = "AMIMONO_KEYVALUE";

/// The backend a process uses, as chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendChoice {
    /// In memory, per process.
    Memory,
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A Redis server.
    Redis(String),
}

impl BackendChoice {
    /// The choice for `app`: `AMIMONO_KEYVALUE`, else the manifest, else
    /// SQLite in `data_dir/<app>.sqlite`.
    pub fn for_app(app: &App, data_dir: &Path) -> Result<BackendChoice> {
        let default_file = data_dir.join(format!("{}.sqlite", app.name()));
        if let Ok(value) = std::env::var(BACKEND_ENV) {
            return Ok(match value.as_str() {
                "memory" => BackendChoice::Memory,
                "sqlite" => BackendChoice::Sqlite(default_file),
                url if url.starts_with("redis://") || url.starts_with("rediss://") => {
                    BackendChoice::Redis(url.to_string())
                }
                other => match other.strip_prefix("sqlite:") {
                    Some(file) => BackendChoice::Sqlite(PathBuf::from(file)),
                    None => anyhow::bail!(
                        "{BACKEND_ENV}=`{other}` is not a key-value backend: use `memory`, `sqlite`, `sqlite:<file>` or a `redis://` URL"
                    ),
                },
            });
        }
        let section = &app.manifest.keyvalue;
        Ok(match section.backend {
            KeyValueBackend::Memory => BackendChoice::Memory,
            KeyValueBackend::Sqlite => BackendChoice::Sqlite(
                section
                    .path
                    .as_ref()
                    .map(|p| app.manifest.dir.join(p))
                    .unwrap_or(default_file),
            ),
            KeyValueBackend::Redis => BackendChoice::Redis(section.url.clone().unwrap_or_default()),
        })
    }

    /// Opens the backend for `app`.
    pub async fn open(&self, app: &str) -> Result<Arc<dyn Backend>> {
        Ok(match self {
            BackendChoice::Memory => Arc::new(memory::Memory::default()),
            BackendChoice::Sqlite(file) => Arc::new(sqlite::Sqlite::open(file)?),
            BackendChoice::Redis(url) => Arc::new(redis::Redis::connect(url, app).await?),
        })
    }
}

/// `wasi:keyvalue/store`.
pub const STORE: MemberInterface = MemberInterface::new("wasi:keyvalue/store", "keyvalue-store");
/// `wasi:keyvalue/atomics`.
pub const ATOMICS: MemberInterface =
    MemberInterface::new("wasi:keyvalue/atomics", "keyvalue-atomics");
/// `wasi:keyvalue/batch`.
pub const BATCH: MemberInterface = MemberInterface::new("wasi:keyvalue/batch", "keyvalue-batch");
/// `amimono:keyvalue/cas`: compare-and-swap.
pub const CAS: MemberInterface = MemberInterface::new("amimono:keyvalue/cas", "keyvalue-cas");

/// Key-value stores per component, over one backend per job.
pub struct KeyValue;

#[async_trait::async_trait]
impl Capability for KeyValue {
    fn name(&self) -> &'static str {
        "key-value"
    }

    fn interfaces(&self) -> &'static [MemberInterface] {
        &[STORE, ATOMICS, BATCH, CAS]
    }

    fn missing_grant(&self, component: &ComponentSpec, _: MemberInterface) -> Option<String> {
        component.keyvalue.is_empty().then(|| {
            format!(
                "`keyvalue = [\"<store>\"]` in [components.{}]",
                component.label
            )
        })
    }

    /// Opens the backend if any member is granted a store (`data_dir` holds
    /// the SQLite file by default).
    async fn open(&self, job: &JobSetup<'_>) -> Result<Arc<dyn JobCapability>> {
        let stores: BTreeMap<String, Arc<BTreeSet<String>>> = job
            .member_specs()
            .map(|spec| {
                (
                    spec.label.clone(),
                    Arc::new(spec.keyvalue.iter().cloned().collect()),
                )
            })
            .collect();
        if stores.values().all(|s| s.is_empty()) {
            return Ok(Arc::new(NothingToLink));
        }
        let app = job.app;
        let choice = BackendChoice::for_app(app, job.data_dir)?;
        let backend = choice
            .open(app.name())
            .await
            .with_context(|| format!("opening the key-value backend ({choice:?})"))?;
        tracing::info!(backend = ?choice, "key-value stores open");
        Ok(Arc::new(OpenKeyValue { backend, stores }))
    }
}

struct OpenKeyValue {
    backend: Arc<dyn Backend>,
    stores: BTreeMap<String, Arc<BTreeSet<String>>>,
}

impl JobCapability for OpenKeyValue {
    fn add_to_linker(
        &self,
        linker: &mut Linker<HostState>,
        interface: MemberInterface,
        import_name: &str,
        label: &str,
    ) -> Result<()> {
        let backend = self.backend.clone();
        match interface {
            STORE => {
                let stores = self.stores.get(label).cloned().unwrap_or_default();
                add_store(linker, import_name, label, stores, backend)
            }
            ATOMICS => add_atomics(linker, import_name, backend),
            BATCH => add_batch(linker, import_name, backend),
            _ => add_cas(linker, import_name, backend),
        }
    }
}

/// An open bucket: the store it names.
pub struct Bucket {
    store: String,
}

/// `error` of `wasi:keyvalue/store`.
#[derive(Debug, Clone, ComponentType, Lower)]
#[component(variant)]
#[allow(dead_code, reason = "the cases give the WIT type its shape")]
enum KvError {
    #[component(name = "no-such-store")]
    NoSuchStore,
    #[component(name = "access-denied")]
    AccessDenied,
    #[component(name = "other")]
    Other(String),
}

fn other(e: anyhow::Error) -> KvError {
    KvError::Other(format!("{e:#}"))
}

/// `key-response` of `wasi:keyvalue/store`.
#[derive(Debug, Clone, ComponentType, Lower)]
#[component(record)]
struct KeyResponse {
    keys: Vec<String>,
    cursor: Option<u64>,
}

/// The store a bucket handle names.
fn store_of(state: &mut HostState, bucket: &Resource<Bucket>) -> wasmtime::Result<String> {
    Ok(state.table().get(bucket)?.store.clone())
}

/// Defines `wasi:keyvalue/store` for one member: it may open `stores`.
fn add_store(
    linker: &mut Linker<HostState>,
    import_name: &str,
    label: &str,
    stores: Arc<BTreeSet<String>>,
    backend: Arc<dyn Backend>,
) -> Result<()> {
    let mut instance = crate::capabilities::member_instance(linker, import_name)?;
    instance
        .resource(
            "bucket",
            ResourceType::host::<Bucket>(),
            |mut store, rep| {
                store
                    .data_mut()
                    .table()
                    .delete(Resource::<Bucket>::new_own(rep))?;
                Ok(())
            },
        )
        .anyhow()?;
    let label = label.to_string();
    instance
        .func_wrap("open", move |mut store, (identifier,): (String,)| {
            if !stores.contains(&identifier) {
                tracing::warn!(component = %label, store = %identifier, "refused to open a key-value store the manifest does not grant");
                return Ok((Err::<Resource<Bucket>, _>(KvError::AccessDenied),));
            }
            let bucket = store.data_mut().table().push(Bucket { store: identifier })?;
            Ok((Ok(bucket),))
        })
        .anyhow()?;
    let b = backend.clone();
    instance
        .func_wrap_async(
            "[method]bucket.get",
            move |mut store, (this, key): (Resource<Bucket>, String)| {
                let (b, name) = (b.clone(), store_of(store.data_mut(), &this));
                Box::new(async move { Ok((b.get(&name?, &key).await.map_err(other),)) })
            },
        )
        .anyhow()?;
    let b = backend.clone();
    instance
        .func_wrap_async(
            "[method]bucket.set",
            move |mut store, (this, key, value): (Resource<Bucket>, String, Vec<u8>)| {
                let (b, name) = (b.clone(), store_of(store.data_mut(), &this));
                Box::new(async move { Ok((b.set(&name?, &key, value).await.map_err(other),)) })
            },
        )
        .anyhow()?;
    let b = backend.clone();
    instance
        .func_wrap_async(
            "[method]bucket.delete",
            move |mut store, (this, key): (Resource<Bucket>, String)| {
                let (b, name) = (b.clone(), store_of(store.data_mut(), &this));
                Box::new(async move { Ok((b.delete(&name?, &key).await.map_err(other),)) })
            },
        )
        .anyhow()?;
    let b = backend.clone();
    instance
        .func_wrap_async(
            "[method]bucket.exists",
            move |mut store, (this, key): (Resource<Bucket>, String)| {
                let (b, name) = (b.clone(), store_of(store.data_mut(), &this));
                Box::new(async move { Ok((b.exists(&name?, &key).await.map_err(other),)) })
            },
        )
        .anyhow()?;
    instance
        .func_wrap_async(
            "[method]bucket.list-keys",
            move |mut store, (this, cursor): (Resource<Bucket>, Option<u64>)| {
                let (b, name) = (backend.clone(), store_of(store.data_mut(), &this));
                Box::new(async move {
                    let listed = b
                        .list_keys(&name?, cursor)
                        .await
                        .map(|(keys, cursor)| KeyResponse { keys, cursor })
                        .map_err(other);
                    Ok((listed,))
                })
            },
        )
        .anyhow()?;
    Ok(())
}

/// Defines `wasi:keyvalue/atomics` for one member.
fn add_atomics(
    linker: &mut Linker<HostState>,
    import_name: &str,
    backend: Arc<dyn Backend>,
) -> Result<()> {
    let mut instance = crate::capabilities::member_instance(linker, import_name)?;
    instance
        .func_wrap_async(
            "increment",
            move |mut store, (bucket, key, delta): (Resource<Bucket>, String, u64)| {
                let (b, name) = (backend.clone(), store_of(store.data_mut(), &bucket));
                Box::new(
                    async move { Ok((b.increment(&name?, &key, delta).await.map_err(other),)) },
                )
            },
        )
        .anyhow()?;
    Ok(())
}

/// Defines `wasi:keyvalue/batch` for one member.
fn add_batch(
    linker: &mut Linker<HostState>,
    import_name: &str,
    backend: Arc<dyn Backend>,
) -> Result<()> {
    let mut instance = crate::capabilities::member_instance(linker, import_name)?;
    let b = backend.clone();
    instance
        .func_wrap_async(
            "get-many",
            move |mut store, (bucket, keys): (Resource<Bucket>, Vec<String>)| {
                let (b, name) = (b.clone(), store_of(store.data_mut(), &bucket));
                Box::new(async move { Ok((b.get_many(&name?, keys).await.map_err(other),)) })
            },
        )
        .anyhow()?;
    let b = backend.clone();
    instance
        .func_wrap_async(
            "set-many",
            move |mut store, (bucket, pairs): (Resource<Bucket>, Vec<(String, Vec<u8>)>)| {
                let (b, name) = (b.clone(), store_of(store.data_mut(), &bucket));
                Box::new(async move { Ok((b.set_many(&name?, pairs).await.map_err(other),)) })
            },
        )
        .anyhow()?;
    instance
        .func_wrap_async(
            "delete-many",
            move |mut store, (bucket, keys): (Resource<Bucket>, Vec<String>)| {
                let (b, name) = (backend.clone(), store_of(store.data_mut(), &bucket));
                Box::new(async move { Ok((b.delete_many(&name?, keys).await.map_err(other),)) })
            },
        )
        .anyhow()?;
    Ok(())
}

/// Defines `amimono:keyvalue/cas` for one member.
fn add_cas(
    linker: &mut Linker<HostState>,
    import_name: &str,
    backend: Arc<dyn Backend>,
) -> Result<()> {
    let mut instance = crate::capabilities::member_instance(linker, import_name)?;
    instance
        .func_wrap_async(
            "swap",
            move |mut store,
                  (bucket, key, expected, new): (
                Resource<Bucket>,
                String,
                Option<Vec<u8>>,
                Vec<u8>,
            )| {
                let (b, name) = (backend.clone(), store_of(store.data_mut(), &bucket));
                Box::new(
                    async move { Ok((b.swap(&name?, &key, expected, new).await.map_err(other),)) },
                )
            },
        )
        .anyhow()?;
    Ok(())
}
