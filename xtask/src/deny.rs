//! `cargo deny` in `cargo xtask test`: the dependency policy of `deny.toml`
//! (licenses, bans, sources, advisories), with cargo-deny pinned and
//! installed under `target/tools` in the background.
//!
//! Licenses, bans and sources need nothing but crates.io and always run.
//! The advisories check needs the RustSec advisory database, a git
//! repository that cargo-deny clones from GitHub. Where GitHub cannot be
//! reached (this project's machines reach only package registries, and no
//! registry ships a copy of the database), the check is reported as not
//! run, loudly, in the middle of the output and again on the last line:
//! never as passed. A copy fetched earlier (at most 90 days old, cargo-deny
//! refuses older ones) is used when the fetch fails. With
//! `AMIMONO_ADVISORIES=require` an unreachable database fails the run.

use crate::cmd::{Cmd, run};
use crate::{cargo, root};
use std::path::PathBuf;
use std::process::Child;

/// The pinned cargo-deny version (0.20.x builds with rustc 1.88 and later).
const CARGO_DENY_VERSION: &str = "0.20.2";

/// Set to `require` to fail when the advisory database cannot be had.
const REQUIRE_ENV: &str = "AMIMONO_ADVISORIES";

/// What became of the advisories check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advisories {
    /// Checked against a freshly fetched database.
    Checked,
    /// Checked against a copy fetched earlier (the fetch failed).
    CheckedAgainstLocalCopy,
    /// Not checked: no database could be had.
    NotChecked,
}

fn cargo_deny_path() -> PathBuf {
    root().join("target/tools/bin/cargo-deny")
}

/// Starts installing cargo-deny in the background unless the pinned
/// version is installed; its output goes to `target/deny-install.log`.
pub fn start_install() -> Result<Option<Child>, String> {
    let installed = Cmd::new(cargo_deny_path())
        .arg("--version")
        .output()
        .is_ok_and(|v| v.split_whitespace().any(|w| w == CARGO_DENY_VERSION));
    if installed {
        return Ok(None);
    }
    eprintln!("xtask: installing cargo-deny {CARGO_DENY_VERSION} under target/tools (background)");
    let log = std::fs::File::create(root().join("target/deny-install.log"))
        .map_err(|e| format!("creating target/deny-install.log: {e}"))?;
    cargo()
        .args([
            "install",
            "--locked",
            "--quiet",
            "--force",
            "cargo-deny",
            "--version",
            CARGO_DENY_VERSION,
            "--root",
        ])
        .arg(root().join("target/tools"))
        .stdout_file(log)
        .spawn()
        .map(Some)
}

/// Waits for the install started by [`start_install`], then runs every
/// check of `deny.toml`. Fails on any finding; an advisory database that
/// cannot be had fails only under `AMIMONO_ADVISORIES=require`.
pub fn check(install: Option<Child>) -> Result<Advisories, String> {
    if let Some(mut child) = install {
        eprintln!("xtask: waiting for the cargo-deny install");
        let status = child
            .wait()
            .map_err(|e| format!("waiting for cargo install: {e}"))?;
        if !status.success() {
            return Err(format!(
                "installing cargo-deny failed ({status}); see target/deny-install.log"
            ));
        }
    }
    eprintln!("xtask: cargo deny (licenses, bans, sources)");
    run(deny().args(["check", "licenses", "bans", "sources"]))?;
    eprintln!("xtask: cargo deny (advisories): fetching the RustSec advisory database");
    let advisories = if deny().args(["fetch", "db"]).output().is_ok() {
        run(deny().args(["check", "advisories"]))?;
        Advisories::Checked
    } else if let Some(copy) = local_database() {
        eprintln!(
            "xtask: the advisory database could not be fetched: checking against the copy in {}",
            copy.display()
        );
        // `--offline`: no fetch; cargo-deny refuses a copy older than 90 days.
        run(deny().args(["--offline", "check", "advisories"]))?;
        Advisories::CheckedAgainstLocalCopy
    } else {
        let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "require");
        eprintln!("{}", unreachable_banner(required));
        if required {
            return Err(format!(
                "the advisories check could not run: the RustSec advisory database is unreachable ({REQUIRE_ENV}=require)"
            ));
        }
        Advisories::NotChecked
    };
    Ok(advisories)
}

/// The last line's note about the advisories check.
pub fn summary(advisories: Advisories) -> &'static str {
    match advisories {
        Advisories::Checked => "",
        Advisories::CheckedAgainstLocalCopy => {
            " (advisories checked against an earlier copy of the database)"
        }
        Advisories::NotChecked => {
            " EXCEPT the advisories check, which did NOT run: the RustSec advisory database is unreachable"
        }
    }
}

fn deny() -> Cmd {
    Cmd::new(cargo_deny_path()).dir(root())
}

/// A copy of the advisory database cargo-deny fetched earlier, if any: a
/// directory `advisory-db-<hash>` with a `crates` folder under
/// `$CARGO_HOME/advisory-dbs` (cargo-deny's default `db-path`).
fn local_database() -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))?;
    std::fs::read_dir(cargo_home.join("advisory-dbs"))
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("advisory-db-"))
                && path.join("crates").is_dir()
        })
}

fn unreachable_banner(required: bool) -> String {
    let rule = "!".repeat(78);
    let consequence = if required {
        "This fails the run."
    } else {
        "Licenses, bans and sources were checked; advisories were NOT. Set\nAMIMONO_ADVISORIES=require to make this an error."
    };
    format!(
        "{rule}\nxtask: ADVISORIES NOT CHECKED: the RustSec advisory database could not be\nfetched (the error is above: cargo-deny clones it from GitHub, which this\nmachine may not reach), and no earlier copy is on this machine.\n{consequence}\n{rule}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_says_when_advisories_were_not_checked() {
        assert_eq!(summary(Advisories::Checked), "");
        assert!(summary(Advisories::NotChecked).contains("did NOT run"));
        assert!(unreachable_banner(false).contains("ADVISORIES NOT CHECKED"));
        assert!(unreachable_banner(true).contains("This fails the run."));
    }
}
