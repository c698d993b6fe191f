//! Warm spares: a few instances of a graph made ahead of time, so a request
//! or remote call does not wait for instantiation. Each spare is used once
//! and thrown away, exactly like an instance made on demand: state never
//! survives a request. When the spares run out (a burst), the request
//! instantiates inline.
//!
//! Spares are made by a task that the *finished* request spawns
//! ([`Warm::replenish`]): on a serving thread it runs on that same thread once
//! the answer is out, so making a spare neither delays an answer nor wakes
//! another core.

use crate::host_state::HostState;
use anyhow::Result;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::Store;

/// Instances kept ready per graph.
pub const SPARES: usize = 2;

/// Makes one fresh instance (a store and what was instantiated in it).
pub type Factory<T> = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<(Store<HostState>, T)>> + Send>> + Send + Sync,
>;

/// Ready instances of one graph.
pub struct Warm<T> {
    label: String,
    ready: Mutex<Vec<(Store<HostState>, T)>>,
    /// Spares being made right now.
    making: AtomicUsize,
    factory: Factory<T>,
}

impl<T: Send + 'static> Warm<T> {
    /// A pool for the graph of `label`, filled in the background (call
    /// inside a tokio runtime).
    pub fn new(label: &str, factory: Factory<T>) -> Arc<Warm<T>> {
        let warm = Arc::new(Warm {
            label: label.to_string(),
            ready: Mutex::new(Vec::with_capacity(SPARES)),
            making: AtomicUsize::new(0),
            factory,
        });
        warm.replenish();
        warm
    }

    /// A fresh instance: a spare if one is ready, else made now.
    pub async fn take(&self) -> Result<(Store<HostState>, T)> {
        let spare = self.ready.lock().ok().and_then(|mut ready| ready.pop());
        match spare {
            Some(instance) => Ok(instance),
            None => (self.factory)().await,
        }
    }

    /// Spawns tasks that make spares until [`SPARES`] are ready or being
    /// made. Call it when a request is done with its instance.
    pub fn replenish(self: &Arc<Self>) {
        let ready = self.ready.lock().map_or(SPARES, |r| r.len());
        let mut making = self.making.load(Ordering::Acquire);
        while ready + making < SPARES {
            match self.making.compare_exchange(
                making,
                making + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let warm = self.clone();
                    tokio::spawn(async move { warm.make_one().await });
                    making += 1;
                }
                Err(now) => making = now,
            }
        }
    }

    async fn make_one(&self) {
        let made = (self.factory)().await;
        self.making.fetch_sub(1, Ordering::AcqRel);
        match made {
            Ok(instance) => {
                if let Ok(mut ready) = self.ready.lock() {
                    ready.push(instance);
                }
            }
            Err(e) => {
                tracing::warn!(component = %self.label, error = %format!("{e:#}"), "cannot make a spare instance");
            }
        }
    }
}
