//! `with-secrets unlock` and `lock`: the file store's key kept in the kernel's
//! session and user keyrings. Each test runs its steps in one `keyctl
//! session -` of its own inside a user namespace of its own (see
//! tests/keyutils.rs), so none touches the keyrings of the person running
//! them. Those with another user map the real uids into that namespace (see
//! `run_in_mapped_session` in tests/keyutils.rs).

#![cfg(target_os = "linux")]

use std::path::PathBuf;

use base64::Engine as _;

use crate::file_store::{PASSPHRASE, age_decrypt, item, items, on_terminal};
use crate::keyutils::{
    Step, as_nobody, blocked, in_session, in_session_with, like_a_login, readable_by_all,
    run_in_mapped_session, shell, with_secrets,
};
use crate::support::{Run, Test};

/// A project whose file store is in its own XDG_DATA_HOME, with no
/// passphrase in its environment: each step that needs one says so.
fn project() -> Test {
    let test = Test::new().manifest(
        "[secrets]\n\
         TOKEN = { service = \"acme-api\", username = \"ci\" }\n\
         OTHER = { service = \"acme-api\", username = \"other\", optional = true }\n",
    );
    let data = test.path().join("data");
    test.env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_STORE", "file")
}

fn store_file(test: &Test) -> PathBuf {
    test.path().join("data/with-secrets/secrets.age")
}

/// with-secrets with `args` and the passphrase in WITH_SECRETS_PASSPHRASE.
fn with_passphrase(passphrase: &str, args: &[&str]) -> Step {
    shell(&format!(
        "WITH_SECRETS_PASSPHRASE={} \"$BIN\" {}",
        shell_words::quote(passphrase),
        shell_words::join(args)
    ))
}

/// A run of `sh -c` that prints TOKEN, with no passphrase and no terminal.
fn print_token() -> Step {
    with_secrets(&["--", "sh", "-c", "printf '[%s]' \"$TOKEN\""])
}

/// Stores TOKEN with the passphrase, making the file.
fn stored() -> Step {
    with_passphrase(PASSPHRASE, &["set", "TOKEN"]).input("first ✓")
}

const NO_PASSPHRASE: &str = "is encrypted, and there is no terminal to ask for its password";

#[test]
fn unlock_then_runs_set_get_check_env_and_import_ask_no_passphrase() {
    let test = project().file(
        "data/python_keyring/keyring_pass.cfg",
        // keyrings.alt's plain-text file; base64 of "imported".
        "[acme_2Dapi]\nother = \n\taW1wb3J0ZWQ=\n\n",
    );
    let runs = in_session(
        &test,
        &[
            stored(),
            print_token(),
            with_passphrase(PASSPHRASE, &["unlock", "--for", "2h"]),
            shell("\"$BIN\" -v -- sh -c 'printf \"[%s]\" \"$TOKEN\"'"),
            with_secrets(&["get", "TOKEN"]),
            with_secrets(&["check"]),
            with_secrets(&["import", "--from", "keyrings-alt"]),
            with_secrets(&["env", "--format", "dotenv"]),
            with_secrets(&["doctor"]),
            with_secrets(&["set", "TOKEN"]).input("second ✓"),
            print_token(),
        ],
    );
    runs[0].success();
    // Locked, with no terminal: the run cannot ask.
    runs[1].expect_code(125).stderr_has(NO_PASSPHRASE);
    runs[2]
        .success()
        .stderr_has("with-secrets: unlocked ")
        .stderr_has(" for 2 h, until ")
        .stderr_has("; your runs in this login session ask no passphrase")
        .never_shows(PASSPHRASE);
    runs[3]
        .success()
        .stdout_is("[first ✓]")
        .stderr_has("file store unlocked until ")
        .stderr_has("(in 2 h), so no passphrase is asked");
    runs[4].success().stdout_is("first ✓");
    runs[5].success();
    runs[6].success();
    assert!(runs[6].stdout().contains("copied"), "{}", runs[6].stdout());
    runs[7].success();
    assert_eq!(
        runs[7].stdout(),
        "TOKEN='first ✓'\nOTHER=imported\n",
        "{}",
        runs[7].stdout()
    );
    runs[8].success();
    assert!(
        runs[8]
            .stdout()
            .contains("  unlock:         unlocked until "),
        "{}",
        runs[8].stdout()
    );
    runs[9].success();
    runs[10].success().stdout_is("[second ✓]");
}

#[test]
fn a_set_while_unlocked_is_opened_by_the_passphrase_in_a_fresh_session_and_by_age() {
    let test = project();
    let runs = in_session(
        &test,
        &[
            stored(),
            with_passphrase(PASSPHRASE, &["unlock"]),
            with_secrets(&["set", "TOKEN"]).input("while unlocked ✓"),
            with_secrets(&["set", "OTHER"]).input("and another"),
        ],
    );
    for run in &runs {
        run.success();
    }
    // Another session (another user namespace and session keyring): only
    // the passphrase opens the file.
    let runs = in_session(
        &test,
        &[
            print_token(),
            with_passphrase(PASSPHRASE, &["get", "TOKEN"]),
        ],
    );
    runs[0].expect_code(125).stderr_has(NO_PASSPHRASE);
    runs[1].success().stdout_is("while unlocked ✓");
    // A standard age file, which age -d opens with the passphrase.
    let document = age_decrypt(&test, &store_file(&test));
    assert_eq!(
        items(&document),
        vec![
            item("acme-api", "ci", "while unlocked ✓"),
            item("acme-api", "other", "and another"),
        ]
    );
}

#[test]
fn lock_forgets_at_once() {
    let test = project();
    let runs = in_session(
        &test,
        &[
            stored(),
            with_passphrase(PASSPHRASE, &["unlock"]),
            print_token(),
            with_secrets(&["lock"]),
            print_token(),
            with_secrets(&["doctor"]),
            with_secrets(&["lock"]),
        ],
    );
    runs[2].success().stdout_is("[first ✓]");
    runs[3].success().stderr_has(
        "locked the file store and ended the session cache: runs ask for its passphrase, \
             and read every value from its store, again",
    );
    runs[4].expect_code(125).stderr_has(NO_PASSPHRASE);
    assert!(
        runs[5].stdout().contains("  unlock:         locked: "),
        "{}",
        runs[5].stdout()
    );
    runs[6]
        .success()
        .stderr_has("the file store was not unlocked in this login session");
}

#[test]
fn an_unlock_ends_when_its_time_is_up() {
    let test = project();
    // Polls until the run fails, for at most 60 s, then prints the attempts
    // and the failing run's stderr.
    let wait = format!(
        "start=$(date +%s); tries=0; \
         while \"$BIN\" get TOKEN >/dev/null 2>&1; do \
           tries=$((tries + 1)); \
           [ $(($(date +%s) - start)) -lt 60 ] || {{ echo 'still unlocked after 60 s'; exit 1; }}; \
         done; echo \"unlocked for $tries runs\"; \"$BIN\" get TOKEN; echo \"[exit $?]\"; \
         {}",
        "\"$BIN\" doctor | grep unlock:"
    );
    let runs = in_session(
        &test,
        &[
            stored(),
            with_passphrase(PASSPHRASE, &["unlock", "--for", "3s"]),
            print_token(),
            shell(&wait),
        ],
    );
    runs[1].success().stderr_has(" for 3 s, until ");
    runs[2].success().stdout_is("[first ✓]");
    let out = runs[3].stdout();
    assert!(out.contains("[exit 125]"), "{out}{}", runs[3].stderr());
    assert!(
        runs[3].stderr().contains(NO_PASSPHRASE),
        "{}",
        runs[3].stderr()
    );
    assert!(out.contains("unlock:         locked: "), "{out}");
}

#[test]
fn another_session_is_not_unlocked_by_this_one() {
    let test = project();
    let runs = in_session(
        &test,
        &[
            stored(),
            with_passphrase(PASSPHRASE, &["unlock"]),
            // A new session keyring, as another SSH login would have.
            shell("keyctl session - \"$BIN\" get TOKEN"),
            // This one is still unlocked.
            print_token(),
            // An unlock in another session keeps a pad of its own in the
            // same user keyring, and leaves this session's alone.
            shell(&format!(
                "WITH_SECRETS_PASSPHRASE={} keyctl session - \"$BIN\" unlock",
                shell_words::quote(PASSPHRASE)
            )),
            print_token(),
            // A write in another session with the passphrase makes a new
            // file key, which locks this session.
            shell(&format!(
                "echo other | WITH_SECRETS_PASSPHRASE={} keyctl session - \"$BIN\" set OTHER",
                shell_words::quote(PASSPHRASE)
            )),
            print_token(),
        ],
    );
    runs[1].success();
    runs[2].expect_code(125).stderr_has(NO_PASSPHRASE);
    runs[3].success().stdout_is("[first ✓]");
    runs[4].success();
    runs[5].success().stdout_is("[first ✓]");
    runs[6].success();
    runs[7].expect_code(125).stderr_has(NO_PASSPHRASE);
}

#[test]
fn a_wrong_passphrase_at_unlock_is_an_error_and_keeps_nothing() {
    let test = project();
    let runs = in_session(
        &test,
        &[
            stored(),
            with_passphrase("not the passphrase", &["unlock"]),
            shell("keyctl rlist @s; echo \"[$?]\""),
            print_token(),
        ],
    );
    runs[1]
        .expect_code(125)
        .stderr_has("the password does not open")
        .never_shows("not the passphrase");
    // The session keyring is empty: rlist prints nothing.
    assert_eq!(runs[2].stdout().trim(), "[0]", "{}", runs[2].stdout());
    runs[3].expect_code(125).stderr_has(NO_PASSPHRASE);
}

#[test]
fn an_unlock_is_for_at_most_a_week() {
    let test = project();
    test.run(["unlock", "--for", "8d"])
        .expect_code(125)
        .stderr_has("`8d` is longer than 7d");
    test.run(["unlock", "--for", "1.5h"])
        .expect_code(125)
        .stderr_has("`1.5h` is not a duration: write a number and a unit (s, m, h or d)");
    assert!(!store_file(&test).exists(), "nothing was made");
}

#[test]
fn unlock_with_a_new_file_makes_it_and_asks_the_passphrase_twice() {
    let test = project();
    let line = "unshare --user --map-root-user keyctl session - sh -c \
                '\"$0\" unlock && \"$0\" set TOKEN < /dev/null; echo \"[exit $?]\"'";
    let line = format!("{line} {}", shell_words::quote(crate::support::BIN));
    let (transcript, code) = on_terminal(
        &test,
        &line,
        &[
            ("New passphrase for", PASSPHRASE),
            ("The same passphrase again", PASSPHRASE),
        ],
    );
    assert_eq!(code, 0, "{transcript}");
    assert!(
        transcript.contains("with-secrets: unlocked "),
        "{transcript}"
    );
    // No tip to unlock after the unlock itself.
    assert!(!transcript.contains("tip:"), "{transcript}");
    assert!(store_file(&test).exists());
}

#[test]
fn a_run_that_prompted_suggests_unlock_unless_quiet() {
    let test = project();
    in_session(&test, &[stored()])[0].success();
    let run = |flags: &str| {
        let line = format!(
            "unshare --user --map-root-user keyctl session - {} {flags} get TOKEN",
            shell_words::quote(crate::support::BIN)
        );
        let (transcript, code) = on_terminal(&test, &line, &[("Passphrase for", PASSPHRASE)]);
        assert_eq!(code, 0, "{transcript}");
        transcript
    };
    let transcript = run("");
    assert!(
        transcript.contains(
            "with-secrets: tip: `with-secrets unlock` asks for this passphrase once for this \
             login session (for 10 h unless --for says otherwise), and runs after it ask none"
        ),
        "{transcript}"
    );
    assert!(transcript.contains("first ✓"), "{transcript}");
    let quiet = run("-q");
    assert!(!quiet.contains("tip:"), "{quiet}");
    assert!(quiet.contains("first ✓"), "{quiet}");
}

#[test]
fn where_the_kernel_keyring_is_blocked_unlock_says_so_and_runs_keep_asking() {
    let test = project().env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    test.run_input("first ✓", ["set", "TOKEN"]).success();
    blocked(&test, libc::EPERM, "", &["unlock"])
        .expect_code(125)
        .stderr_has("the kernel keyring cannot be used here, so the file store cannot be unlocked")
        .stderr_has("seccomp")
        .stderr_has("runs ask for the passphrase (or read WITH_SECRETS_PASSPHRASE) as before");
    blocked(&test, libc::EPERM, "", &["lock"])
        .expect_code(125)
        .stderr_has("the kernel keyring cannot be used here");
    // Runs work as before: with the passphrase.
    blocked(&test, libc::EPERM, "", &["get", "TOKEN"])
        .success()
        .stdout_is("first ✓");
    let doctor: Run = blocked(&test, libc::EPERM, "", &["doctor"]);
    doctor.success();
    assert!(
        doctor
            .stdout()
            .contains("  unlock:         locked, and cannot be used here: the kernel keyring"),
        "{}",
        doctor.stdout()
    );
}

#[test]
fn nothing_in_any_keyring_is_the_passphrase() {
    let test = project();
    // Every key this session can reach, from the session keyring and the
    // user keyring, as base64 of its payload, one per line.
    let dump = "for ring in @s @u; do for key in $(keyctl rlist $ring); do \
                keyctl pipe $key | base64 -w0; echo; done; done";
    let runs = in_session(
        &test,
        &[
            stored(),
            with_passphrase(PASSPHRASE, &["unlock"]),
            with_secrets(&["set", "OTHER"]).input("x"),
            shell(dump),
            // This session's keys, by ID as /proc/keys writes them, then
            // /proc/keys, which lists every key this user may view.
            shell(
                "for key in $(keyctl rlist @s); do printf '%08x\\n' $key; done; echo; cat /proc/keys",
            ),
        ],
    );
    runs[1].success();
    runs[2].success();
    let payloads: Vec<Vec<u8>> = runs[3]
        .stdout()
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            base64::engine::general_purpose::STANDARD
                .decode(line)
                .unwrap()
        })
        .collect();
    // Non-vacuous: the unlock's key is there, 16 bytes of file key and 8 of
    // its end.
    assert!(
        payloads.iter().any(|payload| payload.len() == 24),
        "no kept key found: {payloads:?}"
    );
    for payload in &payloads {
        assert!(
            !payload
                .windows(PASSPHRASE.len())
                .any(|window| window == PASSPHRASE.as_bytes()),
            "the passphrase is in a key"
        );
    }
    // And the kernel will end it: /proc/keys shows its timeout, not "perm".
    let out = runs[4].stdout();
    let (ours, keys) = out.split_once("\n\n").expect("IDs, then /proc/keys");
    let line = keys
        .lines()
        .find(|line| {
            line.contains("with-secrets:file:") && ours.lines().any(|id| line.starts_with(id))
        })
        .unwrap_or_else(|| panic!("no kept key of this session in /proc/keys:\n{out}"));
    // ID, flags, usage, then the time left: 10 h here, as `unlock` says.
    let timeout = line.split_whitespace().nth(3).unwrap_or_default();
    assert!(timeout == "10h" || timeout == "9h", "{line}");
}

#[test]
fn another_user_started_from_the_unlocked_session_gets_no_file_key() {
    let test = project();
    let tools = ["setpriv", "runuser", "su", "sudo"];
    let mut steps = vec![
        like_a_login(),
        stored(),
        with_passphrase(PASSPHRASE, &["unlock"]),
        readable_by_all(),
    ];
    // Each run as nobody also reads the session keyring's half: proof that
    // the tool kept the session keyring, so that only the pad stopped it.
    let run_and_read_the_half = shell_words::quote(
        "\"$BIN\" -v get TOKEN; status=$?; for key in $(keyctl rlist @s); do \
         keyctl rdescribe $key | grep -q ';with-secrets:file:' && \
         echo \"masked=$(keyctl pipe $key | wc -c)\" >&2; done; exit $status",
    )
    .into_owned();
    for tool in tools {
        steps.push(as_nobody(tool, &format!("sh -c {run_and_read_the_half}")));
    }
    steps.extend([
        // With the passphrase, nobody opens the file: the file is readable,
        // so the kernel keyring is what stopped the runs above.
        as_nobody(
            "setpriv",
            &format!(
                "env WITH_SECRETS_PASSPHRASE={} \"$BIN\" get TOKEN",
                shell_words::quote(PASSPHRASE)
            ),
        ),
        // Raw keyctl as nobody: the session keyring's half is readable, the
        // pad in root's user keyring (linked into @s) is not.
        shell(
            "ours() { for key in $(keyctl rlist $1); do \
               keyctl rdescribe $key | grep -q \";$2\" && echo $key; done; }; \
             masked=$(ours @s with-secrets:file:); pad=$(ours @u with-secrets:file-pad:); \
             nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups \"$@\"; }; \
             echo \"masked=$(nobody keyctl pipe $masked | wc -c)\"; \
             echo \"pad=$(nobody keyctl pipe $pad | wc -c)\"; \
             echo \"own pad=$(keyctl pipe $pad | wc -c)\"",
        ),
        // The same uid in the same session: no passphrase.
        print_token(),
    ]);
    let runs = in_session_with(&test, &steps, run_in_mapped_session);
    let after = &runs[4..];
    for (tool, run) in tools.iter().zip(after) {
        assert_ne!(
            run.stdout(),
            "no sudo\n",
            "sudo is not installed: scripts/install-deps installs it"
        );
        run.expect_code(125)
            .stderr_has(NO_PASSPHRASE)
            .stderr_has("file store locked: you have not unlocked it in this login session")
            .never_shows("first ✓");
        assert!(
            run.stderr().contains("masked=24\n"),
            "{tool} did not keep the session keyring: {}",
            run.stderr()
        );
    }
    let after = &after[tools.len()..];
    after[0].success().stdout_is("first ✓");
    assert_eq!(
        after[1].stdout(),
        "masked=24\npad=0\nown pad=16\n",
        "{}",
        after[1].stderr()
    );
    after[2].success().stdout_is("[first ✓]");
}

#[test]
fn root_reads_an_unlocked_store_only_by_taking_its_users_uid() {
    let test = project();
    let runs = in_session_with(
        &test,
        &[
            like_a_login(),
            stored(),
            readable_by_all(),
            as_nobody(
                "setpriv",
                &format!(
                    "env WITH_SECRETS_PASSPHRASE={} \"$BIN\" unlock",
                    shell_words::quote(PASSPHRASE)
                ),
            ),
            with_secrets(&["get", "TOKEN"]),
            as_nobody("setpriv", "\"$BIN\" get TOKEN"),
        ],
        run_in_mapped_session,
    );
    runs[3].success().stderr_has("with-secrets: unlocked ");
    runs[4].expect_code(125).stderr_has(NO_PASSPHRASE);
    runs[5].success().stdout_is("first ✓");
}

#[test]
fn with_one_half_gone_the_store_is_locked_and_lock_removes_both() {
    let test = project();
    // Each half by its description, the session's then the user keyring's.
    let halves = "for ring in @s @u; do for key in $(keyctl rlist $ring); do \
                  keyctl rdescribe $key | grep -o ';with-secrets:file[^:]*:'; done; done";
    let invalidate_pad = "for key in $(keyctl rlist @u); do \
                          keyctl rdescribe $key | grep -q ';with-secrets:file-pad:' \
                          && keyctl invalidate $key; done; true";
    let runs = in_session(
        &test,
        &[
            stored(),
            with_passphrase(PASSPHRASE, &["unlock"]),
            shell(halves),
            shell(invalidate_pad),
            print_token(),
            with_secrets(&["doctor"]),
            with_passphrase(PASSPHRASE, &["unlock"]),
            with_secrets(&["lock"]),
            shell(halves),
            print_token(),
        ],
    );
    runs[1].success();
    assert_eq!(
        runs[2].stdout(),
        ";with-secrets:file:\n;with-secrets:file-pad:\n"
    );
    runs[3].success();
    runs[4].expect_code(125).stderr_has(NO_PASSPHRASE);
    assert!(
        runs[5].stdout().contains("  unlock:         locked: "),
        "{}",
        runs[5].stdout()
    );
    runs[7].success().stderr_has(
        "locked the file store and ended the session cache: runs ask for its passphrase, \
             and read every value from its store, again",
    );
    assert_eq!(runs[8].stdout(), "", "lock left a half behind");
    runs[9].expect_code(125).stderr_has(NO_PASSPHRASE);
}

#[test]
fn a_command_run_while_unlocked_can_use_the_whole_store_as_you_can() {
    // The run's manifest names TOKEN only; the project's names OTHER too.
    let test = project().file(
        "run.toml",
        "[secrets]\nTOKEN = { service = \"acme-api\", username = \"ci\" }\n",
    );
    let command = "printf '[%s][%s]' \"$TOKEN\" \"${OTHER-not given}\"; \"$BIN\" get OTHER";
    let runs = in_session(
        &test,
        &[
            stored(),
            with_passphrase(PASSPHRASE, &["set", "OTHER"]).input("not in the run"),
            with_passphrase(PASSPHRASE, &["unlock"]),
            with_secrets(&["-m", "run.toml", "--", "sh", "-c", command]),
        ],
    );
    runs[2].success();
    // Unlocked, a command asks no passphrase for a value its run did not
    // give it: with-secrets runs it in this session, as the same user.
    runs[3]
        .success()
        .stdout_is("[first ✓][not given]not in the run");
}
