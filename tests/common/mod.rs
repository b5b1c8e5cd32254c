//! Helpers shared by the process-level tests in `tests/*.rs` (each test file says `mod common;`):
//! start the built `klinecast` binary and make unique temporary directories. They hold no test
//! logic, never touch the network, and write only inside their own temp directories.
//!
//! Always start the binary with [`klinecast_command`], never `Command::new(env!(..))`: when the
//! tests are built for another architecture (`cargo test --target aarch64-unknown-linux-gnu` on
//! an x86 machine, as `scripts/test-aarch64.sh` and CI do), cargo runs the test process under
//! qemu-user, but a child it spawns is exec'd by the host kernel, which cannot run an aarch64
//! binary unless binfmt_misc is registered (CI's container has none). So the command is prefixed
//! with the emulator named in `KLINECAST_TEST_RUNNER` (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`)
//! when that is set; `scripts/target-runner.sh` sets it. Natively the variable is unset and the
//! binary runs directly. Killing the child kills the emulated program too.
#![allow(dead_code)] // Reason: each test crate uses only some of these helpers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable holding the emulator command line that prefixes the binary.
pub const RUNNER_VAR: &str = "KLINECAST_TEST_RUNNER";

/// Path of the `klinecast` binary cargo built for these tests.
pub fn klinecast_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_klinecast"))
}

/// A `Command` that runs the built `klinecast` binary, through `KLINECAST_TEST_RUNNER` when it is
/// set. Add arguments, environment and stdio to it as to any `Command`.
pub fn klinecast_command() -> Command {
    let runner = std::env::var(RUNNER_VAR).ok();
    command_with_runner(runner.as_deref(), klinecast_bin())
}

/// A `Command` for `program`, prefixed by `runner` split on whitespace (program, then its
/// arguments); `None` or a blank runner runs `program` directly.
pub fn command_with_runner(runner: Option<&str>, program: &Path) -> Command {
    let mut words = runner.unwrap_or("").split_whitespace();
    match words.next() {
        Some(emulator) => {
            let mut command = Command::new(emulator);
            command.args(words).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A fresh, empty directory under the system temp dir, removed with everything in it on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<temp>/klinecast-<name>-<pid>-<n>`; `name` should be the test's name.
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("klinecast-{name}-{}-{n}", std::process::id()));
        // A leftover from a killed run with the same pid would make the test see stale files.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating the test's temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
