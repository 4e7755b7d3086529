//! The `file` store: an age-encrypted file, end to end, checked against the
//! real `age` CLI both ways.
//!
//! `age` reads a passphrase from the terminal only, so it runs on a
//! pseudo-terminal through script(1), as with-secrets' own prompts do.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::support::{BoundedOutput, Test, manifest_for, wait};

pub(crate) const PASSPHRASE: &str = "correct horse battery staple";
/// A value with non-ASCII text, quotes, shell syntax and an inner newline.
const VALUE: &str = "pä$$ wörd ✓ 🎉 \"q\" 'a' `x`\nsecond line";

/// A project whose file store lives in its own XDG_DATA_HOME, chosen with
/// WITH_SECRETS_STORE, with `entries` as (NAME, service, username).
fn project(entries: &[(&str, &str, &str)]) -> Test {
    let test = Test::new().manifest(&manifest_for(entries));
    let data = test.path().join("data");
    test.env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_STORE", "file")
}

fn token_project() -> Test {
    project(&[("TOKEN", "acme-api", "CI Bot")]).env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
}

fn store_dir(test: &Test) -> PathBuf {
    test.path().join("data/with-secrets")
}

fn store_file(test: &Test) -> PathBuf {
    store_dir(test).join("secrets.age")
}

fn set(test: &Test, name: &str, value: impl AsRef<[u8]>) {
    test.run_input(value, ["set", name]).success();
}

fn get(test: &Test, name: &str) -> String {
    let run = test.run(["get", name]);
    run.success();
    run.stdout()
}

/// Runs the shell command `line` on a pseudo-terminal through script(1), in
/// the project folder with the project's environment, typing each answer
/// once its prompt has shown. Returns the transcript and the exit code.
pub(crate) fn on_terminal(test: &Test, line: &str, answers: &[(&str, &str)]) -> (String, i32) {
    let mut child = test
        .script(line)
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 256];
        while let Ok(n @ 1..) = stdout.read(&mut buffer) {
            if send.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stdin = child.stdin.take();
    let mut answers = answers.iter().peekable();
    let mut seen = Vec::new();
    // Where the next prompt is looked for: after the last one answered.
    let mut from = 0;
    loop {
        while let Some((prompt, answer)) = answers.peek() {
            let prompt = prompt.as_bytes();
            let Some(at) = seen[from..].windows(prompt.len()).position(|w| w == prompt) else {
                break;
            };
            from += at + prompt.len();
            // Typed only once the prompt shows: with-secrets turns echo off
            // before it prints a prompt, so nothing typed then is echoed.
            let stdin = stdin.as_mut().unwrap();
            stdin.write_all(answer.as_bytes()).unwrap();
            stdin.write_all(b"\r").unwrap();
            answers.next();
        }
        if answers.peek().is_none() {
            stdin = None;
        }
        match receive.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(bytes) => seen.extend_from_slice(&bytes),
            // The output ends when the command does.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("{line} hung:\n{}", String::from_utf8_lossy(&seen));
            }
        }
    }
    let transcript = String::from_utf8_lossy(&seen).into_owned();
    if let Some((prompt, _)) = answers.next() {
        panic!("{line} ended before prompting {prompt:?}:\n{transcript}");
    }
    (transcript, wait(child).status.code().unwrap_or(-1))
}

/// The real `age` CLI, which scripts/install-deps installs.
fn age() -> &'static str {
    let found = Command::new("age")
        .arg("--version")
        .bounded_output()
        .is_ok_and(|output| output.status.success());
    assert!(found, "the age CLI is missing: run ./scripts/install-deps");
    "age"
}

/// Decrypts `file` with `age -d`, typing the passphrase, and parses the JSON.
pub(crate) fn age_decrypt(test: &Test, file: &Path) -> serde_json::Value {
    let out = test.path().join("decrypted.json");
    let line = format!(
        "{} -d -o {} {}",
        age(),
        shell_words::quote(&out.to_string_lossy()),
        shell_words::quote(&file.to_string_lossy())
    );
    let (transcript, code) = on_terminal(test, &line, &[("Enter passphrase", PASSPHRASE)]);
    assert_eq!(code, 0, "{transcript}");
    let json = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// The items of a decrypted document, as (service, username, value).
pub(crate) fn items(document: &serde_json::Value) -> Vec<(String, String, String)> {
    assert_eq!(document["with-secrets"], 1, "{document}");
    let text = |item: &serde_json::Value, field: &str| item[field].as_str().unwrap().to_owned();
    document["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                text(item, "service"),
                text(item, "username"),
                text(item, "value"),
            )
        })
        .collect()
}

pub(crate) fn item(service: &str, username: &str, value: &str) -> (String, String, String) {
    (service.into(), username.into(), value.into())
}

#[test]
fn values_come_back_exactly_from_get_and_the_command_environment() {
    let test = project(&[
        ("TOKEN", "acme-api", "CI Bot"),
        ("LINES", "acme-api", "lines"),
        ("EMPTY", "acme-api", "empty"),
    ])
    .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    set(&test, "TOKEN", VALUE);
    // `set` strips one newline from piped input, so this keeps one.
    set(&test, "LINES", "one\r\ntwo\n\n");
    set(&test, "EMPTY", "");
    assert_eq!(get(&test, "TOKEN"), VALUE);
    assert_eq!(get(&test, "LINES"), "one\r\ntwo\n");
    assert_eq!(get(&test, "EMPTY"), "");
    assert_eq!(
        test.seen(&["TOKEN", "LINES", "EMPTY"]),
        format!("{VALUE}|one\r\ntwo\n|")
    );
}

#[test]
fn setting_twice_leaves_one_entry_with_the_new_value() {
    let test = token_project();
    set(&test, "TOKEN", "first");
    set(&test, "TOKEN", "second");
    assert_eq!(get(&test, "TOKEN"), "second");
    let document = age_decrypt(&test, &store_file(&test));
    assert_eq!(items(&document), [item("acme-api", "CI Bot", "second")]);
    test.run(["check"])
        .success()
        .stdout_is("TOKEN  acme-api  CI Bot  found\n");
}

#[test]
fn age_decrypts_what_with_secrets_wrote() {
    let test = project(&[("TOKEN", "acme-api", "CI Bot"), ("DB", "db", "admin")])
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    set(&test, "TOKEN", VALUE);
    set(&test, "DB", "postgres://u:p@h/db");
    let document = age_decrypt(&test, &store_file(&test));
    assert_eq!(
        items(&document),
        [
            item("acme-api", "CI Bot", VALUE),
            item("db", "admin", "postgres://u:p@h/db"),
        ]
    );
    assert_eq!(
        document["items"][0]["label"],
        "TOKEN (with-secrets: acme-api / CI Bot)"
    );
}

#[test]
fn with_secrets_reads_and_updates_what_age_p_encrypted() {
    let test = project(&[("TOKEN", "acme-api", "CI Bot"), ("DB", "db", "admin")])
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    let document = serde_json::json!({
        "with-secrets": 1,
        "items": [{"service": "acme-api", "username": "CI Bot", "value": VALUE}],
    });
    let test = test.file("plain.json", document.to_string());
    std::fs::create_dir_all(store_dir(&test)).unwrap();
    let line = format!(
        "{} -p -o {} plain.json",
        age(),
        shell_words::quote(&store_file(&test).to_string_lossy())
    );
    let (transcript, code) = on_terminal(
        &test,
        &line,
        &[
            ("Enter passphrase", PASSPHRASE),
            ("Confirm passphrase", PASSPHRASE),
        ],
    );
    assert_eq!(code, 0, "{transcript}");
    assert_eq!(get(&test, "TOKEN"), VALUE);
    // Our rewrite keeps what age wrote, and age still reads it.
    set(&test, "DB", "added");
    assert_eq!(test.seen(&["TOKEN", "DB"]), format!("{VALUE}|added"));
    assert_eq!(
        items(&age_decrypt(&test, &store_file(&test))),
        [
            item("acme-api", "CI Bot", VALUE),
            item("db", "admin", "added")
        ]
    );
}

#[test]
fn a_wrong_passphrase_is_a_clear_error_and_changes_nothing() {
    let test = token_project();
    set(&test, "TOKEN", VALUE);
    let file = store_file(&test);
    let before = std::fs::read(&file).unwrap();
    let test = test.env("WITH_SECRETS_PASSPHRASE", "wrong");
    let runs = [
        test.run(["get", "TOKEN"]),
        test.run_input("new", ["set", "TOKEN"]),
        test.run(["delete", "TOKEN"]),
        test.run(["--", "true"]),
    ];
    for run in &runs {
        run.expect_code(125)
            .stderr_has(&format!(
                "the password does not open {}; nothing was changed",
                file.display()
            ))
            .stderr_has("check WITH_SECRETS_PASSPHRASE")
            .never_shows(VALUE);
    }
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn an_existing_file_with_no_passphrase_and_no_terminal_is_a_clear_error() {
    let test = token_project();
    set(&test, "TOKEN", VALUE);
    // Empty counts as unset.
    let test = test.env("WITH_SECRETS_PASSPHRASE", "");
    test.run(["get", "TOKEN"])
        .expect_code(125)
        .stderr_has(&format!(
            "{} is encrypted, and there is no terminal to ask for its password\n  \
         set WITH_SECRETS_PASSPHRASE to its password",
            store_file(&test).display()
        ));
}

#[test]
fn a_missing_file_needs_no_passphrase_and_the_environment_fills_in() {
    let test = project(&[("TOKEN", "acme-api", "CI Bot")]).env("TOKEN", "from the environment");
    assert_eq!(test.seen(&["TOKEN"]), "from the environment");
    test.run(["check"])
        .success()
        .stdout_is("TOKEN  acme-api  CI Bot  from environment\n");
    assert!(!test.path().join("data").exists(), "a read made the folder");
}

#[test]
fn the_folder_file_and_lock_file_are_private() {
    let test = token_project();
    set(&test, "TOKEN", VALUE);
    let mode = |path: PathBuf| std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    let dir = store_dir(&test);
    assert_eq!(mode(dir.clone()), 0o700);
    assert_eq!(mode(dir.join("secrets.age")), 0o600);
    assert_eq!(mode(dir.join("secrets.age.lock")), 0o600);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["secrets.age", "secrets.age.lock"]);
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn no_value_is_ever_on_disk_in_clear() {
    let test = project(&[
        ("TOKEN", "acme-api", "CI Bot"),
        ("BYTES", "acme-api", "bytes"),
    ])
    .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    let canary = "canary-7d1f0c2e-value";
    // Not UTF-8, so it is kept as base64 inside.
    let bytes = [b"\xff\xfe".as_slice(), canary.as_bytes()].concat();
    set(&test, "TOKEN", canary);
    set(&test, "BYTES", &bytes);
    set(&test, "TOKEN", format!("{canary}-updated"));
    assert_eq!(
        test.run(["get", "BYTES"]).success().output.stdout,
        bytes,
        "the bytes come back"
    );
    let base64 = base64::engine::general_purpose::STANDARD;
    let needles = [
        canary.as_bytes().to_vec(),
        base64.encode(canary).into_bytes(),
        base64.encode(&bytes).into_bytes(),
    ];
    let all = files(&test.path().join("data"));
    assert!(all.len() >= 2, "{all:?}");
    for path in all {
        let contents = std::fs::read(&path).unwrap();
        for needle in &needles {
            assert!(
                !contents.windows(needle.len()).any(|w| w == needle),
                "{} holds {}",
                path.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// Runs `set` for each (name, value) at once, each in its own process.
fn set_at_once(test: &Test, sets: &[(String, String)]) {
    let children: Vec<Child> = sets
        .iter()
        .map(|(name, value)| test.spawn_input(["set", name], value.as_bytes()))
        .collect();
    for child in children {
        let output = wait(child);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn eight_concurrent_sets_of_different_entries_lose_none() {
    let names: Vec<String> = (0..8).map(|i| format!("V{i}")).collect();
    let entries: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|name| (name.as_str(), "acme", name.as_str()))
        .collect();
    let test = project(&entries).env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    // The first `set` makes the file; the others race on the rewrite.
    set(&test, "V0", "seed");
    let sets: Vec<(String, String)> = names
        .iter()
        .map(|name| (name.clone(), format!("value of {name}")))
        .collect();
    set_at_once(&test, &sets);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let expected: Vec<String> = names
        .iter()
        .map(|name| format!("value of {name}"))
        .collect();
    assert_eq!(test.seen(&names), expected.join("|"));
}

#[test]
fn eight_concurrent_sets_of_one_entry_leave_one_entry_with_one_of_the_values() {
    let test = token_project();
    let values: Vec<String> = (0..8).map(|i| format!("value {i}")).collect();
    let sets: Vec<(String, String)> = values
        .iter()
        .map(|value| ("TOKEN".to_owned(), value.clone()))
        .collect();
    // With no file yet, so they also race to make it.
    set_at_once(&test, &sets);
    let value = get(&test, "TOKEN");
    assert!(values.contains(&value), "{value:?}");
    test.run(["check"])
        .success()
        .stdout_is("TOKEN  acme-api  CI Bot  found\n");
}

/// The state letter of process `pid` in /proc/PID/stat (`T` when stopped).
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "needs the debug build's fail point, which release builds leave out"
)]
fn a_crash_between_writing_and_renaming_loses_nothing() {
    let test = project(&[
        ("TOKEN", "acme-api", "CI Bot"),
        ("DB", "db", "admin"),
        ("NEW", "new", "new"),
    ])
    .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    set(&test, "TOKEN", VALUE);
    set(&test, "DB", "db value");
    let before = std::fs::read(store_file(&test)).unwrap();

    // Debug builds stop themselves (SIGSTOP) at the fail point: the new
    // file is written and synced, and not yet renamed into place.
    let mut child = test
        .command(["set", "TOKEN"])
        .env("WITH_SECRETS_FAILPOINT", "file-before-rename")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn with-secrets");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"never stored")
        .unwrap();
    let start = Instant::now();
    while state(child.id()) != Some('T') {
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended without stopping at the fail point (a release build?)"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
    let leftovers: Vec<PathBuf> = files(&store_dir(&test))
        .into_iter()
        .filter(|path| path.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert_eq!(leftovers.len(), 1, "the new file is written: {leftovers:?}");
    child.kill().unwrap(); // SIGKILL, as a crash
    child.wait().unwrap();

    assert_eq!(std::fs::read(store_file(&test)).unwrap(), before);
    assert_eq!(get(&test, "TOKEN"), VALUE);
    assert_eq!(get(&test, "DB"), "db value");
    // The next write works, and clears what the crash left.
    set(&test, "NEW", "after the crash");
    assert_eq!(
        test.seen(&["TOKEN", "DB", "NEW"]),
        format!("{VALUE}|db value|after the crash")
    );
    assert!(!leftovers[0].exists(), "the leftover is still there");
}

#[test]
fn auto_with_no_session_bus_uses_the_file_store() {
    // No WITH_SECRETS_STORE, and the harness leaves out DBUS_SESSION_BUS_ADDRESS
    // and XDG_RUNTIME_DIR, so there is no bus to find a keyring on.
    let test = Test::new().manifest(&manifest_for(&[
        ("TOKEN", "acme-api", "CI Bot"),
        ("MISSING", "acme-api", "missing"),
    ]));
    let data = test.path().join("data");
    let test = test
        .env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    set(&test, "TOKEN", VALUE);
    assert!(store_file(&test).exists());
    assert_eq!(get(&test, "TOKEN"), VALUE);
    let run = test.run(["--", "true"]);
    run.expect_code(125)
        .stderr_has("1 required secret is missing from file and the environment");
    let stderr = run.stderr();
    let last = stderr.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("(the store is file because secret-service is not here: ")
            && last.ends_with(')'),
        "{stderr}"
    );
}

#[test]
fn the_passphrase_is_asked_twice_for_a_new_file_and_once_after() {
    let test = project(&[("TOKEN", "acme-api", "CI Bot")]);
    let bin = crate::support::BIN;
    let (transcript, code) = on_terminal(
        &test,
        &format!("{bin} set TOKEN"),
        &[
            ("TOKEN (acme-api / CI Bot): ", "typed value"),
            ("New passphrase for ", "one"),
            ("The same passphrase again: ", "two"),
        ],
    );
    assert_eq!(code, 125, "{transcript}");
    assert!(
        transcript.contains("the two passphrases differ"),
        "{transcript}"
    );
    assert!(!store_file(&test).exists());

    let (transcript, code) = on_terminal(
        &test,
        &format!("{bin} set TOKEN"),
        &[
            ("TOKEN (acme-api / CI Bot): ", "typed value"),
            ("New passphrase for ", PASSPHRASE),
            ("The same passphrase again: ", PASSPHRASE),
        ],
    );
    assert_eq!(code, 0, "{transcript}");
    assert!(!transcript.contains(PASSPHRASE), "echoed: {transcript}");

    let (transcript, code) = on_terminal(
        &test,
        &format!("{bin} get TOKEN"),
        &[(
            &format!("Passphrase for {}: ", store_file(&test).display()),
            PASSPHRASE,
        )],
    );
    assert_eq!(code, 0, "{transcript}");
    assert!(transcript.ends_with("typed value\r\n"), "{transcript}");
    assert_eq!(
        transcript.matches("Passphrase for").count(),
        1,
        "{transcript}"
    );
}

#[test]
fn a_piped_value_still_gets_its_passphrase_asked_on_the_terminal() {
    // `printf %s "$T" | with-secrets set NAME`, typed at a terminal: stdin
    // is the pipe, and the passphrase is asked on the controlling terminal.
    let test = project(&[("TOKEN", "acme-api", "CI Bot")]);
    let bin = crate::support::BIN;
    let (transcript, code) = on_terminal(
        &test,
        &format!("printf %s 'piped value' | {bin} set TOKEN"),
        &[
            ("New passphrase for ", PASSPHRASE),
            ("The same passphrase again: ", PASSPHRASE),
        ],
    );
    assert_eq!(code, 0, "{transcript}");
    assert!(!transcript.contains(PASSPHRASE), "echoed: {transcript}");
    let test = test.env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    assert_eq!(get(&test, "TOKEN"), "piped value");
    // And a run whose stdin is not the terminal asks there too.
    let (transcript, code) = on_terminal(
        &test.env("WITH_SECRETS_PASSPHRASE", ""),
        &format!("{bin} -- sh -c 'printf \"<%s>\" \"$TOKEN\"' </dev/null"),
        &[("Passphrase for ", PASSPHRASE)],
    );
    assert_eq!(code, 0, "{transcript}");
    assert!(transcript.contains("<piped value>"), "{transcript}");
}

/// What a first write says when the file does not exist yet, and nobody
/// can be asked for the passphrase that will encrypt it.
fn says_not_created_yet(run: &crate::support::Run, test: &Test) {
    run.expect_code(125)
        .stderr_has(&format!(
            "{} does not exist yet, and there is no terminal to ask for the new passphrase \
             that will encrypt it\n  create it without a terminal: set WITH_SECRETS_PASSPHRASE \
             to a new passphrase and run this again (or run this on a terminal)",
            store_file(test).display()
        ))
        .stderr_lacks("is encrypted");
}

#[test]
fn a_first_write_with_no_terminal_says_the_file_does_not_exist_yet() {
    let test = project(&[("TOKEN", "acme-api", "CI Bot")]);
    let run = test.run_input(VALUE, ["set", "TOKEN"]);
    says_not_created_yet(&run, &test);
    assert!(!store_file(&test).exists());
    // The hint, followed: the same command with the variable set.
    let test = test.env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    set(&test, "TOKEN", VALUE);
    assert_eq!(get(&test, "TOKEN"), VALUE);
}

#[test]
fn a_profile_whose_store_is_file_says_the_file_does_not_exist_yet() {
    let test = Test::new().manifest(
        "[secrets]\n\
         TOKEN = { service = \"acme-api\", username = \"ci\" }\n\
         [profiles.ci]\n\
         store = \"file\"\n",
    );
    let data = test.path().join("data");
    let test = test.env("XDG_DATA_HOME", data);
    let run = test.run_input(VALUE, ["--profile", "ci", "set", "TOKEN"]);
    says_not_created_yet(&run, &test);
    let test = test.env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    test.run_input(VALUE, ["--profile", "ci", "set", "TOKEN"])
        .success();
    test.run(["--profile", "ci", "get", "TOKEN"])
        .success()
        .stdout_is(VALUE);
}

#[cfg(target_os = "linux")]
#[test]
fn unlock_with_no_file_and_no_terminal_says_the_file_does_not_exist_yet() {
    use crate::keyutils::{in_session, shell, with_secrets};
    let test = project(&[("TOKEN", "acme-api", "CI Bot")]);
    let runs = in_session(
        &test,
        &[
            with_secrets(&["unlock"]),
            shell(&format!(
                "WITH_SECRETS_PASSPHRASE={} \"$BIN\" unlock",
                shell_words::quote(PASSPHRASE)
            )),
        ],
    );
    says_not_created_yet(&runs[0], &test);
    runs[1].success().stderr_has("with-secrets: unlocked ");
    assert!(store_file(&test).exists());
}
