//! Warm spares: a few instances of a graph made ahead of time by a background
//! task, so a request or remote call does not wait for instantiation (~30 µs
//! for a three-component graph). Each spare is used once and thrown away,
//! exactly like an instance made on demand: state never survives a request.
//! When the spares run out (a burst), the request instantiates inline.

use crate::host_state::HostState;
use anyhow::Result;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use wasmtime::Store;

/// Instances kept ready per graph.
pub const SPARES: usize = 2;

/// Makes one fresh instance (a store and what was instantiated in it).
pub type Factory<T> = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<(Store<HostState>, T)>> + Send>> + Send + Sync,
>;

/// Ready instances of one graph.
pub struct Warm<T> {
    ready: Mutex<mpsc::Receiver<(Store<HostState>, T)>>,
    factory: Factory<T>,
}

impl<T: Send + 'static> Warm<T> {
    /// Starts a task that keeps [`SPARES`] instances made by `factory` ready.
    /// Must be called inside a tokio runtime.
    pub fn new(label: &str, factory: Factory<T>) -> Warm<T> {
        let (sender, ready) = mpsc::channel(SPARES);
        let make = factory.clone();
        let label = label.to_string();
        tokio::spawn(async move {
            loop {
                match make().await {
                    Ok(instance) => {
                        if sender.send(instance).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(component = %label, error = %format!("{e:#}"), "cannot make a spare instance");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Warm {
            ready: Mutex::new(ready),
            factory,
        }
    }

    /// A fresh instance: a spare if one is ready, else made now.
    pub async fn take(&self) -> Result<(Store<HostState>, T)> {
        let spare = self
            .ready
            .lock()
            .ok()
            .and_then(|mut ready| ready.try_recv().ok());
        match spare {
            Some(instance) => Ok(instance),
            None => (self.factory)().await,
        }
    }
}
