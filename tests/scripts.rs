//! The scripts around the suite: `scripts/cargo-test-totals`, which
//! `scripts/test` ends with, run against a stand-in `cargo`.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{Test, wait};

/// A `cargo` that records its arguments and prints what two test binaries
/// would, one with a failure, then exits as cargo does then.
const FAILING_CARGO: &str = r#"#!/bin/sh
printf '%s\n' "$@" > "$(dirname "$0")/../args"
echo "running 4 tests"
echo "test result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
echo "test b ... FAILED"
echo "test result: FAILED. 2 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s"
echo "error: 1 target failed:" >&2
exit 101
"#;

/// A `cargo` whose second test binary dies before its result line, as one
/// that aborts or overflows its stack does.
const CRASHING_CARGO: &str = r#"#!/bin/sh
printf '%s\n' "$@" > "$(dirname "$0")/../args"
echo "test result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
echo "running 3 tests"
echo "error: test failed, to rerun pass \`--test e2e\`" >&2
echo "Caused by: process didn't exit successfully (signal: 6, SIGABRT: process abort signal)" >&2
exit 101
"#;

#[test]
fn a_failed_test_run_still_ends_with_its_totals_and_fails() {
    let (output, test) = totals_with(FAILING_CARGO);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(101), "{output:?}");
    assert_eq!(
        stdout.lines().last(),
        Some("6 passed, 1 failed, 3 skipped"),
        "{stdout}"
    );
    let args = std::fs::read_to_string(test.path().join("args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args,
        ["test", "--locked", "--no-fail-fast", "--test", "e2e"]
    );
    // What cargo printed is kept too.
    let log = std::fs::read_to_string(test.path().join("target/test.log")).unwrap();
    assert!(log.contains("test b ... FAILED"), "{log}");
}

#[test]
fn a_test_binary_that_crashed_counts_as_a_failure() {
    let (output, _test) = totals_with(CRASHING_CARGO);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(101), "{output:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "cargo test failed (exit 101) with no failed test counted: a test binary crashed \
             or did not build (see above)",
            "4 passed, 1 failed, 1 skipped"
        ],
        "{stdout}"
    );
}

/// Runs a copy of scripts/cargo-test-totals `--test e2e` with `cargo` as
/// the stand-in `cargo`.
fn totals_with(cargo: &str) -> (std::process::Output, Test) {
    let test = Test::new().file("bin/cargo", cargo);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cargo-test-totals");
    std::fs::create_dir(test.path().join("scripts")).unwrap();
    let copy = test.path().join("scripts/cargo-test-totals");
    std::fs::copy(&script, &copy).unwrap();
    let chmod = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    chmod(&test.path().join("bin/cargo"));
    let path = format!(
        "{}:{}",
        test.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new(&copy)
        .arg("--test")
        .arg("e2e")
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (wait(child), test)
}
