//! Amimono's integration tests, in one binary (it links once). Every test
//! runs the real `amimono` binary on real components built from source by
//! `cargo xtask build`, and speaks real HTTP over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod boutique;
mod bundle;
mod call;
mod capabilities;
mod cargo_component;
mod config;
mod containers;
mod dashboard;
mod deploy;
mod faults;
mod hardening;
mod health;
mod hello_http;
mod image;
mod keyvalue;
mod launcher;
mod limits;
mod logs;
mod metrics;
mod python;
mod remote;
mod replicas;
mod shutdown;
mod traces;
mod traps;
mod workers;
