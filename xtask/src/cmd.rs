//! A small builder over `std::process::Command` that echoes what it runs and
//! turns failures into messages naming the command.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A command to run.
pub struct Cmd {
    command: Command,
    shown: String,
}

impl Cmd {
    /// A command running `program`.
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        let shown = program.as_ref().to_string_lossy().into_owned();
        Cmd {
            command: Command::new(program),
            shown,
        }
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cmd {
        self.shown.push(' ');
        self.shown.push_str(&arg.as_ref().to_string_lossy());
        self.command.arg(arg);
        self
    }

    /// Runs in `dir`.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.command.current_dir(dir);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Cmd {
        self.command.env(key, value);
        self
    }

    /// Sends stdout and stderr to `file`.
    pub fn stdout_file(mut self, file: std::fs::File) -> Cmd {
        if let Ok(copy) = file.try_clone() {
            self.command.stderr(Stdio::from(copy));
        }
        self.command.stdout(Stdio::from(file));
        self
    }

    /// Starts the command without waiting.
    pub fn spawn(mut self) -> Result<Child, String> {
        self.command
            .spawn()
            .map_err(|e| format!("cannot start `{}`: {e}", self.shown))
    }

    /// Runs the command and returns its stdout.
    pub fn output(mut self) -> Result<String, String> {
        let out = self
            .command
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot start `{}`: {e}", self.shown))?;
        if !out.status.success() {
            return Err(format!("`{}` failed ({})", self.shown, out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Runs `cmd`, echoing it, and fails if it fails.
pub fn run(mut cmd: Cmd) -> Result<(), String> {
    eprintln!("+ {}", cmd.shown);
    let status = cmd
        .command
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", cmd.shown))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", cmd.shown))
    }
}
