//! The job-wide memory budget: bytes that guest linear memories and buffered
//! request bodies may hold together, across every component and request of
//! the process. Each instance's memory growth and each buffered body chunk
//! reserves bytes; a reservation is given back when it is dropped (the
//! instance's store, the request). Past the budget, `memory.grow` fails in
//! the guest and a body gets 503, instead of the process growing until the
//! kernel kills it.
//!
//! The budget defaults to three quarters of the memory this process may use
//! (the cgroup's `memory.max`, else the machine's `MemTotal`), and a budget
//! set in the manifest larger than that is refused at start.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes reserved job-wide, against a limit.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// A budget that never refuses (one-shot calls, tests).
    pub fn unlimited() -> Arc<MemoryBudget> {
        MemoryBudget::new(u64::MAX)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty reservation that can grow.
    pub fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn take(&self, bytes: u64) -> bool {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(after) = used.checked_add(bytes).filter(|after| *after <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(used, after, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }
}

/// Bytes held against a [`MemoryBudget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Reservation {
    /// Reserves `more` bytes; `false` (and nothing reserved) if the budget
    /// cannot hold them.
    pub fn grow(&mut self, more: u64) -> bool {
        if self.budget.take(more) {
            self.bytes += more;
            true
        } else {
            false
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Memory this process may use: the smallest of the cgroup limit (v2
/// `memory.max`, v1 `memory.limit_in_bytes`) and `MemTotal`, if any is known.
pub fn available_memory() -> Option<u64> {
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_mem_total(&text));
    let cgroup = cgroup_limit();
    match (mem_total, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn cgroup_limit() -> Option<u64> {
    // v2: the process's own cgroup, from /proc/self/cgroup (`0::/path`).
    let own = std::fs::read_to_string("/proc/self/cgroup").ok();
    let v2_path = own
        .as_deref()
        .and_then(|text| text.lines().find_map(|l| l.strip_prefix("0::")))
        .map(|path| format!("/sys/fs/cgroup{}/memory.max", path.trim_end_matches('/')));
    let candidates = [
        v2_path,
        Some("/sys/fs/cgroup/memory.max".to_string()),
        Some("/sys/fs/cgroup/memory/memory.limit_in_bytes".to_string()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| parse_cgroup_limit(&text))
}

/// `max` (no limit) or a byte count; v1 reports "no limit" as a huge number.
fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let value: u64 = text.trim().parse().ok()?;
    (value < (1 << 60)).then_some(value)
}

/// The default budget for a process that may use `available` bytes.
pub fn default_budget(available: u64) -> u64 {
    available / 4 * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_given_back() {
        let budget = MemoryBudget::new(100);
        let mut a = budget.reservation();
        assert!(a.grow(60));
        let mut b = budget.reservation();
        assert!(!b.grow(41));
        assert!(b.grow(40));
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(b.grow(60));
        assert!(!b.grow(u64::MAX));
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn machine_limits_are_read() {
        assert_eq!(
            parse_mem_total("MemTotal:       24586744 kB\nMemFree: 1 kB\n"),
            Some(24586744 * 1024)
        );
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_limit("536870912\n"), Some(512 << 20));
    }
}
