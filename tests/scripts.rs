//! The scripts around the suite: `scripts/cargo-test-totals`, which
//! `scripts/test` ends with, run against a stand-in `cargo`; and
//! `scripts/module-graph`, which must find no module cycle in `src/`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::{Test, python, wait};

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
    // Both scripts were just written: a child that another test forks
    // meanwhile holds them open for writing until it execs, and running
    // either then fails with "Text file busy" (ETXTBSY). That passes; try
    // again, a bounded number of times.
    for attempt in 0..50 {
        if attempt > 0 {
            // Time for the other test's child to reach its exec.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let child = match Command::new(&copy)
            .arg("--test")
            .arg("e2e")
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy => continue,
            spawned => spawned.unwrap(),
        };
        let output = wait(child);
        if !String::from_utf8_lossy(&output.stdout).contains("Text file busy") {
            return (output, test);
        }
    }
    panic!("the scripts stayed busy (ETXTBSY) through 50 tries");
}

/// The crate's modules import one another in layers that only point down
/// (`secret`, `term`, `paths` at the bottom, then `store`, `manifest`, and
/// the commands above): a module cycle means some layer reached back up.
/// `scripts/module-graph` is the one definition of the graph.
#[test]
fn the_crate_has_no_module_cycle() {
    let output = module_graph(Path::new(env!("CARGO_MANIFEST_DIR")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.contains(&"cycles: 0") && lines.contains(&"top-level cycles: 0"),
        "scripts/module-graph found a module cycle; the modules on it, then \
         every edge (`scripts/module-graph --edges`):\n{stdout}"
    );
}

/// The test above can fail: the script finds the cycles it is shown, one
/// between files and one through a parent module.
#[test]
fn module_graph_finds_a_cycle() {
    let test = Test::new()
        .file("src/lib.rs", "mod a;\nmod b;\nmod c;\n")
        .file("src/a.rs", "use crate::b::B;\n")
        .file("src/b/mod.rs", "pub struct B;\nfn f() { crate::c::g() }\n")
        .file("src/c.rs", "// crate::a is only named in a comment\n");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/module-graph");
    std::fs::create_dir(test.path().join("scripts")).unwrap();
    std::fs::copy(&script, test.path().join("scripts/module-graph")).unwrap();

    let output = module_graph(test.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"cycles: 0"), "{stdout}");
    assert!(lines.contains(&"top-level cycles: 0"), "{stdout}");

    // b's child c reaching back to a: no file imports b::c, yet a needs b
    // and b (through its child) needs a.
    std::fs::write(test.path().join("src/b/c.rs"), "use crate::a::A;\n").unwrap();
    let output = module_graph(test.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"cycles: 0"), "{stdout}");
    assert!(lines.contains(&"top-level cycles: 1"), "{stdout}");
    assert!(lines.contains(&"  a <-> b"), "{stdout}");
    std::fs::remove_file(test.path().join("src/b/c.rs")).unwrap();

    std::fs::write(test.path().join("src/c.rs"), "use crate::{a, d};\n").unwrap();
    let output = module_graph(test.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"cycles: 1"), "{stdout}");
    assert!(lines.contains(&"  a <-> b <-> c"), "{stdout}");
    assert!(lines.contains(&"top-level cycles: 1"), "{stdout}");
}

/// `scripts/module-graph --edges` of the crate at `root`.
fn module_graph(root: &Path) -> Output {
    let child = Command::new(python())
        .arg(root.join("scripts/module-graph"))
        .arg("--edges")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait(child)
}
