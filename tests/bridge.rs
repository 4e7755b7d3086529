//! `--store windows` from Linux, as on WSL: the Linux build reaches the
//! Windows Credential Manager through a helper, the Windows build of
//! with-secrets (`with-secrets.exe bridge`), on the helper's stdin and stdout.
//!
//! The helper is the Windows build under Wine (tests/support/wine.rs), in a
//! Wine prefix of this test process, whose Credential Manager is shared with
//! Python's `keyring`, played by tests/wine/python-keyring-standin.c. Most
//! tests start it through a wrapper script that records each start, its argv
//! and its environment, so they can count helper processes and look for
//! values where they must never be. Helpers that misbehave are played by
//! tests/wine/bridge-impostor.c, under Wine too. Every test uses services of
//! its own, so they share the prefix and still run in parallel.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::wine::wine;
use crate::support::{BIN, Test, manifest_for, needs_root};

/// Writes an executable shell script at `path`.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A project whose TOKEN (stale in the environment) is in `service`, and
/// whose Windows helper is a script that greets as this version, reads the
/// lookup, then runs `answer`.
fn greeting_helper(service: &str, answer: &str) -> Test {
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", service, "ci")]))
        .env("TOKEN", "stale");
    let helper = test.path().join("helper");
    script(
        &helper,
        &format!(
            "read hello\n\
             printf '{{\"protocol\":1,\"version\":\"{version}\"}}\\n'\n\
             read lookup\n\
             {answer}",
            version = env!("CARGO_PKG_VERSION"),
        ),
    );
    test.env("WITH_SECRETS_WINDOWS_HELPER", &helper)
}

/// A project on WSL whose Windows helper is the Windows build under Wine,
/// started through `helper`, which records one line per start in `starts`,
/// its argv in `argv`, its environment in `environ` and its working folder
/// in `cwd`.
fn bridged(entries: &[(&str, &str, &str)]) -> Test {
    let test = Test::new().manifest(&manifest_for(entries));
    let dir = test.path().to_owned();
    let helper = dir.join("helper");
    script(
        &helper,
        &format!(
            "echo start >> '{d}/starts'\nprintf '%s\\n' \"$0\" \"$@\" >> '{d}/argv'\n\
             env >> '{d}/environ'\npwd >> '{d}/cwd'\nexec wine '{exe}' \"$@\"\n",
            d = dir.display(),
            exe = wine().exe().display(),
        ),
    );
    wine()
        .with_helper(test, &helper.to_string_lossy())
        .env("WSL_DISTRO_NAME", "Debian")
}

/// What `doctor` prints, after checking that it succeeded.
fn doctor(test: &Test) -> String {
    let run = test.run(["doctor"]);
    run.success();
    run.stdout()
}

/// Asserts that `out` has every one of `lines`.
fn has_all(out: &str, lines: &[&str]) {
    for line in lines {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
}

fn read(test: &Test, name: &str) -> String {
    std::fs::read_to_string(test.path().join(name)).unwrap_or_default()
}

fn starts(test: &Test) -> usize {
    read(test, "starts").lines().count()
}

#[test]
fn a_run_reads_every_entry_through_one_helper_process() {
    // Ten entries in two services: Python's layout puts one username of a
    // service at SERVICE and the others at USERNAME@SERVICE, and the helper
    // reads as many as these on several threads.
    let entries: Vec<(String, &str, String)> = (0..10)
        .map(|i| {
            let service = if i < 6 { "br-run" } else { "br-run-2" };
            (format!("V{i}"), service, format!("user{i}"))
        })
        .collect();
    let entries: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(n, s, u)| (n.as_str(), *s, u.as_str()))
        .collect();
    let test = bridged(&entries);
    let mut sets = 0;
    for (i, (name, service, username)) in entries.iter().enumerate() {
        let value = format!("value of {name} ✓");
        if i % 3 == 0 {
            wine().python_set(service, username, &value);
        } else {
            test.run_input(&value, ["--store", "windows", "set", name])
                .success();
            sets += 1;
        }
    }
    assert_eq!(starts(&test), sets, "one helper per set");
    // The values really are in the Credential Manager, where Python's
    // keyring reads them.
    assert_eq!(
        wine().python_get("br-run", "user4").as_deref(),
        Some("value of V4 ✓")
    );
    let names: Vec<&str> = entries.iter().map(|(name, _, _)| *name).collect();
    let expected = names
        .iter()
        .map(|name| format!("value of {name} ✓"))
        .collect::<Vec<_>>()
        .join("|");
    assert_eq!(test.seen_with(&["--store", "windows"], &names), expected);
    assert_eq!(starts(&test), sets + 1, "one helper for the whole run");
}

#[test]
fn a_value_is_sent_on_stdin_never_in_any_process_argv() {
    let test = bridged(&[("TOKEN", "br-argv", "ci")]);
    // The helper runs behind a wrapper that, before it passes on each of
    // the helper's answers, lists every process's argv: Wine's own, the
    // helper's and whatever it started. The helper is alive then, with the
    // value in hand (sent it in a request, or just sent it back), waiting
    // for the client's next line, which cannot come before the answer. It
    // names the helper by its pid, so a scan shows it was running.
    let dir = test.path().to_owned();
    let scanning = dir.join("scanning-helper");
    script(
        &scanning,
        &format!(
            "printf '%s\\n' \"$0\" \"$@\" >> '{d}/argv'\n\
             env >> '{d}/environ'\n\
             mkfifo '{d}/answers'\n\
             exec 3<&0\n\
             wine '{exe}' \"$@\" <&3 3<&- > '{d}/answers' &\n\
             helper=$!\n\
             while IFS= read -r line; do\n\
             \x20 echo \"-- scan while $helper runs: $(tr '\\0' ' ' < /proc/$helper/cmdline)\" \
             >> '{d}/argvs'\n\
             \x20 for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done \
             >> '{d}/argvs' 2>/dev/null\n\
             \x20 printf '%s\\n' \"$line\"\n\
             done < '{d}/answers'\n\
             rm '{d}/answers'\n",
            d = dir.display(),
            exe = wine().exe().display(),
        ),
    );
    let test = test.env("WITH_SECRETS_WINDOWS_HELPER", &scanning);
    let value = "argv-canary-5c1e7 ✓";
    test.run_input(value, ["--store", "windows", "set", "TOKEN"])
        .success();
    test.run(["--store", "windows", "get", "TOKEN"])
        .success()
        .stdout_is(value);
    assert_eq!(test.seen_with(&["--store", "windows"], &["TOKEN"]), value);
    // Two answers a run (hello, then the set or the lookup), each scanned
    // while the helper ran: its with-secrets.exe is in every listing.
    let listing = read(&test, "argvs");
    let scans: Vec<&str> = listing.split("-- scan while ").skip(1).collect();
    assert_eq!(scans.len(), 6, "{listing}");
    for scan in &scans {
        // Wine pads the argv it shows with spaces.
        let helper = scan.lines().next().unwrap_or_default();
        assert!(
            helper.contains("with-secrets.exe")
                && helper.split_whitespace().last() == Some("bridge"),
            "the helper was not running during a scan: {helper}"
        );
        let seen: Vec<&str> = scan
            .lines()
            .filter(|argv| argv.contains("argv-canary"))
            .collect();
        assert!(seen.is_empty(), "a value in an argv: {seen:?}");
    }
    let argv = read(&test, "argv");
    assert!(argv.ends_with("\nbridge\n"), "{argv}");
    assert!(
        !argv.contains("argv-canary"),
        "a value in the helper's argv: {argv}"
    );
    assert!(
        !read(&test, "environ").contains("argv-canary"),
        "a value in the helper's environment"
    );
}

#[test]
fn auto_on_wsl_uses_windows_when_the_helper_answers() {
    let wine = wine();
    let test = wine.as_wsl(Test::new().manifest(&manifest_for(&[
        ("WSL_TOKEN", "br-wsl", "alice"),
        ("WSL_OTHER", "br-wsl-other", "bob"),
    ])));
    wine.python_set("br-wsl", "alice", "from-python ✓");
    let run = test.run([
        "-v",
        "--",
        "sh",
        "-c",
        "printf '[%s|%s]' \"$WSL_TOKEN\" \"${WSL_OTHER-unset}\"",
    ]);
    run.expect_code(125)
        .stderr_has("1 required secret is missing from windows")
        .stderr_has("WSL_OTHER");
    test.run_input("from-linux ✓", ["set", "WSL_OTHER"])
        .success();
    assert_eq!(
        wine.python_get("br-wsl-other", "bob").as_deref(),
        Some("from-linux ✓")
    );
    let run = test.run([
        "-v",
        "--",
        "sh",
        "-c",
        "printf '[%s|%s]' \"$WSL_TOKEN\" \"$WSL_OTHER\"",
    ]);
    run.success()
        .stdout_is("[from-python ✓|from-linux ✓]")
        .stderr_has("store windows (auto: on WSL, and the Windows helper answered)");
    let out = doctor(&test);
    let version = format!("(with-secrets {}) answers", env!("CARGO_PKG_VERSION"));
    has_all(
        &out,
        &[
            "uses:           windows (auto: on WSL, and the Windows helper answers)",
            &version,
            "WSL:            yes (WSL_DISTRO_NAME is set)",
        ],
    );
    assert!(
        out.lines()
            .any(|line| line.contains("WSL_TOKEN") && line.contains("found")),
        "{out}"
    );
}

#[test]
fn the_helper_starts_in_the_windows_drive_when_there_is_one() {
    needs_root("it mounts an empty /mnt/c in a mount namespace");
    let test = bridged(&[("TOKEN", "br-cwd", "ci")]);
    wine().python_set("br-cwd", "ci", "from C:");
    // As on WSL, where /mnt/c is the Windows C: drive: an empty one, seen
    // only by this run.
    let (ok, out) = test.outside(
        "unshare",
        &[
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs none /mnt && mkdir /mnt/c && exec \"$0\" \"$@\"",
            BIN,
            "--store",
            "windows",
            "--",
            "sh",
            "-c",
            "printf '[%s]' \"$TOKEN\"",
        ],
        ".",
    );
    // Wine, whose wineserver is outside this mount namespace, says it cannot
    // open Z:\\mnt\\c and starts in C:\\windows; WSL has no such trouble.
    assert!(ok && out.starts_with("[from C:]"), "{out}");
    assert_eq!(read(&test, "cwd"), "/mnt/c\n");
}

#[test]
fn auto_on_wsl_without_a_helper_uses_the_file_store_and_says_why() {
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "acme", "ci")]))
        .env("XDG_DATA_HOME", "data")
        .env("WITH_SECRETS_PASSPHRASE", "bridge passphrase")
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
    has_all(
        &doctor(&test),
        &[
            "uses:           file (auto: windows is not here: no Windows helper",
            "windows helper: not here: no Windows helper",
            "WSL:            yes (WSL_INTEROP is set)",
            "WSL interop:    ",
        ],
    );
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

#[test]
fn a_helper_that_wine_cannot_start_is_an_error_not_the_environment() {
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "br-nostart", "ci")]))
        .env("TOKEN", "from ci");
    let missing = test.path().join("no-such-with-secrets.exe");
    let test = wine().with_helper(
        test,
        &format!("wine {}", shell_words::quote(&missing.to_string_lossy())),
    );
    let run = test.run([
        "--store",
        "windows",
        "--",
        "sh",
        "-c",
        "printf %s \"$TOKEN\"",
    ]);
    run.expect_code(125)
        .stderr_has("failed: it exited without answering")
        .never_shows("from ci");
}

#[test]
fn a_helper_that_cannot_be_executed_says_interop_is_broken() {
    // As on WSL with interop off: a Windows program on PATH that Linux
    // cannot execute.
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "br-interop", "ci")]))
        .file("windows/with-secrets.exe", b"MZ\x90\0 not for Linux")
        .env("WSL_DISTRO_NAME", "Debian")
        .env("TOKEN", "from ci");
    let bin = test.path().join("windows");
    let exe = bin.join("with-secrets.exe");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let test = test.env("PATH", path);
    let broken = "WSL interop, which runs Windows programs, is off or broken";
    let run = test.run(["check"]);
    run.expect_code(125)
        .stderr_has("windows: the Windows helper")
        .stderr_has(broken)
        .never_shows("from ci");
    // No WSLInterop entry in binfmt_misc here, as on WSL with interop off.
    has_all(
        &doctor(&test),
        &[
            "uses:           windows (auto: on WSL, and the Windows helper is there), which \
             FAILS: the Windows helper",
            "windows helper: FAILS: ",
            "WSL interop:    BROKEN: no WSLInterop entry",
            "(windows: the Windows helper",
            "not looked up: windows failed",
        ],
    );
}

/// The processes whose argv has `marker` in it.
fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("list /proc")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|entry| {
            let argv = std::fs::read(entry.path().join("cmdline")).ok()?;
            let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
            argv.contains(marker)
                .then(|| format!("{}: {argv}", entry.file_name().to_string_lossy()))
        })
        .collect()
}

#[test]
fn a_helper_that_never_answers_is_killed_at_the_deadline() {
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "br-hang", "ci")]))
        .env("TOKEN", "stale");
    // The impostor starts a child of its own, then both stay silent; it
    // writes `started` once the child is running.
    let started = test.path().join("started");
    let windows_path = format!("Z:{}", started.display()).replace('/', "\\");
    let test = wine().with_helper(
        test,
        &wine().impostor(&format!("hang {}", shell_words::quote(&windows_path))),
    );
    let begun = Instant::now();
    let run = test.run(["--store", "windows", "--timeout", "3", "--", "true"]);
    run.expect_code(125)
        .stderr_has("did not answer within 3 s, and was stopped");
    // A hung store is an error, never replaced by the environment.
    run.never_shows("stale");
    assert!(begun.elapsed() < Duration::from_secs(30), "it hung");
    assert!(
        started.exists(),
        "the impostor never started its child: it did not run long enough to hang"
    );
    // Both Windows processes are gone: their argv holds the marker path.
    wait_until_gone(&windows_path);
}

/// Waits, with a deadline, until no process has `marker` in its argv.
fn wait_until_gone(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still running: {left:?}");
        std::thread::yield_now();
    }
}

#[test]
fn a_helper_whose_child_keeps_its_output_open_holds_no_run_and_leaves_nothing_behind() {
    // The helper answers (it is the Linux build serving the file store),
    // but first starts a child that inherits its stdout, our pipe, and
    // never exits, as something a Windows program leaves running may.
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "acme", "ci")]))
        .env("XDG_DATA_HOME", "data")
        .env("WITH_SECRETS_PASSPHRASE", "bridge passphrase");
    let marker = test.path().join("lingering");
    std::fs::write(&marker, "").expect("write the marker");
    let marker = marker.to_string_lossy().into_owned();
    let helper = test.path().join("helper");
    script(
        &helper,
        &format!("tail -f '{marker}' 2>/dev/null &\nexec '{BIN}' --store file \"$@\"\n"),
    );
    let test = test.env("WITH_SECRETS_WINDOWS_HELPER", &helper);
    test.run_input("kept ✓", ["--store", "file", "set", "TOKEN"])
        .success();
    // A --timeout far beyond the test's own deadline: the run must end
    // because its answers are in, not because the deadline passed.
    let mut run = test
        .command([
            "--store",
            "windows",
            "--timeout",
            "3600",
            "--",
            "sh",
            "-c",
            "printf '[%s]' \"$TOKEN\"",
        ])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn with-secrets");
    let deadline = Instant::now() + Duration::from_secs(120);
    while run.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = run.kill();
            let left = processes_with(&marker);
            for pid in left.iter().filter_map(|line| line.split(':').next()) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid])
                    .status();
            }
            panic!(
                "the run still waits, 120 s in, with its answer long in: on the helper's \
                 child, which holds the helper's output open ({left:?})"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Exited: its output must close too (a process left behind may hold it).
    let output = crate::support::wait_for(run, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "[kept ✓]");
    // The helper's child went with it.
    wait_until_gone(&marker);
}

#[test]
fn a_value_that_is_not_base64_is_the_helpers_fault_not_the_windows_sides() {
    // The Linux side's own check finds a value that is not base64.
    let test = greeting_helper(
        "br-base64",
        "printf '{\"found\":[{\"value\":\"not base64!\",\"matches\":1}]}\\n'\n\
         cat >/dev/null\n",
    );
    test.run(["--store", "windows", "--", "true"])
        .expect_code(125)
        .stderr_has("failed: it sent a value that is not base64")
        .stderr_lacks("the Windows side reports")
        .never_shows("stale");
}

#[test]
fn a_helper_that_never_ends_its_line_is_stopped_at_16_mib_not_at_the_deadline() {
    // It answers the lookup with 64 MiB and no line end, and keeps its
    // output open.
    let test = greeting_helper(
        "br-long",
        "head -c 67108864 /dev/zero\nexec tail -f /dev/null\n",
    );
    let mut run = test
        .command(["--store", "windows", "--timeout", "3600", "--", "true"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn with-secrets");
    let deadline = Instant::now() + Duration::from_secs(120);
    while run.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("the run still reads, 120 s in, a line that never ends");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Exited: its output must close too (a process left behind may hold it).
    let output = crate::support::wait_for(run, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("failed: it sent a line longer than 16 MiB"),
        "{stderr}"
    );
    assert!(!stderr.contains("stale"), "{stderr}");
}

#[test]
fn the_helper_refuses_a_request_line_longer_than_16_mib() {
    let test = Test::new();
    let mut input = vec![b'x'; (16 << 20) + 1];
    input.push(b'\n');
    test.run_input(input, ["--store", "file", "bridge"])
        .expect_code(125)
        .stderr_has(
            "bridge: cannot read its requests from standard input: a line longer than 16 MiB",
        );
}

/// A project whose helper answers hello as another version.
fn mismatched(version: &str, protocol: u32) -> Test {
    let test = Test::new().manifest(&manifest_for(&[("TOKEN", "br-version", "ci")]));
    wine().with_helper(
        test,
        &wine().impostor(&format!("hello {version} {protocol}")),
    )
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
    let test = bridged(&[
        ("A", "brimport", "a"),
        ("B", "brimport", "b"),
        ("C", "brimport", "c"),
    ])
    .file(
        "data/python_keyring/keyring_pass.cfg",
        // base64 of "hello" and "wörld".
        "[brimport]\na = \n\taGVsbG8=\nb = \n\td8O2cmxk\n\n",
    );
    let data = test.path().join("data");
    let test = test.env("XDG_DATA_HOME", data);
    let run = test.run(["--store", "windows", "import", "--from", "keyrings-alt"]);
    run.success();
    let out = run.stdout();
    assert!(out.contains("copied     A  brimport / a"), "{out}");
    assert!(out.contains("not found  C  brimport / c"), "{out}");
    assert_eq!(starts(&test), 1, "one helper for the whole import");
    for (username, value) in [("a", "hello"), ("b", "wörld")] {
        assert_eq!(
            wine().python_get("brimport", username).as_deref(),
            Some(value)
        );
    }
    assert_eq!(wine().python_get("brimport", "c"), None);
}

/// The Linux build serves any store it is told to as a helper: the file
/// store here, with its passphrase from the helper's environment.
#[test]
fn the_linux_build_serves_a_named_store_as_a_helper() {
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "acme", "ci")]))
        .env("XDG_DATA_HOME", "data")
        .env("WITH_SECRETS_PASSPHRASE", "bridge passphrase")
        .env("WITH_SECRETS_WINDOWS_HELPER", format!("{BIN} --store file"));
    test.run_input("served ✓", ["--store", "windows", "set", "TOKEN"])
        .success();
    test.run(["--store", "file", "get", "TOKEN"])
        .success()
        .stdout_is("served ✓");
    assert_eq!(
        test.seen_with(&["--store", "windows"], &["TOKEN"]),
        "served ✓"
    );
}

#[test]
fn the_windows_build_the_tests_make_is_fresh_for_the_one_scripts_test_makes() {
    // This process built it (tests/support/wine.rs); scripts/test builds it
    // with the same command from the shell that runs `cargo test`. That
    // shell's environment is the one `cargo test` has, our parent's.
    let exe = wine().exe();
    let parent = std::os::unix::process::parent_id();
    let comm = std::fs::read_to_string(format!("/proc/{parent}/comm")).unwrap_or_default();
    assert_eq!(
        comm.trim(),
        "cargo",
        "run this under `cargo test`: it compares with the environment cargo test started with"
    );
    let environ = std::fs::read(format!("/proc/{parent}/environ")).expect("cargo's environment");
    let shell = environ
        .split(|&byte| byte == 0)
        .filter_map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?;
            pair.split_once('=')
        })
        .collect::<Vec<_>>();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(std::env::var_os("CARGO").expect("CARGO"))
        .env_clear()
        .envs(shell)
        .current_dir(root)
        .args(crate::support::wine::BUILD)
        .args(["target/wine", "-v"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cargo build");
    // A dirty build may recompile for minutes; a hang is still an error.
    let output = crate::support::wait_for(output, Duration::from_secs(1800));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    let rebuilt: Vec<&str> = log
        .lines()
        .filter(|line| line.trim_start().starts_with("Compiling") || line.contains("Dirty"))
        .collect();
    assert!(
        rebuilt.is_empty(),
        "the build from the shell redoes what the tests built ({}): {rebuilt:#?}",
        exe.display()
    );
}

/// The session cache in front of the bridge (src/store/cache.rs): each test
/// runs its steps in a `keyctl session -` of its own, inside a user
/// namespace of its own (tests/keyutils.rs), so its cache is its own and
/// nobody's keyring is touched. Wine runs there as it does outside: the
/// namespace maps root to root, so the prefix and its `wineserver` are ours.
#[cfg(target_os = "linux")]
mod session_cache {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::{Test, bridged, script, wine};
    use crate::keyutils::{Step, in_session, shell, with_secrets};
    use crate::support::{BIN, Run, manifest_for};

    /// Shell syntax, quotes, non-ASCII text and an inner newline (`set` takes
    /// one final newline of its input as the end of the value).
    const TRICKY: &str = "pä$$ 'q' \"d\" `x` $(id)\nline two";

    /// with-secrets `--store windows` with `args`.
    fn windows(args: &[&str]) -> Step {
        let mut all = vec!["--store", "windows"];
        all.extend_from_slice(args);
        with_secrets(&all)
    }

    /// A run with `flags` that prints `names` as `[A|B|…]`.
    fn printed(flags: &[&str], names: &[&str]) -> Step {
        let values = names
            .iter()
            .map(|name| format!("\"${name}\""))
            .collect::<Vec<_>>()
            .join(" ");
        let format = vec!["%s"; names.len()].join("|");
        let printf = format!("printf '[{format}]' {values}");
        let mut args = vec!["--store", "windows"];
        args.extend_from_slice(flags);
        args.extend(["--", "sh", "-c", &printf]);
        with_secrets(&args)
    }

    /// Runs `steps` in one session, each followed by a count of the helper
    /// starts recorded in `starts` (see `bridged`): each step's run and the
    /// number of helpers started by then.
    fn counted(test: &Test, steps: Vec<Step>) -> Vec<(Run, usize)> {
        let mut all = Vec::new();
        for step in steps {
            all.push(step);
            all.push(shell("cat starts 2>/dev/null | wc -l"));
        }
        let mut runs = in_session(test, &all).into_iter();
        let mut counted = Vec::new();
        while let (Some(run), Some(count)) = (runs.next(), runs.next()) {
            count.success();
            let starts = count.stdout().trim().parse().expect("a count of lines");
            counted.push((run, starts));
        }
        counted
    }

    #[test]
    fn after_unlock_a_run_with_every_value_kept_starts_no_helper_until_lock() {
        let test = bridged(&[
            ("TOKEN", "br-cache", "token"),
            ("TRICKY", "br-cache", "tricky"),
            ("OTHER", "br-cache-2", "other"),
        ]);
        wine().python_set("br-cache", "token", "token ✓");
        wine().python_set("br-cache-2", "other", "other ✓");
        // Python's keyring, behind the cache's back: another program on the
        // same Credential Manager.
        let behind = format!(
            "wine {} set br-cache token 'changed ✓'",
            shell_words::quote(&wine().standin().to_string_lossy())
        );
        let all = ["TOKEN", "TRICKY", "OTHER"];
        let runs = counted(
            &test,
            vec![
                windows(&["set", "TRICKY"]).input(TRICKY),
                printed(&[], &all),
                windows(&["unlock"]),
                printed(&[], &all),
                printed(&["-v"], &all),
                shell(&behind),
                printed(&[], &all),
                printed(&["--no-cache"], &all),
                printed(&[], &all),
                windows(&["set", "TOKEN"]).input("set ✓"),
                printed(&[], &all),
                windows(&["check"]),
                windows(&["lock"]),
                printed(&[], &all),
            ],
        );
        let served = |token: &str| format!("[{token}|{TRICKY}|other ✓]");
        let starts: Vec<usize> = runs.iter().map(|(_, starts)| *starts).collect();
        // Each step's helper starts, in the order of the steps above.
        assert_eq!(
            starts,
            [1, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 5, 5, 6],
            "helpers started by each step"
        );
        runs[0].0.success();
        // Before unlock, every run asks the helper.
        runs[1].0.success().stdout_is(&served("token ✓"));
        runs[2].0.success().stderr_has("session cache on for ");
        runs[3].0.success().stdout_is(&served("token ✓"));
        runs[4]
            .0
            .success()
            .stdout_is(&served("token ✓"))
            .stderr_has("session cache: all 3 values kept, so windows was not asked")
            .stderr_has("TRICKY")
            .stderr_has("from the session cache (read from windows ");
        runs[5].0.success();
        // Changed behind its back: the cache serves what it read...
        runs[6].0.success().stdout_is(&served("token ✓"));
        // ...and --no-cache asks the helper, and keeps nothing.
        runs[7].0.success().stdout_is(&served("changed ✓"));
        runs[8].0.success().stdout_is(&served("token ✓"));
        // A set through with-secrets starts a helper, and is kept.
        runs[9].0.success();
        runs[10].0.success().stdout_is(&served("set ✓"));
        let check = format!("{}{}", runs[11].0.stdout(), runs[11].0.stderr());
        runs[11].0.success();
        assert_eq!(
            check.matches("found (in the session cache, read ").count(),
            3,
            "{check}"
        );
        runs[12]
            .0
            .success()
            .stderr_has("ended the session cache: runs read every value from its store again");
        runs[13].0.success().stdout_is(&served("set ✓"));
        assert_eq!(
            wine().python_get("br-cache", "token").as_deref(),
            Some("set ✓")
        );
    }

    #[test]
    fn fifty_values_kept_are_all_served_with_no_helper_started() {
        const N: usize = 50;
        let names: Vec<String> = (0..N).map(|i| format!("V{i}")).collect();
        let usernames: Vec<String> = (0..N).map(|i| format!("u{i}")).collect();
        let entries: Vec<(&str, &str, &str)> = names
            .iter()
            .zip(&usernames)
            .map(|(name, username)| (name.as_str(), "brcache50", username.as_str()))
            .collect();
        let value = |i: usize| format!("value {i} ✓ $x\n");
        // Into the Credential Manager with one helper: an import from
        // keyrings.alt's plain-text file.
        let mut file = String::from("[brcache50]\n");
        for i in 0..N {
            file.push_str(&format!("u{i} = \n\t{}\n", BASE64.encode(value(i))));
        }
        let test = bridged(&entries).file("data/python_keyring/keyring_pass.cfg", file);
        let data = test.path().join("data");
        let test = test.env("XDG_DATA_HOME", data);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let runs = counted(
            &test,
            vec![
                windows(&["import", "--from", "keyrings-alt"]),
                windows(&["unlock"]),
                printed(&[], &names),
                printed(&["-v"], &names),
            ],
        );
        let expected = format!("[{}]", (0..N).map(value).collect::<Vec<_>>().join("|"));
        let starts: Vec<usize> = runs.iter().map(|(_, starts)| *starts).collect();
        assert_eq!(starts, [1, 1, 2, 2], "helpers started by each step");
        runs[0].0.success();
        runs[1].0.success();
        runs[2].0.success().stdout_is(&expected);
        runs[3]
            .0
            .success()
            .stdout_is(&expected)
            .stderr_has("session cache: all 50 values kept, so windows was not asked");
    }

    /// A project whose TOKEN and OTHER (both stale in the environment) are
    /// in `service`, on a Windows side that is the Linux build serving a file
    /// store (as in `the_linux_build_serves_a_named_store_as_a_helper`),
    /// behind a script that records each start in `starts` and fails at once
    /// while `fail` exists: the same command line, so the same cache, either
    /// way. Returns it, its helper, and a step that stores OTHER on that side
    /// as another program would, past the cache.
    fn file_bridged(service: &str) -> (Test, std::path::PathBuf, Step) {
        let test = Test::new()
            .manifest(&manifest_for(&[
                ("TOKEN", service, "token"),
                ("OTHER", service, "other"),
            ]))
            .env("TOKEN", "stale")
            .env("OTHER", "stale");
        let dir = test.path().to_owned();
        let helper = dir.join("helper");
        let side = format!(
            "XDG_DATA_HOME='{d}/helper-data' WITH_SECRETS_PASSPHRASE='helper passphrase'",
            d = dir.display(),
        );
        script(
            &helper,
            &format!(
                "echo start >> '{d}/starts'\n\
                 [ -e '{d}/fail' ] && \
                 {{ read hello; echo 'helper failed on purpose' >&2; exit 3; }}\n\
                 {side} exec '{BIN}' --store file \"$@\"\n",
                d = dir.display(),
            ),
        );
        let past_the_cache =
            shell(&format!("{side} '{BIN}' --store file set OTHER")).input("other ✓");
        (
            test.env("WITH_SECRETS_WINDOWS_HELPER", &helper),
            helper,
            past_the_cache,
        )
    }

    #[test]
    fn a_helper_failing_behind_a_partial_cache_fails_the_run_and_nothing_stands_in() {
        let (test, helper, past_the_cache) = file_bridged("br-partial");
        let both = ["TOKEN", "OTHER"];
        let runs = counted(
            &test,
            vec![
                windows(&["unlock"]),
                // Kept: a set through with-secrets.
                windows(&["set", "TOKEN"]).input("kept ✓"),
                // Not kept.
                past_the_cache,
                shell("touch fail"),
                printed(&["-v"], &both),
                shell("rm fail"),
                printed(&["-v"], &both),
                printed(&["-v"], &both),
            ],
        );
        let starts: Vec<usize> = runs.iter().map(|(_, starts)| *starts).collect();
        assert_eq!(
            starts,
            [0, 1, 1, 1, 2, 2, 3, 3],
            "helpers started by each step"
        );
        let runs: Vec<Run> = runs.into_iter().map(|(run, _)| run).collect();
        for run in &runs[..4] {
            run.success();
        }
        runs[4]
            .expect_code(125)
            .stdout_is("")
            .stderr_has("session cache: 1 of 2 values kept; asking windows for the rest")
            .stderr_has(&format!(
                "with-secrets: windows: the Windows helper ({}) failed: ",
                helper.display()
            ))
            .stderr_has("helper failed on purpose")
            .never_shows("stale")
            .never_shows("kept ✓");
        runs[5].success();
        // The same helper, working again: it is asked for OTHER alone.
        runs[6]
            .success()
            .stdout_is("[kept ✓|other ✓]")
            .stderr_has("session cache: 1 of 2 values kept; asking windows for the rest");
        runs[7]
            .success()
            .stdout_is("[kept ✓|other ✓]")
            .stderr_has("session cache: all 2 values kept, so windows was not asked");
    }

    #[test]
    fn a_set_or_delete_through_with_secrets_drops_what_it_touches_even_under_no_cache() {
        let (test, _, past_the_cache) = file_bridged("br-writes");
        let both = ["TOKEN", "OTHER"];
        let runs = counted(
            &test,
            vec![
                past_the_cache,
                windows(&["set", "TOKEN"]).input("old ✓"),
                windows(&["unlock"]),
                printed(&[], &both),
                printed(&["-v"], &both),
                // Stored, and dropped from the cache, not kept.
                windows(&["--no-cache", "set", "TOKEN"]).input("new ✓"),
                printed(&["-v"], &both),
                printed(&["-v"], &both),
                windows(&["delete", "TOKEN"]),
                printed(&["-v"], &both),
            ],
        );
        let starts: Vec<usize> = runs.iter().map(|(_, starts)| *starts).collect();
        assert_eq!(
            starts,
            [0, 1, 1, 2, 2, 3, 4, 4, 5, 6],
            "helpers started by each step"
        );
        let runs: Vec<Run> = runs.into_iter().map(|(run, _)| run).collect();
        for run in &runs[..3] {
            run.success();
        }
        runs[3].success().stdout_is("[old ✓|other ✓]");
        runs[4]
            .success()
            .stdout_is("[old ✓|other ✓]")
            .stderr_has("session cache: all 2 values kept, so windows was not asked");
        runs[5].success();
        runs[6]
            .success()
            .stdout_is("[new ✓|other ✓]")
            .stderr_has("session cache: 1 of 2 values kept; asking windows for the rest");
        runs[7]
            .success()
            .stdout_is("[new ✓|other ✓]")
            .stderr_has("session cache: all 2 values kept, so windows was not asked");
        runs[8].success();
        // The store, asked, no longer has TOKEN: the environment's stands in
        // for a value the store does not have, as it does without the cache.
        runs[9]
            .success()
            .stdout_is("[stale|other ✓]")
            .stderr_has("session cache: 1 of 2 values kept; asking windows for the rest");
    }

    #[test]
    fn auto_on_wsl_says_when_the_values_came_from_the_cache_and_not_the_helper() {
        let test = bridged(&[("TOKEN", "br-cache-auto", "token")]).env("WSL_DISTRO_NAME", "Debian");
        wine().python_set("br-cache-auto", "token", "auto ✓");
        let auto_printed = |flags: &[&str]| {
            let mut args = flags.to_vec();
            args.extend(["--", "sh", "-c", "printf '[%s]' \"$TOKEN\""]);
            with_secrets(&args)
        };
        let runs = counted(
            &test,
            vec![
                with_secrets(&["unlock"]),
                auto_printed(&["-v"]),
                auto_printed(&["-v"]),
            ],
        );
        let starts: Vec<usize> = runs.iter().map(|(_, starts)| *starts).collect();
        // `unlock` asks the helper once: where it answers, `auto` uses the
        // Windows store, so there is no file store to unlock.
        assert_eq!(starts, [1, 2, 2], "helper starts per step");
        runs[0].0.success().stderr_lacks("unlocked ");
        runs[1]
            .0
            .success()
            .stdout_is("[auto ✓]")
            .stderr_has("store windows (auto: on WSL, and the Windows helper answered)");
        runs[2].0.success().stdout_is("[auto ✓]").stderr_has(
            "store windows (auto: on WSL, with the Windows store's values in the session cache)",
        );
    }
}
