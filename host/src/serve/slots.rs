//! Instance slots, per component: at most `max_instances` instances of a
//! component's graph alive at once, at most `max_queued` requests waiting for
//! one, each for at most `queue_timeout` (and never past its own deadline).
//! Each component has its own slots, so one component's load cannot starve
//! another's; a request that cannot get a slot is refused with 503 and
//! `Retry-After` instead of waiting forever.

use crate::limits::Limits;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Why no slot was had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// `max_queued` requests are waiting already.
    #[error("{waiting} requests are already waiting for an instance")]
    QueueFull {
        /// How many wait.
        waiting: usize,
    },
    /// The wait ended (queue timeout or the request's deadline).
    #[error("no instance became free within {ms} ms")]
    TimedOut {
        /// How long the request waited.
        ms: u64,
    },
}

/// The slots of one component.
#[derive(Debug)]
pub struct InstanceSlots {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queued: usize,
    queue_timeout: std::time::Duration,
}

impl InstanceSlots {
    /// Slots per `limits` (`max_instances`, `max_queued`, `queue_timeout`).
    pub fn new(limits: &Limits) -> InstanceSlots {
        InstanceSlots {
            permits: Arc::new(Semaphore::new(limits.max_instances)),
            waiting: AtomicUsize::new(0),
            max_queued: limits.max_queued,
            queue_timeout: limits.queue_timeout,
        }
    }

    /// A slot, waiting at most until the queue timeout or `deadline`.
    pub async fn acquire(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, SlotError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _leave = LeaveQueue(&self.waiting);
        if waiting >= self.max_queued {
            return Err(SlotError::QueueFull { waiting });
        }
        let started = Instant::now();
        let until = deadline.min(started + self.queue_timeout);
        match tokio::time::timeout_at(until, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout.
            Ok(Err(_)) | Err(_) => Err(SlotError::TimedOut {
                ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }
}

struct LeaveQueue<'a>(&'a AtomicUsize);

impl Drop for LeaveQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts one instance slot in use in a gauge while it lives.
pub struct InUse(prometheus::IntGauge);

impl InUse {
    /// Counts one more in `gauge`.
    pub fn new(gauge: &prometheus::IntGauge) -> InUse {
        gauge.inc();
        InUse(gauge.clone())
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max_instances: usize, max_queued: usize, queue_ms: u64) -> Limits {
        Limits {
            max_instances,
            max_queued,
            queue_timeout: Duration::from_millis(queue_ms),
            ..Limits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_are_bounded_and_the_queue_is_capped() {
        let slots = Arc::new(InstanceSlots::new(&limits(1, 1, 100)));
        let far = Instant::now() + Duration::from_secs(60);
        let held = slots.acquire(far).await.unwrap();
        // One waiter is allowed, and it times out at the queue timeout.
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(far).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(
            slots.acquire(far).await.unwrap_err(),
            SlotError::QueueFull { waiting: 1 }
        );
        assert!(matches!(
            waiter.await.unwrap().unwrap_err(),
            SlotError::TimedOut { .. }
        ));
        // The request's own deadline ends the wait earlier.
        let soon = Instant::now() + Duration::from_millis(10);
        let started = Instant::now();
        assert!(slots.acquire(soon).await.is_err());
        assert_eq!(started.elapsed(), Duration::from_millis(10));
        drop(held);
        assert!(slots.acquire(far).await.is_ok());
    }
}
