//! `cargo xtask fuzz --seconds N [--only codec,auth] [--merge]`: builds the
//! libFuzzer targets of `fuzz/` (the remote-call decoder, the manifest and
//! bindings-file parsers, the MAC check of calls between jobs) and runs each
//! for N seconds, two at a time (one per core), printing per target the
//! runs, exec/s, coverage, features, corpus and time. A crash, a timeout or
//! an out-of-memory fails the command, naming the input libFuzzer saved.
//!
//! The build is cheap because it shares the main build's artifacts: `fuzz/`
//! (its own workspace, cargo-fuzz's layout) builds into the main `target/`
//! with the main workspace's `Cargo.lock` and release profile, so every
//! dependency the main build compiled (wasmtime and cranelift among them) is
//! reused, and only the crates `fuzz/Cargo.toml` builds with overflow checks
//! (the host crate, the TOML parser, the targets) are compiled again. This
//! xtask is the build's `RUSTC_WRAPPER` ([`rustc_wrapper`]) and gives exactly
//! those crates the coverage instrumentation `cargo fuzz build` would (the
//! same sancov flags, `--cfg fuzzing`); instrumenting every crate through
//! `RUSTFLAGS`, as cargo-fuzz does, would rebuild the world. libFuzzer
//! itself is built by libfuzzer-sys's build script in a target directory of
//! its own and linked by `fuzz/build.rs`: libfuzzer-sys in the graph would
//! change the `cc` that wasmtime's, SQLite's and ring's build scripts use,
//! and rebuild them. No sanitizer: the code under test is safe Rust, so
//! AddressSanitizer would only slow it down; panics, overflow checks and
//! debug assertions catch the bugs. `cargo fuzz run codec` works too
//! (default features: through libfuzzer-sys), building everything on its
//! own.
//!
//! Each target reads the committed seeds (`fuzz/corpus/<target>`) and a
//! working corpus (`target/fuzz/corpus/<target>`, kept between runs) and
//! writes new inputs only to the latter, so runs never dirty the
//! repository; `--merge` adds to the committed seeds the working inputs
//! that cover something they do not (review before committing).

use crate::cmd::{Cmd, run};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Every fuzz target (`fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: [&str; 4] = ["codec", "manifest", "bindings", "auth"];

/// How long `cargo xtask test` runs each target.
const SMOKE_SECONDS: u64 = 5;

/// The coverage instrumentation `cargo fuzz build` (0.13) asks rustc for,
/// minus a sanitizer.
const INSTRUMENTATION: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
    "--cfg",
    "fuzzing",
];

/// Set while this xtask runs as cargo's `RUSTC_WRAPPER` for the fuzz build.
const WRAPPER_ENV: &str = "AMIMONO_XTASK_FUZZ_RUSTC";

/// When this process is the fuzz build's rustc wrapper (`xtask <rustc>
/// <args>`): runs rustc, adding [`INSTRUMENTATION`] when the crate is built
/// with overflow checks or debug assertions — only the crates
/// `fuzz/Cargo.toml` turns them on for, whose artifacts are therefore never
/// the main build's (the main release profile has both off). `None`
/// otherwise.
pub fn rustc_wrapper() -> Option<std::process::ExitCode> {
    std::env::var_os(WRAPPER_ENV)?;
    let mut args = std::env::args_os().skip(1);
    let rustc = args.next()?;
    let args: Vec<std::ffi::OsString> = args.collect();
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut command = std::process::Command::new(rustc);
    command.args(&args);
    if instrumented(&shown) {
        command.args(INSTRUMENTATION);
    }
    let code = match command.status() {
        Ok(status) => status.code().unwrap_or(1),
        Err(e) => {
            eprintln!("xtask: rustc wrapper: cannot run rustc: {e}");
            1
        }
    };
    Some(std::process::ExitCode::from(
        u8::try_from(code).unwrap_or(1),
    ))
}

/// Whether the rustc invocation `args` builds a crate of the code under
/// test: debug assertions or overflow checks on (cargo passes only
/// `-C debug-assertions=on` when a release package turns both on), and not a
/// build script.
fn instrumented(args: &[String]) -> bool {
    let checked = args.iter().any(|a| {
        let a = a.strip_prefix("-C").unwrap_or(a);
        a == "debug-assertions=on" || a == "overflow-checks=on"
    });
    let build_script = args
        .windows(2)
        .any(|w| w[0] == "--crate-name" && w[1].starts_with("build_script"));
    checked && !build_script
}

/// `cargo xtask fuzz [--seconds N] [--only a,b] [--merge]`.
pub fn command(root: &Path, args: &[String]) -> Result<(), String> {
    let mut seconds = 60;
    let mut only: Option<Vec<String>> = None;
    let mut merge = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&s| s > 0)
                    .ok_or("--seconds needs a positive number")?;
            }
            "--only" => {
                let list = args.next().ok_or("--only needs target names")?;
                let names: Vec<String> = list.split(',').map(str::to_string).collect();
                if let Some(bad) = names.iter().find(|n| !TARGETS.contains(&n.as_str())) {
                    return Err(format!(
                        "no fuzz target `{bad}` (targets: {})",
                        TARGETS.join(", ")
                    ));
                }
                only = Some(names);
            }
            "--merge" => merge = true,
            other => {
                return Err(format!(
                    "unknown argument `{other}`; usage: cargo xtask fuzz [--seconds N] [--only {}] [--merge]",
                    TARGETS.join(",")
                ));
            }
        }
    }
    let targets: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| only.as_ref().is_none_or(|o| o.iter().any(|n| n == t)))
        .collect();
    let fuzz = Fuzz::build(root)?;
    fuzz.run_all(&targets, seconds)?;
    if merge {
        for target in &targets {
            fuzz.merge(target)?;
        }
    }
    Ok(())
}

/// The check `cargo xtask test` runs: build, then every target for a few
/// seconds.
pub fn smoke(root: &Path) -> Result<(), String> {
    Fuzz::build(root)?.run_all(&TARGETS, SMOKE_SECONDS)
}

/// Built fuzz targets.
struct Fuzz {
    root: PathBuf,
    bin_dir: PathBuf,
}

/// What one run of a target reported.
#[derive(Default)]
struct Stats {
    runs: Option<u64>,
    exec_per_sec: Option<u64>,
    cov: Option<u64>,
    ft: Option<u64>,
    corpus: Option<String>,
    new_units: Option<u64>,
    rss_mb: Option<u64>,
}

impl Fuzz {
    fn build(root: &Path) -> Result<Fuzz, String> {
        let manifest = root.join("fuzz/Cargo.toml");
        run(Cmd::new(cargo())
            .dir(root)
            .args(["fmt", "--manifest-path"])
            .arg(&manifest)
            .args(["--", "--check"]))?;
        sync_lockfile(root)?;
        let started = Instant::now();
        let libfuzzer = build_libfuzzer(root, &manifest)?;
        let wrapper = std::env::current_exe()
            .map_err(|e| format!("cannot find the xtask executable: {e}"))?;
        eprintln!("xtask: building the fuzz targets (fuzz/, sharing target/release)");
        run(Cmd::new(cargo())
            .dir(root)
            .args(["build", "--release", "--bins", "--no-default-features"])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(root.join("target"))
            .env("RUSTC_WRAPPER", &wrapper)
            .env(WRAPPER_ENV, "1")
            .env("AMIMONO_FUZZ_LIBFUZZER", &libfuzzer))?;
        eprintln!(
            "xtask: fuzz targets built in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Fuzz {
            root: root.to_path_buf(),
            bin_dir: root.join("target/release"),
        })
    }

    fn seeds(&self, target: &str) -> PathBuf {
        self.root.join("fuzz/corpus").join(target)
    }

    fn work(&self, target: &str, what: &str) -> Result<PathBuf, String> {
        let dir = self.root.join("target/fuzz").join(what).join(target);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// Runs every target for `seconds`, two at a time, then prints a table.
    fn run_all(&self, targets: &[&str], seconds: u64) -> Result<(), String> {
        let parallel = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 2);
        eprintln!(
            "xtask: fuzzing {} for {seconds} s each, {parallel} at a time",
            targets.join(", ")
        );
        let mut results = Vec::new();
        for batch in targets.chunks(parallel) {
            let running: Vec<_> = batch
                .iter()
                .map(|t| self.start(t, seconds).map(|r| (*t, r)))
                .collect::<Result<_, _>>()?;
            for (target, (child, log, started)) in running {
                results.push(self.finish(target, child, &log, started));
            }
        }
        eprintln!(
            "\n{:<10} {:>11} {:>8} {:>7} {:>8} {:>16} {:>6} {:>7} {:>7}",
            "target", "runs", "exec/s", "cov", "features", "corpus", "new", "rss MB", "time"
        );
        let mut failures = Vec::new();
        for result in results {
            match result {
                Ok((target, stats, time)) => {
                    let n = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
                    eprintln!(
                        "{:<10} {:>11} {:>8} {:>7} {:>8} {:>16} {:>6} {:>7} {:>6.0}s",
                        target,
                        n(stats.runs),
                        n(stats.exec_per_sec),
                        n(stats.cov),
                        n(stats.ft),
                        stats.corpus.as_deref().unwrap_or("?"),
                        n(stats.new_units),
                        n(stats.rss_mb),
                        time.as_secs_f64()
                    );
                }
                Err(e) => failures.push(e),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n\n"))
        }
    }

    fn start(&self, target: &str, seconds: u64) -> Result<(Child, PathBuf, Instant), String> {
        let corpus = self.work(target, "corpus")?;
        let artifacts = self.work(target, "artifacts")?;
        let log = self.work(target, "logs")?.join("fuzz.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let mut command = std::process::Command::new(self.bin_dir.join(target));
        command
            .current_dir(&self.root)
            .arg(&corpus)
            .arg(self.seeds(target))
            .arg(format!("-max_total_time={seconds}"))
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .stdout(Stdio::null())
            .stderr(log_file);
        let dict = self.root.join("fuzz/dict").join(format!("{target}.dict"));
        if dict.exists() {
            command.arg(format!("-dict={}", dict.display()));
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start fuzz target `{target}`: {e}"))?;
        Ok((child, log, Instant::now()))
    }

    fn finish<'a>(
        &self,
        target: &'a str,
        mut child: Child,
        log: &Path,
        started: Instant,
    ) -> Result<(&'a str, Stats, Duration), String> {
        let status = child
            .wait()
            .map_err(|e| format!("waiting for fuzz target `{target}`: {e}"))?;
        let time = started.elapsed();
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if status.success() {
            let stats = stats(&text);
            if stats.cov.is_none() {
                return Err(format!(
                    "fuzz target `{target}` ran without coverage feedback: it was built \
                     without instrumentation (stale artifacts? `touch fuzz/src/lib.rs` and \
                     rebuild); log: {}",
                    log.display()
                ));
            }
            return Ok((target, stats, time));
        }
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let saved = text
            .lines()
            .filter_map(|l| l.split_once("Test unit written to "))
            .map(|(_, path)| path.trim().to_string())
            .next_back()
            .unwrap_or_else(|| "(no input saved)".to_string());
        Err(format!(
            "fuzz target `{target}` FAILED ({status}) after {:.0} s; input: {saved}\n\
             reproduce: {} {saved}\nfull log: {}\n--- last lines ---\n{}",
            time.as_secs_f64(),
            self.bin_dir.join(target).display(),
            log.display(),
            tail.join("\n")
        ))
    }

    /// Adds to the committed seeds of `target` the working inputs that
    /// cover something the seeds do not.
    fn merge(&self, target: &str) -> Result<(), String> {
        eprintln!("xtask: merging target/fuzz/corpus/{target} into fuzz/corpus/{target}");
        run(Cmd::new(self.bin_dir.join(target))
            .dir(&self.root)
            .arg("-merge=1")
            .arg(self.seeds(target))
            .arg(self.work(target, "corpus")?))
    }
}

/// The statistics of a finished libFuzzer run: the last status line
/// (`#N DONE cov: … ft: … corp: …/…b … exec/s: … rss: …Mb`) and the
/// `-print_final_stats` lines.
fn stats(log: &str) -> Stats {
    let mut s = Stats::default();
    let number = |v: &str| v.trim_end_matches("Mb").parse::<u64>().ok();
    if let Some(status) = log
        .lines()
        .rfind(|l| l.starts_with('#') && l.contains(" cov: "))
    {
        let words: Vec<&str> = status.split_whitespace().collect();
        for pair in words.windows(2) {
            match pair {
                ["cov:", v] => s.cov = number(v),
                ["ft:", v] => s.ft = number(v),
                ["corp:", v] => s.corpus = Some((*v).to_string()),
                ["exec/s:", v] => s.exec_per_sec = number(v),
                ["rss:", v] => s.rss_mb = number(v),
                _ => {}
            }
        }
    }
    for line in log.lines() {
        if let Some((key, value)) = line.strip_prefix("stat::").and_then(|l| l.split_once(':')) {
            let value = number(value.trim());
            match key {
                "number_of_executed_units" => s.runs = value,
                "average_exec_per_sec" => s.exec_per_sec = value.or(s.exec_per_sec),
                "new_units_added" => s.new_units = value,
                "peak_rss_mb" => s.rss_mb = value.or(s.rss_mb),
                _ => {}
            }
        }
    }
    s
}

/// Gives `fuzz/` the main workspace's `Cargo.lock` (the same versions, so
/// the main build's artifacts fit), when it changed since the last copy:
/// otherwise the copy keeps what cargo added for libfuzzer-sys, and the
/// build needs no registry.
fn sync_lockfile(root: &Path) -> Result<(), String> {
    let main = root.join("Cargo.lock");
    let seen = root.join("target/fuzz/main-Cargo.lock");
    let fuzz = root.join("fuzz/Cargo.lock");
    let read = |p: &Path| std::fs::read(p).ok();
    let text = read(&main).ok_or("cannot read Cargo.lock")?;
    if fuzz.exists() && read(&seen).as_ref() == Some(&text) {
        return Ok(());
    }
    let write = |p: &Path| {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::write(p, &text).map_err(|e| format!("writing {}: {e}", p.display()))
    };
    write(&fuzz)?;
    write(&seen)
}

/// Builds libFuzzer as libfuzzer-sys's build script does, in a target
/// directory of its own (`target/fuzz-runtime`, so its `cc` never meets the
/// main build's), and returns the path of `libfuzzer.a`.
fn build_libfuzzer(root: &Path, manifest: &Path) -> Result<PathBuf, String> {
    eprintln!("xtask: building libFuzzer (libfuzzer-sys, into target/fuzz-runtime)");
    let out = Cmd::new(cargo())
        .dir(root)
        .args(["build", "--release", "--quiet", "--message-format=json"])
        .args(["-p", "libfuzzer-sys", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(root.join("target/fuzz-runtime"))
        .output()?;
    out.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "build-script-executed")
        .filter(|m| {
            m["package_id"]
                .as_str()
                .is_some_and(|id| id.contains("libfuzzer-sys"))
        })
        .filter_map(|m| {
            m["out_dir"]
                .as_str()
                .map(|d| Path::new(d).join("libfuzzer.a"))
        })
        .find(|lib| lib.exists())
        .ok_or_else(|| "building libfuzzer-sys made no libfuzzer.a".to_string())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

#[cfg(test)]
mod tests {
    use super::{instrumented, stats};

    #[test]
    fn instruments_only_checked_crates() {
        let args = |a: &str| a.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert!(instrumented(&args(
            "--crate-name amimono -C opt-level=3 -C debug-assertions=on"
        )));
        assert!(instrumented(&args(
            "--crate-name toml_parser -Coverflow-checks=on"
        )));
        assert!(!instrumented(&args("--crate-name wasmtime -C opt-level=3")));
        assert!(!instrumented(&args(
            "--crate-name build_script_build -C debug-assertions=on"
        )));
        assert!(!instrumented(&args("-vV")));
    }

    #[test]
    fn reads_libfuzzer_statistics() {
        let log = "#2\tINITED cov: 10 ft: 11 corp: 2/20b exec/s: 0 rss: 40Mb\n\
                   #300\tNEW    cov: 12 ft: 14 corp: 3/25b lim: 4 exec/s: 0 rss: 41Mb L: 5/5 MS: 1 ChangeBit-\n\
                   #5000\tDONE   cov: 12 ft: 15 corp: 3/25b lim: 4 exec/s: 2500 rss: 42Mb\n\
                   Done 5000 runs in 2 second(s)\n\
                   stat::number_of_executed_units: 5000\n\
                   stat::average_exec_per_sec:     2500\n\
                   stat::new_units_added:          1\n\
                   stat::slowest_unit_time_sec:    0\n\
                   stat::peak_rss_mb:              42\n";
        let s = stats(log);
        assert_eq!(s.runs, Some(5000));
        assert_eq!(s.exec_per_sec, Some(2500));
        assert_eq!(s.cov, Some(12));
        assert_eq!(s.ft, Some(15));
        assert_eq!(s.corpus.as_deref(), Some("3/25b"));
        assert_eq!(s.new_units, Some(1));
        assert_eq!(s.rss_mb, Some(42));
    }
}
