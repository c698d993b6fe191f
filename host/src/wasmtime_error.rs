//! Bridging wasmtime's own `Error` type to `anyhow`, so wasmtime calls take
//! `.context(...)` like everything else (wasmtime 48's error type is not a
//! `std::error::Error`).

/// Converts a wasmtime result into an anyhow result.
pub trait IntoAnyhow<T> {
    /// The same result, with an `anyhow::Error`.
    fn anyhow(self) -> anyhow::Result<T>;
}

impl<T> IntoAnyhow<T> for Result<T, wasmtime::Error> {
    fn anyhow(self) -> anyhow::Result<T> {
        self.map_err(anyhow::Error::from)
    }
}
