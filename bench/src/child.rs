//! Child processes the benchmarks start (an `amimono run` host, the raw echo
//! server), killed when their guard is dropped: on success, on error and on
//! panic alike.

use std::process::Child;

/// A child process, killed and reaped on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
