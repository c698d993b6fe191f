//! Log lines into the host's log, through the standard `wasi:logging`
//! interface; the host adds the component's label and job. (Lines written
//! to stdout and stderr are logged too, at info and warn.)

#[doc(hidden)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "amimono:runtime/logging-guest",
        generate_all,
    });
}

use wit::wasi::logging::logging::{Level, log};

/// Logs `message` at info level.
pub fn info(message: &str) {
    log(Level::Info, "", message);
}

/// Logs `message` at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, "", message);
}

/// Logs `message` at error level.
pub fn error(message: &str) {
    log(Level::Error, "", message);
}

/// Logs `message` at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, "", message);
}
