//! `amimono run` as a child process of a benchmark: started with the given
//! arguments and environment, awaited until it logs "job running" (with the
//! URL of each HTTP component it printed and the `ready_ms` it reported),
//! its logs drained in the background so it never blocks on a full pipe
//! (warnings forwarded, or every line written to a file), and killed when
//! dropped. Also: a process's CPU time and resident memory from `/proc`.

use crate::child::ChildGuard;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The cluster key of the hosts the benchmarks start (their calls between
/// jobs are authenticated, as in production).
pub const BENCH_CLUSTER_KEY: &str = "amimono-bench-cluster-key-0123456789abcdef";

/// The `amimono` binary the benchmarks run: `$AMIMONO_BIN` (as in the
/// tests) or `target/release/amimono`.
pub fn amimono_binary(root: &Path) -> PathBuf {
    std::env::var_os("AMIMONO_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/amimono"))
}

/// Environment variable naming another `amimono` binary (e.g. a build of an
/// older commit) that PF4 and EMBED measure beside `target/release/amimono`,
/// rounds interleaved: before/after comparisons in one run.
pub const BASELINE_ENV: &str = "AMIMONO_BENCH_BASELINE_BIN";

/// The baseline binary of [`BASELINE_ENV`], if set.
pub fn baseline_binary() -> Result<Option<PathBuf>> {
    match std::env::var_os(BASELINE_ENV) {
        None => Ok(None),
        Some(path) if path.is_empty() => Ok(None),
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                bail!("{BASELINE_ENV}={} is not a file", path.display());
            }
            Ok(Some(path))
        }
    }
}

/// How long a host may take to start (compiling a large graph included).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `amimono run`.
pub struct HostProcess {
    /// `<label>` → URL, for every HTTP component it serves.
    pub urls: BTreeMap<String, String>,
    /// Time from process start to "job running", as the host measured it.
    pub ready_ms: f64,
    /// When the bench spawned it.
    pub spawned: Instant,
    guard: ChildGuard,
}

impl HostProcess {
    /// Starts `amimono run <app>` with `env` (`RUST_LOG` defaults to `info`,
    /// needed for the "job running" line) and waits until it runs and has
    /// printed the URL of each of `expect_urls` (labels of HTTP components).
    /// `name` names it in errors and forwarded warnings. Every host gets
    /// [`BENCH_CLUSTER_KEY`].
    pub fn start(
        root: &Path,
        name: &str,
        app: &OsStr,
        env: &[(&str, &OsStr)],
        expect_urls: &[&str],
    ) -> Result<HostProcess> {
        Self::start_logging(root, name, app, env, expect_urls, None)
    }

    /// [`HostProcess::start`], with every line the host logs written to
    /// `log` (created or truncated) instead of its warnings forwarded to
    /// stderr: for runs whose guests misbehave on purpose, and whose logs
    /// are evidence.
    pub fn start_logging(
        root: &Path,
        name: &str,
        app: &OsStr,
        env: &[(&str, &OsStr)],
        expect_urls: &[&str],
        log: Option<&Path>,
    ) -> Result<HostProcess> {
        Self::start_binary(
            &amimono_binary(root),
            root,
            name,
            app,
            env,
            expect_urls,
            log,
        )
    }

    /// [`HostProcess::start_logging`] with another `amimono` binary than
    /// `target/release/amimono` (e.g. an older build, to compare hosts in one
    /// run: [`BASELINE_ENV`]).
    pub fn start_binary(
        binary: &Path,
        root: &Path,
        name: &str,
        app: &OsStr,
        env: &[(&str, &OsStr)],
        expect_urls: &[&str],
        log: Option<&Path>,
    ) -> Result<HostProcess> {
        let mut log_file = match log {
            Some(path) => Some((
                std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                ),
                PathBuf::from(path),
            )),
            None => None,
        };
        let mut command = Command::new(binary);
        command
            .current_dir(root)
            .arg("run")
            .arg(app)
            .env("RUST_LOG", "info")
            .env(amimono::internals::auth::KEY_ENV, BENCH_CLUSTER_KEY)
            .env_remove("AMIMONO_LAYOUT")
            .env_remove("AMIMONO_BINDINGS")
            .env_remove("AMIMONO_FORCE_REMOTE");
        for (key, value) in env {
            command.env(key, value);
        }
        let spawned = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} (run `cargo xtask build`)", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let guard = ChildGuard(child);

        let (urls_tx, urls_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((label, url)) = line.split_once(": ")
                    && url.starts_with("http://")
                {
                    let _ = urls_tx.send((label.to_string(), url.to_string()));
                }
            }
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let who = name.to_string();
        std::thread::spawn(move || {
            let mut log = Vec::new();
            let mut running = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some((file, path)) = &mut log_file {
                    // Flushed per line: the file is read while the host runs.
                    if writeln!(file, "{line}")
                        .and_then(|()| file.flush())
                        .is_err()
                    {
                        eprintln!("{who}: cannot write {}", path.display());
                        log_file = None;
                    }
                }
                if running {
                    if log_file.is_none() && (line.contains("WARN") || line.contains("ERROR")) {
                        eprintln!("{who}: {line}");
                    }
                } else if line.contains("job running") {
                    running = true;
                    let _ = ready_tx.send(Ok(ready_ms_of(&line)));
                } else {
                    log.push(line);
                }
            }
            if !running {
                let _ = ready_tx.send(Err(log.join("\n")));
            }
        });
        let ready_ms = match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(Some(ms))) => ms,
            Ok(Ok(None)) => bail!("{name}: the \"job running\" line has no `ready_ms`"),
            Ok(Err(log)) => bail!("{name} (`amimono run`) exited before running:\n{log}"),
            Err(_) => bail!(
                "{name} did not log `job running` within {} s",
                START_TIMEOUT.as_secs()
            ),
        };
        // The URLs are printed before "job running", but read by another
        // thread: take what has arrived, then wait a little for the rest.
        let mut urls: BTreeMap<String, String> = urls_rx.try_iter().collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while urls.len() < expect_urls.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match urls_rx.recv_timeout(left) {
                Ok((label, url)) => {
                    urls.insert(label, url);
                }
                Err(_) => bail!(
                    "{name} printed URLs for {:?}, expected {expect_urls:?}",
                    urls.keys().collect::<Vec<_>>()
                ),
            }
        }
        Ok(HostProcess {
            urls,
            ready_ms,
            spawned,
            guard,
        })
    }

    /// The URL of HTTP component `label`.
    pub fn url(&self, label: &str) -> Result<&str> {
        self.urls
            .get(label)
            .map(String::as_str)
            .with_context(|| format!("the host printed no URL for `{label}`"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.guard.0.id()
    }
}

/// The `ready_ms=<float>` field of a "job running" log line.
fn ready_ms_of(line: &str) -> Option<f64> {
    let (_, rest) = line.split_once("ready_ms=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A free loopback port (free when asked; the caller binds it right after).
pub fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`
/// (counted in clock ticks, usually 10 ms: a short burst reads as 0).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks = cpu_ticks_of(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// utime + stime, in clock ticks, of a `/proc/<pid>/stat` line.
fn cpu_ticks_of(stat: &str) -> Option<u64> {
    // Fields after the command name (which may hold spaces and parentheses)
    // start at field 3.
    let (_, after) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 here.
    ticks(11)?.checked_add(ticks(12)?)
}

/// Resident memory of a process, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    rss_kib_of(&status).with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// The `VmRSS:  1234 kB` line of a `/proc/<pid>/status` text, in KiB.
fn rss_kib_of(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let value = fields.next()?.parse().ok()?;
    (fields.next()? == "kB").then_some(value)
}

/// Clock ticks per second of `/proc` CPU times (USER_HZ).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_ms_is_read_from_the_log_line() {
        let line = "2026-11-29T23:00:00Z  INFO amimono::run: job running app=boutique job=_local force_remote=false ready_ms=3.25";
        assert_eq!(ready_ms_of(line), Some(3.25));
        assert_eq!(ready_ms_of("job running app=x"), None);
    }

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_spaces() {
        // A real line's shape; the name holds ") " to fool a naive split.
        let line = "4242 (amimono run) x) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    137 42 0 0 20 0 9 0 12345 1000000 500 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 17475 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(cpu_ticks_of(line), Some(137 + 42));
        assert_eq!(cpu_ticks_of("4242 (short) S 1 2 3"), None);
        assert_eq!(cpu_ticks_of("no parenthesis"), None);
    }

    #[test]
    fn rss_is_read_from_the_status_text() {
        let status = "Name:\tamimono\nVmPeak:\t  900000 kB\nVmHWM:\t   61000 kB\n\
                      VmRSS:\t   58312 kB\nRssAnon:\t   40000 kB\n";
        assert_eq!(rss_kib_of(status), Some(58312));
        assert_eq!(rss_kib_of("Name:\tx\n"), None);
        assert_eq!(rss_kib_of("VmRSS:\t12 pages\n"), None);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn this_process_cpu_time_grows_while_it_spins() {
        // The reading moves in whole ticks (10 ms): spin until it changes,
        // however loaded the machine, within a generous bound.
        let pid = std::process::id();
        let before = cpu_seconds(pid).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut x = 0u64;
        while cpu_seconds(pid).unwrap() <= before {
            assert!(Instant::now() < deadline, "CPU time stayed at {before} s");
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_add(i));
            }
        }
    }
}
