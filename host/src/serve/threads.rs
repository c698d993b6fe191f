//! Serving threads: one single-threaded tokio runtime per core. Each accepted
//! connection is handed to one of them and lives there for good: its HTTP
//! parsing, the guest's instance, the tasks the request spawns and the
//! replenishing of spare instances all run on that one thread.
//!
//! Why: on a work-stealing runtime every spawned task and every channel
//! message may wake another worker, and a cross-core wake-up costs tens of
//! microseconds on a virtual machine (a futex call and an inter-processor
//! interrupt) — more than instantiating a small graph. Handing over the
//! connection costs one such wake-up per connection instead of several per
//! request.

use anyhow::{Context, Result};
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::Handle;

thread_local! {
    /// The index of the serving thread this is, if it is one.
    static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Environment variable setting how many serving threads a job runs
/// (default: one per core this process may use).
pub const THREADS_ENV: &str = "AMIMONO_SERVING_THREADS";

/// How many serving threads [`ServingThreads::per_core`] starts:
/// `AMIMONO_SERVING_THREADS`, else one per core this process may use.
pub fn per_core_count() -> usize {
    std::env::var(THREADS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// The index of the serving thread running the caller (`None` elsewhere).
pub fn current_index() -> Option<usize> {
    INDEX.with(Cell::get)
}

/// The serving threads of a process.
pub struct ServingThreads {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

impl ServingThreads {
    /// Starts `count` threads (at least one), each running its own
    /// single-threaded runtime until the process exits.
    pub fn start(count: usize) -> Result<ServingThreads> {
        let mut handles = Vec::new();
        for index in 0..count.max(1) {
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("amimono-serve-{index}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(Some(index)));
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = sender.send(Err(e));
                            return;
                        }
                    };
                    let _ = sender.send(Ok(runtime.handle().clone()));
                    runtime.block_on(std::future::pending::<()>());
                })
                .context("starting a serving thread")?;
            let handle = receiver
                .recv()
                .context("a serving thread stopped while starting")?
                .context("starting a serving thread's runtime")?;
            handles.push(handle);
        }
        Ok(ServingThreads {
            handles,
            next: AtomicUsize::new(0),
        })
    }

    /// One thread per core this process may use ([`per_core_count`]).
    pub fn per_core() -> Result<ServingThreads> {
        ServingThreads::start(per_core_count())
    }

    /// Runs `task` on the next thread, round-robin.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[index].spawn(task);
    }
}
