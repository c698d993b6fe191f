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
use prometheus::IntGauge;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use wasmtime::Store;

/// Instances kept ready per graph.
pub const SPARES: usize = 2;

/// Makes one fresh item (for a graph: a store and what was instantiated in it).
pub type Factory<T> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T>> + Send>> + Send + Sync>;

/// A fresh instance of a graph: its store and what was instantiated in it.
pub type Fresh<T> = (Store<HostState>, T);

/// Ready instances of one graph.
pub type Warm<T> = Spares<Fresh<T>>;

/// Items made ahead of time, at most [`SPARES`] ready or being made.
pub struct Spares<I> {
    label: String,
    ready: Mutex<Vec<I>>,
    /// Spares ready or being made: the one count that bounds them. Raised
    /// before a spare is started, lowered when one is taken or fails, so
    /// however tasks interleave there are never more than [`SPARES`].
    stocked: AtomicUsize,
    factory: Factory<I>,
    /// Spares ready now, exported.
    gauge: IntGauge,
}

impl<I: Send + 'static> Spares<I> {
    /// A pool for the graph of `label`, filled in the background (call
    /// inside a tokio runtime).
    pub fn new(label: &str, factory: Factory<I>, gauge: IntGauge) -> Arc<Spares<I>> {
        let warm = Arc::new(Spares {
            label: label.to_string(),
            ready: Mutex::new(Vec::with_capacity(SPARES)),
            stocked: AtomicUsize::new(0),
            factory,
            gauge,
        });
        warm.replenish();
        warm
    }

    /// A fresh item: a spare if one is ready, else made now.
    pub async fn take(&self) -> Result<I> {
        let spare = self.ready.lock().ok().and_then(|mut ready| ready.pop());
        match spare {
            Some(item) => {
                self.stocked.fetch_sub(1, Ordering::AcqRel);
                self.gauge.dec();
                Ok(item)
            }
            None => (self.factory)().await,
        }
    }

    /// Spawns tasks that make spares until [`SPARES`] are ready or being
    /// made. Call it when a request is done with its instance.
    pub fn replenish(self: &Arc<Self>) {
        let mut stocked = self.stocked.load(Ordering::Acquire);
        while stocked < SPARES {
            match self.stocked.compare_exchange(
                stocked,
                stocked + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let warm = self.clone();
                    tokio::spawn(async move { warm.make_one().await });
                    stocked += 1;
                }
                Err(now) => stocked = now,
            }
        }
    }

    async fn make_one(&self) {
        match (self.factory)().await {
            Ok(item) => match self.ready.lock() {
                Ok(mut ready) => {
                    ready.push(item);
                    self.gauge.inc();
                }
                Err(_) => {
                    self.stocked.fetch_sub(1, Ordering::AcqRel);
                }
            },
            Err(e) => {
                self.stocked.fetch_sub(1, Ordering::AcqRel);
                tracing::warn!(component = %self.label, error = %format!("{e:#}"), "cannot make a spare instance");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<I> Spares<I> {
        fn ready_count(&self) -> usize {
            self.ready.lock().map_or(0, |ready| ready.len())
        }
    }

    /// A factory that succeeds at once and counts how often it ran: on a
    /// multi-threaded runtime its spares finish while `replenish` still
    /// loops, the interleaving that once made spares without bound.
    fn counting_factory(made: Arc<AtomicUsize>) -> Factory<usize> {
        Arc::new(move || {
            let made = made.clone();
            Box::pin(async move { Ok(made.fetch_add(1, Ordering::AcqRel)) })
        })
    }

    /// Lets the spawned spares run: until `ready` spares are ready, then a
    /// little longer, so a spare made too many would be counted.
    fn gauge() -> IntGauge {
        IntGauge::new("spares", "spares").unwrap()
    }

    async fn settle<I: Send + 'static>(spares: &Spares<I>, ready: usize) {
        for _ in 0..2000 {
            if spares.ready_count() >= ready {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        for _ in 0..5 {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_than_spares_are_ready_or_made_however_often_replenished() {
        for _ in 0..200 {
            let made = Arc::new(AtomicUsize::new(0));
            let spares = Spares::new("x", counting_factory(made.clone()), gauge());
            for _ in 0..20 {
                spares.replenish();
            }
            settle(&spares, SPARES).await;
            assert_eq!(made.load(Ordering::Acquire), SPARES);
            assert_eq!(spares.ready_count(), SPARES);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_taken_spare_is_made_again_and_failures_are_not_counted_as_stock() {
        let made = Arc::new(AtomicUsize::new(0));
        let spares = Spares::new("x", counting_factory(made.clone()), gauge());
        settle(&spares, SPARES).await;
        spares.take().await.unwrap();
        spares.replenish();
        settle(&spares, SPARES).await;
        assert_eq!(made.load(Ordering::Acquire), SPARES + 1);
        assert_eq!(spares.ready_count(), SPARES);

        let failing: Factory<usize> = Arc::new(|| Box::pin(async { anyhow::bail!("no memory") }));
        let spares = Spares::new("y", failing, gauge());
        for _ in 0..2000 {
            if spares.stocked.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(
            spares.stocked.load(Ordering::Acquire),
            0,
            "a failed spare still counts"
        );
        assert_eq!(spares.ready_count(), 0);
    }
}
