//! Process-level checks that the built binary runs on the target it was built for, natively or
//! under qemu-user (`scripts/test-aarch64.sh`), and that the shared test helpers in
//! `tests/common` behave. No network, no data files.

mod common;

use std::path::Path;

use common::{command_with_runner, klinecast_bin, klinecast_command, TempDir};

/// ELF `e_machine` for the architecture these tests were compiled for.
fn expected_elf_machine() -> u16 {
    match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        "arm" => 40,
        other => panic!("no ELF machine number known for {other}: add it here"),
    }
}

#[test]
fn binary_is_built_for_the_test_target() {
    // Guards against a cross test run that silently exercises a host binary.
    let bytes = std::fs::read(klinecast_bin()).expect("reading the klinecast binary");
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    assert_eq!(machine, expected_elf_machine());
}

#[test]
fn version_prints_name_and_version_and_exits_0() {
    let output = klinecast_command()
        .arg("--version")
        .output()
        .expect("running klinecast --version");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("klinecast {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(output.stderr.is_empty());
}

#[test]
fn unknown_command_is_a_usage_error_with_exit_2() {
    let output = klinecast_command()
        .arg("frobnicate")
        .output()
        .expect("running klinecast frobnicate");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("klinecast: error: unknown command \"frobnicate\""),
        "stderr was {stderr:?}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn runner_prefix_is_split_into_program_and_arguments() {
    let command = command_with_runner(
        Some("qemu-aarch64  -L /usr/aarch64-linux-gnu"),
        Path::new("/x/klinecast"),
    );
    assert_eq!(command.get_program(), "qemu-aarch64");
    let args: Vec<_> = command.get_args().collect();
    assert_eq!(args, ["-L", "/usr/aarch64-linux-gnu", "/x/klinecast"]);
}

#[test]
fn no_or_blank_runner_runs_the_program_directly() {
    for runner in [None, Some(""), Some("  ")] {
        let command = command_with_runner(runner, Path::new("/x/klinecast"));
        assert_eq!(command.get_program(), "/x/klinecast");
        assert_eq!(command.get_args().count(), 0);
    }
}

#[test]
fn temp_dirs_are_unique_empty_and_removed_on_drop() {
    let first = TempDir::new("platform");
    let second = TempDir::new("platform");
    assert_ne!(first.path(), second.path());
    assert_eq!(
        std::fs::read_dir(first.path())
            .expect("listing the temp dir")
            .count(),
        0
    );
    std::fs::write(first.path().join("f"), b"x").expect("writing into the temp dir");
    let path = first.path().to_path_buf();
    drop(first);
    assert!(!path.exists());
}

#[test]
fn every_process_test_starts_the_binary_through_tests_common() {
    // Regression: tests/backtest.rs spawned the binary from its cargo path directly, which
    // passes on x86 but cannot exec the aarch64 binary when the suite runs under qemu.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let needle = ["CARGO_BIN_EXE", "_klinecast"].concat();
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("listing tests/") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("reading a test file");
            if text.contains(&needle) {
                offenders.push(path.display().to_string());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "use common::klinecast_command() instead of {needle} in {offenders:?}"
    );
}
