//! `--store windows` from Linux: the Windows Credential Manager reached
//! through a helper, `with-secrets bridge`, on the helper's stdin and stdout.
//!
//! Until the Wine harness runs the Windows build, the helper is this Linux
//! binary serving the file store (`bridge --store file`), started through a
//! wrapper script that records each start, its argv and its environment, so
//! the tests can count helper processes and look for values where they must
//! never be.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{BIN, Test, manifest_for};

const PASSPHRASE: &str = "bridge passphrase";

/// Writes an executable shell script at `path`.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A project whose `windows` store is the file store behind the bridge:
/// `helper` records one line per start in `starts`, its argv in `argv` and
/// its environment in `environ`, then runs `with-secrets bridge --store file`.
fn bridged(entries: &[(&str, &str, &str)]) -> Test {
    let test = Test::new().manifest(&manifest_for(entries));
    let dir = test.path().to_owned();
    let helper = dir.join("helper");
    script(
        &helper,
        &format!(
            "echo start >> '{d}/starts'\nprintf '%s\\n' \"$0\" \"$@\" >> '{d}/argv'\n\
             env >> '{d}/environ'\nexec '{BIN}' \"$@\"\n",
            d = dir.display()
        ),
    );
    test.env("XDG_DATA_HOME", dir.join("data"))
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
        .env(
            "WITH_SECRETS_WINDOWS_HELPER",
            format!("{} --store file", helper.display()),
        )
}

fn read(test: &Test, name: &str) -> String {
    std::fs::read_to_string(test.path().join(name)).unwrap_or_default()
}

fn starts(test: &Test) -> usize {
    read(test, "starts").lines().count()
}

/// What `-- sh -c` sees of `names`, joined by `|`.
fn seen(test: &Test, names: &[&str]) -> String {
    let script = names
        .iter()
        .map(|name| format!("\"${name}\""))
        .collect::<Vec<_>>()
        .join(" ");
    let format = vec!["%s"; names.len()].join("|");
    let run = test.run([
        "--store",
        "windows",
        "--",
        "sh",
        "-c",
        &format!("printf '{format}' {script}"),
    ]);
    run.success();
    run.stdout()
}

#[test]
fn a_run_reads_every_entry_through_one_helper_process() {
    let names = ["A", "B", "C", "D", "E", "F"];
    let entries: Vec<(&str, &str, String)> = names
        .iter()
        .map(|name| (*name, "acme", name.to_lowercase()))
        .collect();
    let entries: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(n, s, u)| (*n, *s, u.as_str()))
        .collect();
    let test = bridged(&entries);
    for name in names {
        test.run_input(
            format!("value of {name} ✓"),
            ["--store", "windows", "set", name],
        )
        .success();
    }
    assert_eq!(starts(&test), names.len(), "one helper per set");
    // The values really are in the store behind the helper.
    test.run(["--store", "file", "get", "C"])
        .success()
        .stdout_is("value of C ✓");
    let expected = names.map(|name| format!("value of {name} ✓")).join("|");
    assert_eq!(seen(&test, &names), expected);
    assert_eq!(
        starts(&test),
        names.len() + 1,
        "one helper for the whole run"
    );
}

#[test]
fn a_value_is_sent_on_stdin_never_in_argv_or_the_helpers_environment() {
    let test = bridged(&[("TOKEN", "acme", "ci")]);
    let value = "argv-canary-5c1e7 ✓";
    test.run_input(value, ["--store", "windows", "set", "TOKEN"])
        .success();
    assert_eq!(seen(&test, &["TOKEN"]), value);
    test.run(["--store", "windows", "get", "TOKEN"])
        .success()
        .stdout_is(value);
    assert_eq!(starts(&test), 3);
    let argv = read(&test, "argv");
    assert!(argv.contains("--store\nfile\nbridge\n"), "{argv}");
    assert!(
        !argv.contains("argv-canary"),
        "a value in the helper's argv: {argv}"
    );
    let environ = read(&test, "environ");
    // The passphrase reaches the helper through its environment, as the
    // store behind it needs; no value ever does.
    assert!(
        environ.contains(&format!("WITH_SECRETS_PASSPHRASE={PASSPHRASE}")),
        "{environ}"
    );
    assert!(
        !environ.contains("argv-canary"),
        "a value in the helper's environment"
    );
}

#[test]
fn auto_on_wsl_uses_windows_when_the_helper_answers() {
    let test = bridged(&[("TOKEN", "acme", "ci")]).env("WSL_DISTRO_NAME", "Debian");
    test.run_input("from windows", ["set", "TOKEN"]).success();
    // It went through the helper, into the store behind it.
    assert_eq!(starts(&test), 1);
    let run = test.run(["-v", "--", "sh", "-c", "printf %s \"$TOKEN\""]);
    run.success()
        .stdout_is("from windows")
        .stderr_has("store windows (auto: on WSL, and the Windows helper answered)");
    let doctor = test.run(["doctor"]);
    doctor.success();
    let out = doctor.stdout();
    assert!(
        out.contains("uses:           windows (auto: on WSL, and the Windows helper answers)"),
        "{out}"
    );
    assert!(
        out.contains("windows helper: ") && out.contains("answers"),
        "{out}"
    );
    assert!(
        out.contains("WSL:            yes (WSL_DISTRO_NAME is set)"),
        "{out}"
    );
}

#[test]
fn auto_on_wsl_without_a_helper_uses_the_file_store_and_says_why() {
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "acme", "ci")]))
        .env("XDG_DATA_HOME", "data")
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
        .env("WSL_INTEROP", "/run/WSL/1_interop");
    test.run_input("in the file", ["set", "TOKEN"]).success();
    test.run(["--store", "file", "get", "TOKEN"])
        .success()
        .stdout_is("in the file");
    let run = test.run(["-v", "check"]);
    run.success().stderr_has(
        "store file (auto: windows is not here: no Windows helper: with-secrets.exe is not on \
         PATH and WITH_SECRETS_WINDOWS_HELPER is not set; secret-service is not here",
    );
    let out = test.run(["doctor"]).stdout();
    assert!(
        out.contains("uses:           file (auto: windows is not here: no Windows helper"),
        "{out}"
    );
    assert!(
        out.contains("windows helper: not here: no Windows helper"),
        "{out}"
    );
    assert!(
        out.contains("WSL:            yes (WSL_INTEROP is set)"),
        "{out}"
    );
    assert!(out.contains("WSL interop:    "), "{out}");
}

#[test]
fn a_missing_helper_is_no_store_so_the_environment_stands_in() {
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "acme", "ci")]))
        .env("WITH_SECRETS_WINDOWS_HELPER", "/no/such/with-secrets.exe")
        .env("TOKEN", "from ci");
    test.run([
        "--store",
        "windows",
        "--",
        "sh",
        "-c",
        "printf %s \"$TOKEN\"",
    ])
    .success()
    .stdout_is("from ci");
    test.run(["--store", "windows", "-v", "check"])
        .success()
        .stderr_has("windows is not here, so every value comes from the environment: no Windows helper: /no/such/with-secrets.exe was not found");
    test.run_input("x", ["--store", "windows", "set", "TOKEN"])
        .expect_code(125)
        .stderr_has("put the Windows build of with-secrets (with-secrets.exe) on the Windows PATH");
}

/// Whether process `pid` is gone (or a zombie, which holds nothing).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[test]
fn a_helper_that_never_answers_is_killed_at_the_deadline() {
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "acme", "ci")]))
        .env("TOKEN", "stale");
    let dir = test.path().to_owned();
    let helper = dir.join("hang");
    // The helper and a child of its own, both silent forever.
    script(
        &helper,
        &format!(
            "sleep 600 &\necho $! > '{d}/child.pid'\necho $$ > '{d}/helper.pid'\nwait\n",
            d = dir.display()
        ),
    );
    let test = test.env("WITH_SECRETS_WINDOWS_HELPER", helper.as_os_str());
    let started = Instant::now();
    let run = test.run(["--store", "windows", "--timeout", "1", "--", "true"]);
    run.expect_code(125)
        .stderr_has("did not answer within 1 s, and was stopped");
    // A hung store is an error, never replaced by the environment.
    run.never_shows("stale");
    assert!(started.elapsed() < Duration::from_secs(30), "it hung");
    for file in ["helper.pid", "child.pid"] {
        let pid = read(&test, file);
        let pid = pid.trim();
        assert!(
            !pid.is_empty(),
            "{file} was not written: the helper never started"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone(pid) {
            assert!(
                Instant::now() < deadline,
                "{file}: process {pid} is still running"
            );
            std::thread::yield_now();
        }
    }
}

/// A helper that answers hello as another version.
fn mismatched(version: &str, protocol: u32) -> Test {
    let test = Test::new().manifest(&manifest_for(&[("TOKEN", "acme", "ci")]));
    let helper = test.path().join("old");
    script(
        &helper,
        &format!(
            "read line\nprintf '{{\"protocol\":{protocol},\"version\":\"{version}\"}}\\r\\n'\n\
             cat > /dev/null\n"
        ),
    );
    test.env("WITH_SECRETS_WINDOWS_HELPER", helper.as_os_str())
}

#[test]
fn a_helper_of_another_version_is_an_error_that_says_which_to_update() {
    mismatched("0.0.1", 1)
        .run(["--store", "windows", "check"])
        .expect_code(125)
        .stderr_has("is with-secrets 0.0.1, protocol 1, but this is with-secrets")
        .stderr_has("update the Windows build (with-secrets.exe) to this version");
    mismatched("99.0.0", 1)
        .run(["--store", "windows", "check"])
        .expect_code(125)
        .stderr_has("update this (Linux) with-secrets to the Windows build's version");
    mismatched(env!("CARGO_PKG_VERSION"), 99)
        .run(["--store", "windows", "check"])
        .expect_code(125)
        .stderr_has("update this (Linux) with-secrets");
}

#[test]
fn import_from_keyrings_alt_moves_entries_into_windows() {
    let test = bridged(&[("A", "s", "a"), ("B", "s", "b"), ("C", "s", "c")]).file(
        "data/python_keyring/keyring_pass.cfg",
        // base64 of "hello" and "wörld".
        "[s]\na = \n\taGVsbG8=\nb = \n\td8O2cmxk\n\n",
    );
    let run = test.run(["--store", "windows", "import", "--from", "keyrings-alt"]);
    run.success();
    let out = run.stdout();
    assert!(out.contains("copied     A  s / a"), "{out}");
    assert!(out.contains("not found  C  s / c"), "{out}");
    assert_eq!(starts(&test), 1, "one helper for the whole import");
    for (name, value) in [("A", "hello"), ("B", "wörld")] {
        test.run(["--store", "windows", "get", name])
            .success()
            .stdout_is(value);
    }
    let path: PathBuf = test.path().join("data/with-secrets/secrets.age");
    assert!(path.exists(), "nothing reached the store behind the helper");
}
