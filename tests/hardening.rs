//! Hardening: hostile manifests and values, load, signals, leaks and the exact
//! environment, each shown end to end with the built binary.
//!
//! Every run here is bounded: the harness's `wait` fails a test whose
//! with-secrets runs longer than a minute, and every wait of our own has a
//! deadline too.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{BIN, Reader, Run, SecretService, Test, default_signals, manifest_for, wait};

/// The file store's passphrase in these tests.
const PASSPHRASE: &str = "hardening passphrase";

/// No wait of our own is longer than this.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Hostile manifests: always exit 125 with a located message, never a panic
// (101), a signal (a stack overflow is SIGSEGV or SIGABRT) or a hang.
// ---------------------------------------------------------------------------

/// Runs `-- touch ran` with `manifest` as secrets.toml, and checks that it
/// failed as a manifest error at `location` ("LINE:COL"), with nothing run.
#[track_caller]
fn refused_at(manifest: impl AsRef<[u8]>, location: &str) -> Run {
    let test = Test::new().file("secrets.toml", manifest);
    let run = test.run(["--", "touch", "ran"]);
    // "2:" checks only the line; "2:5" the line and column.
    let end = if location.ends_with(':') { "" } else { ": " };
    run.expect_code(125).stderr_has(&format!(
        "with-secrets: {}:{location}{end}",
        test.path().join("secrets.toml").display()
    ));
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
    assert!(!test.path().join("ran").exists(), "the command ran");
    run
}

const ENTRY: &str =
    "A = { optional = true, service = \"s\", username = \"u\", description = \"d\" }";

#[test]
fn every_truncation_of_a_manifest_runs_or_is_a_located_error() {
    // `optional` comes first, so a prefix that parses has no required
    // entry; the file store, in a folder that does not exist, is empty and
    // needs no passphrase, so a prefix that parses runs the command.
    let manifest = format!("[defaults]\nservice = \"acme\"\n\n[secrets]\n{ENTRY}\n");
    let test = Test::new()
        .env("WITH_SECRETS_STORE", "file")
        .env("XDG_DATA_HOME", "/nonexistent-data-home");
    let path = test.path().join("secrets.toml");
    let mut refused = 0;
    for end in 0..=manifest.len() {
        std::fs::write(&path, &manifest[..end]).unwrap();
        let run = test.run(["--", "true"]);
        match run.code() {
            Some(0) => {}
            Some(125) => {
                let stderr = run.stderr();
                let prefix = format!("with-secrets: {}:", path.display());
                let location: Vec<&str> = stderr
                    .strip_prefix(&prefix)
                    .unwrap_or_else(|| panic!("{end}: {stderr}"))
                    .splitn(3, ':')
                    .take(2)
                    .collect();
                assert!(
                    location.iter().all(|n| n.parse::<usize>().is_ok()),
                    "{end}: {stderr}"
                );
                refused += 1;
            }
            _ => panic!("{:?} ended {run:?}", &manifest[..end]),
        }
    }
    assert!(refused > manifest.len() / 2, "{refused} refused");
}

#[test]
fn duplicate_keys_are_located_at_the_second_one() {
    refused_at(format!("[secrets]\n{ENTRY}\n{ENTRY}\n"), "3:1");
    refused_at(format!("[secrets]\n{ENTRY}\n[secrets]\n"), "3:2");
    refused_at(
        "[secrets]\nA = { service = \"s\", service = \"t\", username = \"u\" }\n",
        "2:22",
    )
    .stderr_has("duplicate key");
}

#[test]
fn a_byte_order_mark_and_crlf_line_endings_are_read_and_located() {
    Test::new()
        .file("secrets.toml", format!("\u{feff}[secrets]\r\n{ENTRY}\r\n"))
        .run(["--", "sh", "-c", "printf %s \"${A-unset}\""])
        .success()
        .stdout_is("unset");
    // The mark is invisible in an editor, so it takes no column.
    refused_at("\u{feff}A = 3\r\n", "1:1").stderr_has("unknown key `A`");
    refused_at("\u{feff}[secrets]\r\nA = 3\r\n", "2:5").stderr_has("`A` must be a table");
    refused_at("[secrets]\r\nA = { service = \"s\",\r\n", "2:")
        .stderr_has("2 | A = { service = \"s\",\n");
}

#[test]
fn invalid_utf8_is_located_at_the_first_bad_byte() {
    refused_at(b"\xff", "1:1").stderr_has("the file is not valid UTF-8");
    refused_at(b"\xef\xbb\xbf# caf\xe9\n", "1:6").stderr_has("not valid UTF-8");
    refused_at(b"[secrets]\n# ok\nA = { service = \"\xc3\" }\n", "3:18");
}

#[test]
fn five_thousand_levels_of_nesting_are_refused_without_overflowing_the_stack() {
    let deep = |open: &str, close: &str| {
        format!(
            "[secrets]\nA = {}1{}\n",
            open.repeat(5_000),
            close.repeat(5_000)
        )
    };
    refused_at(deep("[", "]"), "2:").stderr_has("recursion");
    refused_at(deep("{ a = ", " }"), "2:");
    refused_at(format!("{} = 1\n", vec!["a"; 5_000].join(".")), "1:1");
    refused_at(format!("[{}]\n", vec!["a"; 5_000].join(".")), "1:1");
    refused_at(format!("[[{}]]\n", vec!["a"; 5_000].join(".")), "1:1");
}

#[test]
fn a_ten_megabyte_manifest_is_refused_at_the_one_mib_mark() {
    // Valid TOML all the way, so only its size can refuse it.
    let mut text = String::from("[secrets]\n");
    let mut i = 0;
    while text.len() < 10 << 20 {
        text.push_str(&format!(
            "B{i:07} = {{ optional = true, service = \"s\", username = \"u\" }}\n"
        ));
        i += 1;
    }
    let limit = 1 << 20;
    let line = text[..limit].matches('\n').count() + 1;
    let column = limit - text[..limit].rfind('\n').unwrap();
    refused_at(&text, &format!("{line}:{column}")).stderr_has("the manifest is larger than 1 MiB");
    // Nor does a file without end fill the memory.
    let test = Test::new();
    test.run(["-m", "/dev/zero", "--", "touch", "ran"])
        .expect_code(125)
        .stderr_has("with-secrets: /dev/zero:1:1048577: the manifest is larger than 1 MiB");
}

#[test]
fn a_megabyte_on_one_line_is_located_with_a_short_snippet() {
    let strings = vec!["\"x\""; 250_000].join(",");
    let run = refused_at(format!("[secrets]\nA = [{strings}]\n"), "2:5");
    run.stderr_has("`A` must be a table");
    assert!(run.stderr().len() < 2_000, "{} bytes", run.stderr().len());
}

#[test]
fn wrong_types_name_the_type_and_never_the_value() {
    for (value, kind) in [
        ("3", "an integer"),
        ("3.5", "a float"),
        ("true", "a boolean"),
        ("1979-05-27", "a datetime"),
        ("[\"s\", \"u\"]", "an array"),
    ] {
        refused_at(format!("[secrets]\nA = {value}\n"), "2:5").stderr_has(&format!(
            "`A` must be a table such as {{ service = \"...\", username = \"...\" }}, not {kind}"
        ));
    }
    refused_at("[secrets]\nA = \"sk-hostile-1\"\n", "2:5")
        .stderr_has("`A` holds a value")
        .never_shows("sk-hostile-1");
    refused_at("secrets = 3\n", "1:11").stderr_has("`[secrets]` must be a table, not an integer");
    refused_at("defaults = \"x\"\n", "1:12")
        .stderr_has("`[defaults]` must be a table, not a string");
    refused_at("store = 3\n", "1:9").stderr_has("`store` must be a string, not an integer");
    refused_at("[secrets]\nA = { service = 1, username = \"u\" }\n", "2:17")
        .stderr_has("`service` must be a string, not an integer");
    refused_at(
        "[secrets]\nA = { service = \"s\", username = \"u\", optional = \"sk-hostile-2\" }\n",
        "2:49",
    )
    .stderr_has("`optional` must be true or false, not a string")
    .never_shows("sk-hostile-2");
}

#[test]
fn empty_strings_are_refused_where_they_mean_nothing() {
    refused_at(
        "[secrets]\nA = { service = \"\", username = \"u\" }\n",
        "2:17",
    )
    .stderr_has("`service` must not be empty");
    refused_at(
        "[secrets]\nA = { service = \"s\", username = '' }\n",
        "2:33",
    )
    .stderr_has("`username` must not be empty");
    refused_at("[defaults]\nservice = \"\"\n", "2:11").stderr_has("`service` must not be empty");
    refused_at(
        "[secrets]\n\"\" = { service = \"s\", username = \"u\" }\n",
        "2:1",
    )
    .stderr_has("is not a valid environment variable name");
    refused_at("store = \"\"\n", "1:9").stderr_has("unknown store ``");
    refused_at("\"\" = 1\n", "1:1").stderr_has("unknown key ``");
}

#[test]
fn control_characters_are_located() {
    refused_at("[secrets]\nA = { service = \"s\0\" }\n", "2:19");
    refused_at("[secrets]\0\n", "1:10");
    refused_at(
        "[secrets]\nA = { service = \"s\", username = \"u\" }\r\r\n",
        "2:",
    );
}

// ---------------------------------------------------------------------------
// Hostile values round-trip exactly, through `set`/`get` and a command's
// environment, in the Secret Service and in the file store.
// ---------------------------------------------------------------------------

/// (NAME, value): every shape of value that has broken a tool like this one.
fn hostile_values() -> Vec<(&'static str, Vec<u8>)> {
    let pattern = |len: usize| -> Vec<u8> {
        "0123456789abcdef ünï\n\t=$`\"'\\"
            .bytes()
            .cycle()
            .take(len)
            .collect()
    };
    vec![
        ("NEWLINES", b"\nline one\r\nline two\n\n".to_vec()),
        ("TABS", b"\tindented\tand\ttabbed\t".to_vec()),
        ("EQUALS", b"=a=b==c=".to_vec()),
        ("QUOTES", b"\"double\" 'single' \\back\\slash\\".to_vec()),
        (
            "SHELL",
            b"$HOME ${PATH} $(id) `id` $$ !x * ; | & > <".to_vec(),
        ),
        (
            "UNICODE",
            "pässwörd ✓ 🎉 日本語 \u{200b}\u{202e}".as_bytes().to_vec(),
        ),
        ("NOT_UTF8", b"\xff\xfe caf\xe9 \x80".to_vec()),
        ("EMPTY", Vec::new()),
        ("KIB_8", pattern(8 << 10)),
        ("KIB_64", pattern(64 << 10)),
    ]
}

fn hostile_manifest() -> String {
    let entries: Vec<(String, String)> = hostile_values()
        .into_iter()
        .map(|(name, _)| (name.to_owned(), name.to_lowercase()))
        .collect();
    let entries: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(name, user)| (name.as_str(), "hostile", user.as_str()))
        .collect();
    format!(
        "{}NUL_VALUE = {{ service = \"hostile\", username = \"nul\" }}\n",
        manifest_for(&entries)
    )
}

/// `set` each value from standard input (which strips one newline, so one is
/// added), read each back with `get`, then check a command's environment.
fn values_round_trip(test: &Test) {
    let values = hostile_values();
    for (name, value) in &values {
        let input = [value.as_slice(), b"\n"].concat();
        test.run_input(input, ["set", name]).success();
    }
    for (name, value) in &values {
        let run = test.run(["get", name]);
        run.success();
        assert_eq!(run.output.stdout, *value, "get {name}");
    }
    // Only NUL_VALUE is missing, and it is optional here.
    let optional = test.path().join("optional.toml");
    std::fs::write(
        &optional,
        hostile_manifest().replace("username = \"nul\"", "username = \"nul\", optional = true"),
    )
    .unwrap();
    let optional = optional.to_str().unwrap();
    test.run(["-m", optional, "--", "cp", "/proc/self/environ", "environ"])
        .success();
    let environ = environ(&std::fs::read(test.path().join("environ")).unwrap());
    for (name, value) in &values {
        let entry = [name.as_bytes(), b"=", value].concat();
        let matching = environ
            .iter()
            .filter(|e| e.starts_with(&[name.as_bytes(), b"="].concat()))
            .collect::<Vec<_>>();
        assert_eq!(matching, [&entry], "{name}");
    }
    // Set and empty, as a shell sees it.
    test.run([
        "-m",
        optional,
        "--",
        "sh",
        "-c",
        "printf %s \"${EMPTY+set}:${#EMPTY}:${#KIB_64}\"",
    ])
    .success()
    .stdout_is("set:0:65536");
}

/// A value with a NUL byte is stored and read back as it is, but a run
/// refuses it by name rather than cut it short.
fn a_nul_byte_is_stored_but_refused_by_name(test: &Test) {
    test.run_input(b"before\0after\n", ["set", "NUL_VALUE"])
        .success();
    let run = test.run(["get", "NUL_VALUE"]);
    run.success();
    assert_eq!(run.output.stdout, b"before\0after");
    let run = test.run(["--", "touch", "ran"]);
    run.expect_code(125)
        .stderr_has(
            "the value of NUL_VALUE contains a NUL byte, which an environment variable cannot hold",
        )
        .stderr_has("replace it with: with-secrets set NUL_VALUE")
        .never_shows("before")
        .never_shows("after");
    assert!(!test.path().join("ran").exists());
}

#[test]
fn hostile_values_round_trip_exactly_through_the_secret_service() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(&hostile_manifest());
    values_round_trip(&test);
    a_nul_byte_is_stored_but_refused_by_name(&test);
    // Another client reads the same bytes.
    let output = service.secret_tool(
        &["lookup", "service", "hostile", "username", "quotes"],
        None,
    );
    assert_eq!(output.stdout, b"\"double\" 'single' \\back\\slash\\");
}

#[test]
fn hostile_values_round_trip_exactly_through_the_file_store() {
    let test = Test::new().manifest(&hostile_manifest());
    let data = test.path().join("data");
    let test = test
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
        .env("XDG_DATA_HOME", data);
    values_round_trip(&test);
    a_nul_byte_is_stored_but_refused_by_name(&test);
}

// ---------------------------------------------------------------------------
// Under load.
// ---------------------------------------------------------------------------

/// The entries of a `/proc/PID/environ`, each `NAME=VALUE` as bytes.
fn environ(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split(|&b| b == 0)
        .filter(|entry| !entry.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn twenty_four_runs_at_once_with_twenty_secrets_each_see_the_right_values() {
    let service = SecretService::start();
    let values: Vec<String> = (0..20)
        .map(|i| format!("value {i}: ünï \"q\" $x `y`\nline two {i}"))
        .collect();
    for (i, value) in values.iter().enumerate() {
        service.store_foreign("load", &format!("user-{i}"), "load", value);
    }
    let names: Vec<String> = (0..20).map(|i| format!("S_{i:02}")).collect();
    let users: Vec<String> = (0..20).map(|i| format!("user-{i}")).collect();
    let entries: Vec<(&str, &str, &str)> = names
        .iter()
        .zip(&users)
        .map(|(name, user)| (name.as_str(), "load", user.as_str()))
        .collect();
    let test = Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&entries));
    let children: Vec<Child> = (0..24)
        .map(|run| {
            test.command([
                "--timeout",
                "30",
                "--",
                "cp",
                "/proc/self/environ",
                &format!("environ-{run}"),
            ])
            .env("RUN", run.to_string())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn with-secrets")
        })
        .collect();
    for child in children {
        let output = wait(child);
        assert!(output.status.success(), "{output:?}");
    }
    for run in 0..24 {
        let environ = environ(&std::fs::read(test.path().join(format!("environ-{run}"))).unwrap());
        let mut seen: Vec<String> = environ
            .iter()
            .map(|entry| String::from_utf8(entry.clone()).unwrap())
            .filter(|entry| entry.starts_with("S_") || entry.starts_with("RUN="))
            .collect();
        seen.sort();
        let mut expected: Vec<String> = names
            .iter()
            .zip(&values)
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        expected.push(format!("RUN={run}"));
        expected.sort();
        assert_eq!(seen, expected, "run {run}");
    }
}

#[test]
fn eight_concurrent_sets_of_one_entry_leave_one_item_holding_one_of_the_values() {
    // The file store's twin of this test is in tests/file_store.rs
    // (`eight_concurrent_sets_of_one_entry_leave_one_entry_with_one_of_the_values`).
    let service = SecretService::start();
    let test = Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[("TOKEN", "acme-api", "ci-bot")]));
    let values: Vec<String> = (0..8).map(|i| format!("concurrent value {i}")).collect();
    let children: Vec<Child> = values
        .iter()
        .map(|value| test.spawn_input(["--timeout", "30", "set", "TOKEN"], value.as_bytes()))
        .collect();
    for child in children {
        let output = wait(child);
        assert!(output.status.success(), "{output:?}");
    }
    assert_eq!(service.items("acme-api", "ci-bot").len(), 1);
    let got = test.run(["get", "TOKEN"]);
    got.success();
    assert!(values.contains(&got.stdout()), "{:?}", got.stdout());
}

#[test]
fn eight_concurrent_sets_into_the_kernel_keyring_leave_one_key_holding_one_of_the_values() {
    // In a user namespace and session keyring of its own, as tests/keyutils.rs
    // does, so the user keyring starts empty and is nobody else's.
    let test = Test::new().manifest(&manifest_for(&[("TOKEN", "acme-api", "ci-bot")]));
    let script = r#"
        pids=
        for i in 0 1 2 3 4 5 6 7; do
            printf 'kernel value %s' "$i" | "$BIN" --store keyutils set TOKEN &
            pids="$pids $!"
        done
        failed=0
        for pid in $pids; do wait "$pid" || failed=$((failed + 1)); done
        echo "failed $failed"
        echo "keys $(keyctl rlist @u | wc -w)"
        printf 'value %s\n' "$("$BIN" --store keyutils get TOKEN)"
    "#;
    let output = crate::keyutils::run_in_own_keyring(&test, script);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["failed 0", "keys 1"], "{stdout}");
    let value = lines[2].strip_prefix("value kernel value ").expect(&stdout);
    assert!(value.parse::<u8>().is_ok_and(|i| i < 8), "{stdout}");
}

// ---------------------------------------------------------------------------
// Signals.
// ---------------------------------------------------------------------------

/// Spawns `test`'s with-secrets with `args`, with every signal a test sends
/// at its default action whatever this process inherited (a shell cannot
/// trap a signal that was ignored when it started).
fn spawn_with_default_signals(test: &Test, args: &[&str]) -> Child {
    let mut command = test.command(args);
    command.stdin(Stdio::null());
    default_signals(&mut command)
        .spawn()
        .expect("spawn with-secrets")
}

fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill {pid}");
}

#[test]
fn sigterm_and_sigint_sent_to_with_secrets_reach_the_command() {
    let service = SecretService::start();
    service.store_foreign("acme-api", "ci-bot", "t", "token");
    let test = Test::new().keyring(&service).manifest(&manifest_for(&[(
        "API_TOKEN",
        "acme-api",
        "ci-bot",
    )]));
    for (signal, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT")] {
        let script = format!(
            "trap 'echo got {name}; exit 7' {name}; echo \"ready $$ $API_TOKEN\"; \
             while :; do sleep 0.05; done"
        );
        let mut child = spawn_with_default_signals(&test, &["--", "sh", "-c", &script]);
        let pid = child.id();
        let mut stdout = Reader::new(child.stdout.take().unwrap());
        let ready = stdout.until("\n", pid);
        // Exec in place: the command is the process we started.
        assert_eq!(ready, format!("ready {pid} token\n"));
        kill(pid, signal);
        let rest = stdout.rest(pid);
        let output = wait(child);
        assert_eq!(rest, format!("got {name}\n"));
        assert_eq!(output.status.code(), Some(7), "{output:?}");
    }
}

#[test]
fn a_command_that_kills_itself_shows_a_death_by_that_signal() {
    let test = Test::new().manifest("");
    for (signal, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGKILL, "KILL"),
    ] {
        let child = spawn_with_default_signals(
            &test,
            &["--", "sh", "-c", &format!("kill -{name} $$; sleep 5")],
        );
        let output = wait(child);
        assert_eq!(output.status.signal(), Some(signal), "{name}: {output:?}");
    }
    // And a shell sees 128+N.
    let line = format!(
        "{} -- sh -c 'kill -INT $$'; echo $?",
        shell_words::quote(BIN)
    );
    assert_eq!(
        String::from_utf8_lossy(&shell(&test, &line).stdout),
        "130\n"
    );
}

/// The children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|child| child.parse().unwrap())
        .collect()
}

/// How a signal reaches with-secrets at a prompt.
enum Signal {
    /// Keys typed on its terminal, which signal its whole process group.
    Typed(&'static str),
    /// kill(2), to with-secrets alone.
    Sent(libc::c_int),
}

/// Runs `with-secrets ARGS` on a pseudo-terminal, in a shell that then
/// reports its exit status and the terminal's settings; signals it once
/// `prompt` shows. Returns what the terminal showed.
fn signal_at_prompt(test: &Test, args: &str, prompt: &str, signal: Signal) -> String {
    // The shell traps (so outlives) what is typed; the trap is reset in
    // with-secrets, which gets each signal at its default action.
    let line = format!(
        "trap : INT QUIT; {} {args}; echo \"[exit $?]\"; stty -a",
        shell_words::quote(BIN)
    );
    // A signal ignored on the way in could not be trapped, nor reset.
    let mut child = default_signals(&mut test.script(&line))
        .spawn()
        .expect("script(1) from util-linux");
    let pid = child.id();
    let mut stdout = Reader::new(child.stdout.take().unwrap());
    let mut seen = stdout.until(prompt, pid);
    // Echo is off once the prompt shows.
    let mut stdin = child.stdin.take().unwrap();
    match signal {
        Signal::Typed(keys) => stdin.write_all(keys.as_bytes()).unwrap(),
        Signal::Sent(signal) => {
            // script(1), then its shell, then with-secrets.
            let shell = children(child.id());
            let with_secrets = children(shell[0]);
            assert_eq!(with_secrets.len(), 1, "{with_secrets:?}");
            kill(with_secrets[0], signal);
        }
    }
    seen.push_str(&stdout.rest(pid));
    let output = wait(child);
    drop(stdin);
    assert!(output.status.success(), "{seen}");
    seen
}

/// Whether the `stty -a` in `shown` says echo is on.
fn echo_is_on(shown: &str) -> bool {
    let settings = shown.rsplit_once("[exit").expect("an exit line").1;
    let words: Vec<&str> = settings.split([' ', ';', '\r', '\n']).collect();
    assert!(
        words.contains(&"echo") != words.contains(&"-echo"),
        "{shown}"
    );
    words.contains(&"echo")
}

#[test]
fn a_signal_at_a_prompt_leaves_echo_on_and_ends_with_secrets_by_it() {
    let test = Test::new().manifest(&manifest_for(&[("API_TOKEN", "acme-api", "ci-bot")]));
    let data = test.path().join("data");
    let test = test
        .env("WITH_SECRETS_STORE", "file")
        .env("XDG_DATA_HOME", &data);
    let value_prompt = "API_TOKEN (acme-api / ci-bot): ";
    for (signal, number) in [
        (Signal::Typed("\x03"), libc::SIGINT),
        (Signal::Typed("\x1c"), libc::SIGQUIT),
        (Signal::Sent(libc::SIGTERM), libc::SIGTERM),
        (Signal::Sent(libc::SIGHUP), libc::SIGHUP),
    ] {
        let shown = signal_at_prompt(&test, "set API_TOKEN", value_prompt, signal);
        assert!(
            shown.contains(&format!("[exit {}]", 128 + number)),
            "{shown}"
        );
        assert!(
            echo_is_on(&shown),
            "echo is off after signal {number}: {shown}"
        );
    }
    // The file store's passphrase prompt, with a store file to open.
    let mut set = test.command(["set", "API_TOKEN"]);
    set.env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::piped());
    let mut child = set.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"stored").unwrap();
    assert!(wait(child).status.success());
    let shown = signal_at_prompt(
        &test,
        "get API_TOKEN",
        "Passphrase for ",
        Signal::Typed("\x03"),
    );
    assert!(shown.contains("[exit 130]"), "{shown}");
    assert!(echo_is_on(&shown), "echo is off: {shown}");
}

/// A job-control shell that stops with-secrets at a prompt (the test types
/// Ctrl+Z), shows whether echo is on, and brings it back with `fg`.
const STOP_AND_FG: &str = r#"set -m
tty
"$BIN" set API_TOKEN
echo "[stopped $?] [$(stty -a | tr ' ;' '\n\n' | grep -x -e echo -e -echo)]"
fg >/dev/null
echo "[exit $?] [$(stty -a | tr ' ;' '\n\n' | grep -x -e echo -e -echo)]"
"#;

#[test]
fn ctrl_z_at_a_prompt_turns_echo_on_while_stopped_and_off_again_after_fg() {
    let test = Test::new().manifest(&manifest_for(&[("API_TOKEN", "acme-api", "ci-bot")]));
    let data = test.path().join("data");
    let test = test
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
        .env("XDG_DATA_HOME", &data)
        .file("job.sh", STOP_AND_FG);
    let line = format!("BIN={} bash job.sh", shell_words::quote(BIN));
    let mut child = default_signals(&mut test.script(&line))
        .spawn()
        .expect("script(1) from util-linux");
    let pid = child.id();
    let mut stdout = Reader::new(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = stdout.until("API_TOKEN (acme-api / ci-bot): ", pid);
    let tty = seen.lines().next().unwrap().trim().to_owned();
    assert!(tty.starts_with("/dev/"), "{tty}");
    stdin.write_all(b"\x1a").unwrap();
    seen.push_str(&stdout.until("[stopped", pid));
    seen.push_str(&stdout.until("]\r\n", pid));
    assert!(seen.contains("[stopped 148] [echo]"), "{seen}");
    // After fg, echo goes off again before anything is typed.
    let start = Instant::now();
    loop {
        let settings = wait(
            Command::new("stty")
                .args(["-a", "-F", &tty])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let settings = String::from_utf8_lossy(&settings.stdout).into_owned();
        if settings.split([' ', ';', '\n']).any(|word| word == "-echo") {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "echo never went off again: {settings}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stdin.write_all(b"typed-after-fg\n").unwrap();
    seen.push_str(&stdout.rest(pid));
    let output = wait(child);
    drop(stdin);
    let shown = seen;
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("[exit 0] [echo]"), "{shown}");
    assert!(
        !shown.contains("typed-after-fg"),
        "the value was echoed: {shown}"
    );
    assert_eq!(
        test.run(["get", "API_TOKEN"]).success().output.stdout,
        b"typed-after-fg"
    );
}

/// The signals a process ignores, from the `SigIgn` mask in `status`.
fn ignored(status: &str) -> u64 {
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .expect("a SigIgn line");
    u64::from_str_radix(mask.trim(), 16).unwrap()
}

#[test]
fn the_command_keeps_an_ignored_sighup_and_gets_sigpipe_at_its_default() {
    // As under nohup: the caller ignores SIGHUP, so the command must too.
    let test = Test::new().manifest("");
    let mut command = test.command(["--", "cat", "/proc/self/status"]);
    command.stdin(Stdio::null());
    // SAFETY: signal(2) is async-signal-safe, and nothing else runs here.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            Ok(())
        });
    }
    let output = wait(command.spawn().unwrap());
    assert!(output.status.success(), "{output:?}");
    let ignored = ignored(&String::from_utf8_lossy(&output.stdout));
    let bit = |signal: libc::c_int| 1u64 << (signal - 1);
    assert_ne!(
        ignored & bit(libc::SIGHUP),
        0,
        "SIGHUP is no longer ignored"
    );
    // with-secrets ignores SIGPIPE itself (Rust does), but not the command:
    // `with-secrets -- yes | head -1` must end.
    assert_eq!(ignored & bit(libc::SIGPIPE), 0, "SIGPIPE is ignored");
    let line = format!("{} -- yes | head -1", shell_words::quote(BIN));
    assert_eq!(String::from_utf8_lossy(&shell(&test, &line).stdout), "y\n");
}

#[test]
fn a_closed_stderr_still_exits_125_not_a_panic() {
    // Rust ignores SIGPIPE, so writing the error to a closed pipe fails
    // with EPIPE, and eprintln! would panic and exit 101.
    let test = Test::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = test.command(["-m", "nope.toml", "--", "true"]);
    command.stdin(Stdio::null()).stderr(writer);
    let output = wait(command.spawn().unwrap());
    assert_eq!(output.status.code(), Some(125), "{output:?}");
}

/// The kernel's state letter of `pid` (`S` sleeping, `T` stopped).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits until `child` is connected to `service`'s bus and so has sent its
/// whole first batch (Hello, OpenSession and the searches go out in one
/// write) to a keyring that will not answer: from then on it is resolving.
/// Asked of the bus, not of /proc/PID/wchan, which a non-dumpable process
/// hides from every user but root.
fn wait_until_blocked(child: &mut Child, service: &SecretService) {
    let pid = child.id();
    let connection = service.connection();
    let bus = connection.with_proxy(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        Duration::from_secs(5),
    );
    let start = Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended before blocking"
        );
        let (names,): (Vec<String>,) = bus
            .method_call("org.freedesktop.DBus", "ListNames", ())
            .expect("ListNames");
        let connected = names
            .iter()
            .filter(|name| name.starts_with(':'))
            .any(|name| {
                bus.method_call::<(u32,), _, _, _>(
                    "org.freedesktop.DBus",
                    "GetConnectionUnixProcessID",
                    (name.as_str(),),
                )
                .is_ok_and(|(owner,)| owner == pid)
            });
        if connected && state(pid) == Some('S') {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "never connected to the bus");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_signal_while_secrets_are_resolved_ends_with_secrets_by_it_and_runs_nothing() {
    let service = SecretService::start();
    service.store_foreign("acme-api", "ci-bot", "t", "token");
    let test = Test::new().keyring(&service).manifest(&manifest_for(&[(
        "API_TOKEN",
        "acme-api",
        "ci-bot",
    )]));
    // A keyring that never answers keeps with-secrets resolving.
    service.signal_keyring(libc::SIGSTOP);
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let marker = test.path().join(format!("ran-{signal}"));
        let marker = marker.to_str().unwrap();
        let mut child =
            spawn_with_default_signals(&test, &["--timeout", "50", "--", "touch", marker]);
        wait_until_blocked(&mut child, &service);
        kill(child.id(), signal);
        let output = wait(child);
        assert_eq!(output.status.signal(), Some(signal), "{output:?}");
        assert!(
            output.stdout.is_empty() && output.stderr.is_empty(),
            "{output:?}"
        );
        assert!(!Path::new(marker).exists(), "the command ran");
    }
    service.signal_keyring(libc::SIGCONT);
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "needs the debug build's fail point, which release builds leave out"
)]
fn a_signal_during_a_file_store_write_leaves_the_old_values() {
    // Debug builds stop themselves at the fail point, between writing the new
    // file and renaming it into place.
    let test = Test::new().manifest(&manifest_for(&[("TOKEN", "acme-api", "ci-bot")]));
    let data = test.path().join("data");
    let test = test
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
        .env("XDG_DATA_HOME", &data);
    test.run_input("old value", ["set", "TOKEN"]).success();
    let file = data.join("with-secrets/secrets.age");
    let before = std::fs::read(&file).unwrap();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut command = test.command(["set", "TOKEN"]);
        default_signals(&mut command)
            .env("WITH_SECRETS_FAILPOINT", "file-before-rename")
            .stdin(Stdio::piped());
        let mut child = command.spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"new value").unwrap();
        let start = Instant::now();
        while state(child.id()) != Some('T') {
            assert!(child.try_wait().unwrap().is_none(), "it never stopped");
            assert!(start.elapsed() < DEADLINE, "it never stopped");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Pending while stopped; delivered when it continues.
        kill(child.id(), signal);
        kill(child.id(), libc::SIGCONT);
        let output = wait(child);
        assert_eq!(output.status.signal(), Some(signal), "{output:?}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "the store file changed"
        );
        assert_eq!(
            test.run(["get", "TOKEN"]).success().output.stdout,
            b"old value"
        );
    }
    // The next write clears what the interrupted ones left.
    test.run_input("newer value", ["set", "TOKEN"]).success();
    assert_eq!(
        test.run(["get", "TOKEN"]).success().output.stdout,
        b"newer value"
    );
    let names: Vec<String> = std::fs::read_dir(data.join("with-secrets"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|name| !name.ends_with(".tmp")),
        "{names:?}"
    );
}

// ---------------------------------------------------------------------------
// No leaks.
// ---------------------------------------------------------------------------

/// The stored secret: it must never come out but through the command's environment.
const CANARY: &str = "canary-c4e1b0a9-stored";
/// A secret pasted into a manifest: refused, and never repeated.
const PASTED: &str = "canary-77d20f3e-pasted";

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            found.extend(files(&path));
        } else if kind.is_file() {
            found.push(path);
        }
    }
    found
}

#[track_caller]
fn no_file_holds(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let all = files(dir);
    for path in &all {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{} holds the canary",
            path.display()
        );
    }
    all
}

/// Runs `args` and checks its exit code and that neither output shows a canary.
#[track_caller]
fn leak_free(test: &Test, args: &[&str], input: Option<&str>, code: i32) {
    let run = match input {
        Some(input) => test.run_input(input, args),
        None => test.run(args),
    };
    run.expect_code(code)
        .never_shows(CANARY)
        .never_shows(PASTED);
}

#[test]
fn with_secrets_is_not_dumpable_so_no_core_dump_or_other_process_sees_its_memory() {
    // The flag shows from outside: a non-dumpable process's /proc/PID files
    // belong to root, whoever runs it. So the run must be by another user
    // than root: this one, or nobody (65534) when the tests run as root.
    // With --mask the command is our child, and $PPID is with-secrets.
    let test = Test::new().manifest("[secrets]\n");
    let args = ["--mask", "--", "sh", "-c", "stat -c %u /proc/$PPID/status"];
    // SAFETY: geteuid has no preconditions.
    let output = if unsafe { libc::geteuid() } != 0 {
        wait(test.command(args).stdin(Stdio::null()).spawn().unwrap())
    } else {
        // nobody must reach the binary and the project folder.
        let bin = test.path().join("with-secrets");
        std::fs::copy(BIN, &bin).unwrap();
        let open = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(test.path(), open).unwrap();
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .current_dir(test.path())
            .env_clear()
            .envs(test.envs())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        wait(command.spawn().expect("setpriv from util-linux"))
    };
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "0\n",
        "with-secrets' /proc files are its user's: it is dumpable"
    );
}

#[test]
fn no_failure_path_shows_the_canary_in_output_argv_or_files() {
    let service = SecretService::start();
    service.store_foreign("acme-api", "ci-bot", "t", CANARY);
    let test = Test::new()
        .keyring(&service)
        .manifest(
            "[secrets]\nAPI_TOKEN = { service = \"acme-api\", username = \"ci-bot\" }\n\
             GONE = { service = \"acme-api\", username = \"gone\" }\n",
        )
        .file(
            "one.toml",
            manifest_for(&[("API_TOKEN", "acme-api", "ci-bot")]),
        )
        .file("noexec", "#!/bin/sh\n")
        // Whatever tracing there is, at its loudest (no logger reads
        // RUST_LOG, so it is not set).
        .env("RUST_BACKTRACE", "full")
        .env("WITH_SECRETS_TRACE_ROUND_TRIPS", "1");
    // Pasted secrets live in their own folder: the walk below is for the stored one.
    let pasted = tempfile::tempdir().unwrap();
    let value_in = pasted.path().join("value.toml");
    std::fs::write(&value_in, format!("[secrets]\nAPI_TOKEN = \"{PASTED}\"\n")).unwrap();
    let syntax = pasted.path().join("syntax.toml");
    std::fs::write(
        &syntax,
        format!("[secrets]\nA = {{ service = \"s\", token = \"{PASTED} }}\n"),
    )
    .unwrap();
    let (value_in, syntax) = (value_in.to_str().unwrap(), syntax.to_str().unwrap());

    leak_free(&test, &["-m", value_in, "--", "true"], None, 125);
    leak_free(&test, &["-m", syntax, "--", "true"], None, 125);
    leak_free(&test, &["-m", value_in, "check"], None, 125);
    // GONE is missing; API_TOKEN was fetched.
    leak_free(&test, &["--", "true"], None, 125);
    leak_free(&test, &["check"], None, 1);
    leak_free(&test, &["get", "GONE"], None, 125);
    leak_free(&test, &["doctor"], None, 0);
    leak_free(&test, &["set", "NOT_IN_MANIFEST"], Some(CANARY), 125);
    leak_free(
        &test,
        &["-m", "one.toml", "--", "no-such-command-here"],
        None,
        127,
    );
    leak_free(&test, &["-m", "one.toml", "--", "./noexec"], None, 126);
    leak_free(
        &test,
        &["-m", "one.toml", "--", "./nothing-here"],
        None,
        127,
    );
    // The command runs and fails; its argv is recorded for the walk below.
    leak_free(
        &test,
        &[
            "-m",
            "one.toml",
            "--",
            "sh",
            "-c",
            "cat /proc/$$/cmdline > argv; exit 3",
            "x",
        ],
        None,
        3,
    );
    assert!(
        std::fs::read(test.path().join("argv"))
            .unwrap()
            .starts_with(b"sh\0-c\0")
    );
    // No bus, with the canary as the CI fallback and GONE still missing.
    let no_bus = Test::new()
        .manifest(&manifest_for(&[
            ("API_TOKEN", "acme-api", "ci-bot"),
            ("GONE", "acme-api", "gone"),
        ]))
        .env("API_TOKEN", CANARY)
        .env("XDG_RUNTIME_DIR", "/nonexistent");
    leak_free(
        &no_bus,
        &["--store", "secret-service", "--", "true"],
        None,
        125,
    );
    leak_free(&no_bus, &["--store", "secret-service", "check"], None, 1);
    leak_free(&no_bus, &["doctor"], None, 0);
    // A keyring that does not answer in time.
    service.signal_keyring(libc::SIGSTOP);
    leak_free(
        &test,
        &["--timeout", "0.3", "-m", "one.toml", "--", "true"],
        None,
        125,
    );
    leak_free(&test, &["--timeout", "0.3", "get", "API_TOKEN"], None, 125);
    service.signal_keyring(libc::SIGCONT);
    // A locked keyring.
    service.lock();
    leak_free(&test, &["-m", "one.toml", "--", "true"], None, 125);
    leak_free(&test, &["doctor"], None, 0);

    no_file_holds(test.path(), CANARY);
    no_file_holds(no_bus.path(), CANARY);
    // The bus's folder holds the keyring daemon's own files: the canary is
    // there, encrypted, and must not be there in clear.
    let socket = service.address().strip_prefix("unix:path=").unwrap();
    let bus_dir = Path::new(socket).parent().unwrap();
    let walked = no_file_holds(bus_dir, CANARY);
    assert!(
        walked
            .iter()
            .any(|path| path.extension() == Some(OsStr::new("keyring"))),
        "no keyring file was walked: {walked:?}"
    );
}

#[test]
fn no_failure_path_of_the_file_store_shows_the_canary() {
    let test = Test::new().manifest(&manifest_for(&[
        ("API_TOKEN", "acme-api", "ci-bot"),
        ("GONE", "acme-api", "gone"),
    ]));
    let data = test.path().join("data");
    let test = test
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
        .env("XDG_DATA_HOME", data);
    leak_free(&test, &["set", "API_TOKEN"], Some(CANARY), 0);
    leak_free(&test, &["--", "true"], None, 125);
    leak_free(&test, &["check"], None, 1);
    leak_free(&test, &["doctor"], None, 0);
    let wrong = test.env("WITH_SECRETS_PASSPHRASE", "wrong");
    leak_free(&wrong, &["--", "true"], None, 125);
    leak_free(&wrong, &["get", "API_TOKEN"], None, 125);
    leak_free(&wrong, &["set", "API_TOKEN"], Some(CANARY), 125);
    let walked = no_file_holds(wrong.path(), CANARY);
    assert!(
        walked.iter().any(|path| path.ends_with("secrets.age")),
        "{walked:?}"
    );
}

// ---------------------------------------------------------------------------
// The environment is exact.
// ---------------------------------------------------------------------------

/// The parent's environment for the exact-environment tests: ordinary
/// variables, empty ones, and names and values that are not UTF-8.
fn odd_environment(test: Test) -> Test {
    test.env("PLAIN", "plain")
        .env("EMPTY_VALUE", "")
        .env("WITH_NEWLINE", "one\ntwo")
        .env("NOT_UTF8_VALUE", OsStr::from_bytes(b"\xff\xfe\x80 raw"))
        .env(OsStr::from_bytes(b"NOT_UTF8_NAME_\xe9"), "value")
        .env(OsStr::from_bytes(b"lower.dotted-name"), "x=y=z")
        // Resolved from the store: replaced by the store's value.
        .env("FROM_STORE", "the parent's value")
        // Not in the store: the parent's value stays, as it was.
        .env("FROM_ENV", OsStr::from_bytes(b"parent \xff"))
}

const EXACT_MANIFEST: &str = "[secrets]\n\
    FROM_STORE = { service = \"exact\", username = \"store\" }\n\
    ADDED = { service = \"exact\", username = \"added\" }\n\
    FROM_ENV = { service = \"exact\", username = \"env\" }\n\
    UNSET = { service = \"exact\", username = \"unset\", optional = true }\n";

/// The environment a command got, as sorted `NAME=VALUE` byte strings.
fn child_environment(test: &Test, args: &[&str]) -> Vec<Vec<u8>> {
    let mut all = args.to_vec();
    all.extend(["--", "cp", "/proc/self/environ", "environ"]);
    test.run(&all).success();
    let mut environ = environ(&std::fs::read(test.path().join("environ")).unwrap());
    environ.sort();
    environ
}

/// The environment a run of `test` starts with, as sorted byte strings.
fn parent_environment(test: &Test) -> Vec<Vec<u8>> {
    let mut env: Vec<Vec<u8>> = test
        .envs()
        .map(|(name, value)| [name.as_bytes(), b"=", value.as_bytes()].concat())
        .collect();
    env.sort();
    env
}

#[test]
fn the_child_environment_is_the_parent_plus_the_secrets_byte_for_byte() {
    let service = SecretService::start();
    service.store_foreign("exact", "store", "s", "from the store");
    let test = odd_environment(Test::new().keyring(&service).manifest(EXACT_MANIFEST));
    test.run_input(b"added \xff\xfe\n", ["set", "ADDED"])
        .success();
    let mut expected: Vec<Vec<u8>> = parent_environment(&test)
        .into_iter()
        .filter(|entry| !entry.starts_with(b"FROM_STORE="))
        .chain([
            b"FROM_STORE=from the store".to_vec(),
            b"ADDED=added \xff\xfe".to_vec(),
        ])
        .collect();
    expected.sort();
    let seen = child_environment(&test, &[]);
    assert_eq!(
        seen.iter()
            .map(|e| String::from_utf8_lossy(e))
            .collect::<Vec<_>>(),
        expected
            .iter()
            .map(|e| String::from_utf8_lossy(e))
            .collect::<Vec<_>>()
    );
    assert_eq!(seen, expected);
}

#[test]
fn with_every_value_from_the_environment_the_child_gets_the_parent_environment_unchanged() {
    // No keyring at all, as in CI: every value falls back to the
    // environment, and the command's environment is the parent's, exactly.
    let test = odd_environment(Test::new().manifest(EXACT_MANIFEST))
        .env("ADDED", "ci value")
        .env("XDG_RUNTIME_DIR", "/nonexistent");
    let seen = child_environment(&test, &["--store", "secret-service"]);
    assert_eq!(seen, parent_environment(&test));
}

/// Runs the shell command `line` in `test`'s folder and environment.
fn shell(test: &Test, line: &str) -> Output {
    wait(
        default_signals(&mut Command::new("sh"))
            .args(["-c", line])
            .current_dir(test.path())
            .env_clear()
            .envs(test.envs())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh"),
    )
}
