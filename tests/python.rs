//! Interop with Python's `keyring` (Secret Service backend) and keyrings.alt's
//! files, driving the real Python packages from the venv scripts/test makes.

use crate::support::{SecretService, Test, manifest_for};

const SERVICE: &str = "Ümlaut Service";
const USERNAME: &str = "Ada Lovelace";
const VALUE: &str = "päss wörd ✓ 🎉 \"q\" $x";

fn project(service: &SecretService) -> Test {
    Test::new()
        .keyring(service)
        .manifest(&manifest_for(&[("TOKEN", SERVICE, USERNAME)]))
}

fn seen_by_with_secrets(test: &Test) -> String {
    let run = test.run(["--", "sh", "-c", "printf %s \"$TOKEN\""]);
    run.success();
    run.stdout()
}

fn seen_by_python(test: &Test) -> String {
    let code = format!(
        "import keyring, sys; sys.stdout.write(keyring.get_password({SERVICE:?}, {USERNAME:?}))"
    );
    let output = test.python(&["-c", &code], "");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn python_keyring_set_is_read_by_with_secrets() {
    let service = SecretService::start();
    let test = project(&service);
    test.keyring_cli(&["set", SERVICE, USERNAME], VALUE);
    assert_eq!(seen_by_with_secrets(&test), VALUE);
}

#[test]
fn with_secrets_set_is_read_by_the_python_cli_and_api() {
    let service = SecretService::start();
    let test = project(&service);
    test.run_input(VALUE, ["set", "TOKEN"]).success();
    assert_eq!(
        test.keyring_cli(&["get", SERVICE, USERNAME], ""),
        format!("{VALUE}\n")
    );
    let test = test.env(
        "PYTHON_KEYRING_BACKEND",
        "keyring.backends.SecretService.Keyring",
    );
    assert_eq!(seen_by_python(&test), VALUE);
}

#[test]
fn updates_by_either_tool_leave_one_item_that_both_read() {
    let service = SecretService::start();
    let test = project(&service).env(
        "PYTHON_KEYRING_BACKEND",
        "keyring.backends.SecretService.Keyring",
    );
    let steps: [(&str, &str); 5] = [
        ("ours", "one"),
        ("theirs", "two ✓"),
        ("ours", "three"),
        ("theirs", "four"),
        ("theirs", "five"),
    ];
    for (who, value) in steps {
        match who {
            "ours" => {
                test.run_input(value, ["set", "TOKEN"]).success();
            }
            _ => {
                test.keyring_cli(&["set", SERVICE, USERNAME], value);
            }
        }
        let items = service.items(SERVICE, USERNAME);
        assert_eq!(items.len(), 1, "after {who} set {value:?}: {items:?}");
        assert_eq!(seen_by_with_secrets(&test), value, "after {who}");
        assert_eq!(seen_by_python(&test), value, "after {who}");
    }
    // Python created the item in step 2; our updates kept its label.
    assert_eq!(
        service.items(SERVICE, USERNAME)[0].label,
        format!("Password for '{USERNAME}' on '{SERVICE}'")
    );
}

#[test]
fn usernames_keep_their_case() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(&manifest_for(&[
        ("LOWER", "svc", "ci bot"),
        ("UPPER", "svc", "CI Bot"),
    ]));
    test.keyring_cli(&["set", "svc", "ci bot"], "lower");
    test.keyring_cli(&["set", "svc", "CI Bot"], "upper");
    test.run(["--", "sh", "-c", "printf '%s %s' \"$LOWER\" \"$UPPER\""])
        .success()
        .stdout_is("lower upper");
}

/// A project whose keyrings.alt files live in its own XDG_DATA_HOME.
fn alt_project() -> Test {
    let test = Test::new().manifest(
        "[secrets]\nTOKEN = { service = \"Ümlaut Service\", username = \"Ada Lovelace\" }\nLONG = { service = \"acme-api\", username = \"CI Bot\" }\nGONE = { service = \"acme-api\", username = \"gone\", optional = true }\n",
    );
    let data = test.path().join("data");
    test.env("XDG_DATA_HOME", data)
}

const LONG: &str =
    "a value long enough that its base64 wraps over several continuation lines in the file ✓✓✓";

fn write_alt(test: &Test, backend: &str) {
    let code = format!(
        r#"
import getpass
getpass.getpass = lambda prompt="": "alt password"
from keyrings.alt.file import {backend}
k = {backend}()
k.set_password({SERVICE:?}, {USERNAME:?}, {VALUE:?})
k.set_password("acme-api", "CI Bot", {LONG:?})
"#
    );
    test.python(&["-c", &code], "");
}

#[test]
fn the_plaintext_file_of_keyrings_alt_is_read_with_one_warning() {
    let test = alt_project();
    write_alt(&test, "PlaintextKeyring");
    let file = test.path().join("data/python_keyring/keyring_pass.cfg");
    assert!(
        std::fs::read_to_string(&file).unwrap().contains("\n\t"),
        "values wrap"
    );
    let run = test.run([
        "--store",
        "keyrings-alt",
        "--",
        "sh",
        "-c",
        "printf '%s|%s|%s' \"$TOKEN\" \"$LONG\" \"${GONE-unset}\"",
    ]);
    run.success().stdout_is(&format!("{VALUE}|{LONG}|unset"));
    assert_eq!(
        run.stderr().matches("warning").count(),
        1,
        "{}",
        run.stderr()
    );
    run.stderr_has("keyring_pass.cfg keeps secrets in plain text")
        .stderr_has("with-secrets import --from keyrings-alt");
    test.env("WITH_SECRETS_STORE", "keyrings-alt")
        .run(["get", "LONG"])
        .success()
        .stdout_is(LONG);
}

#[test]
fn the_encrypted_file_of_keyrings_alt_is_read_with_its_password() {
    let test = alt_project();
    write_alt(&test, "EncryptedKeyring");
    let args = [
        "--store",
        "keyrings-alt",
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"$TOKEN\" \"$LONG\"",
    ];
    test.run(args)
        .expect_code(125)
        .stderr_has(
            "crypted_pass.cfg is encrypted, and there is no terminal to ask for its password",
        )
        .stderr_has("set WITH_SECRETS_KEYRINGS_ALT_PASSWORD");
    let test = test.env("WITH_SECRETS_KEYRINGS_ALT_PASSWORD", "wrong");
    test.run(args)
        .expect_code(125)
        .stderr_has("the password does not open ");
    // A wrong password is a store that fails: same-named variables in the
    // environment do not stand in for it.
    let test = test.env("TOKEN", "stale-token").env("LONG", "stale-long");
    let run = test.run(args);
    run.expect_code(125)
        .stderr_has("the password does not open ")
        .never_shows("stale-token");
    assert!(run.stdout().is_empty(), "{}", run.stdout());
    let test = test.env("WITH_SECRETS_KEYRINGS_ALT_PASSWORD", "alt password");
    let run = test.run(args);
    run.success().stdout_is(&format!("{VALUE}|{LONG}"));
    assert!(!run.stderr().contains("plain text"), "{}", run.stderr());
}

#[test]
fn keyrings_alt_is_read_only() {
    let test = alt_project();
    test.run_input("x", ["--store", "keyrings-alt", "set", "TOKEN"])
        .expect_code(125)
        .stderr_has(
            "keyrings-alt is read-only, so `set` cannot store in it; copy what it has into a \
             writable store, store the rest there, then run with that store (--store auto):\n  \
             with-secrets --store auto import --from keyrings-alt\n  \
             with-secrets --store auto set TOKEN\n",
        )
        .stderr_lacks("set NAME");
    // The line, run as printed, stores TOKEN where `--store auto` reads it.
    let test = test.env("WITH_SECRETS_PASSPHRASE", "a passphrase");
    test.run_input("x", ["--store", "auto", "set", "TOKEN"])
        .success();
    test.run(["--store", "auto", "get", "TOKEN"])
        .success()
        .stdout_is("x");
}

#[test]
fn delete_from_keyrings_alt_points_at_a_line_that_works() {
    let test = alt_project();
    write_alt(&test, "PlaintextKeyring");
    test.run(["--store", "keyrings-alt", "delete", "TOKEN"])
        .expect_code(125)
        .stderr_has(
            "keyrings-alt is read-only: with-secrets only reads it, and changes nothing in it\n  \
             to move off it, copy what it has into a writable store: \
             with-secrets --store auto import --from keyrings-alt\n",
        )
        .stderr_lacks("set NAME");
    // The line, run as printed, copies the values where --store auto reads them.
    let test = test.env("WITH_SECRETS_PASSPHRASE", "a passphrase");
    test.run(["--store", "auto", "import", "--from", "keyrings-alt"])
        .success();
    test.run(["--store", "auto", "get", "TOKEN"])
        .success()
        .stdout_is(VALUE);
}

#[test]
fn import_copies_into_the_keyring_and_leaves_the_file() {
    let service = SecretService::start();
    let test = alt_project().keyring(&service).env(
        "PYTHON_KEYRING_BACKEND",
        "keyring.backends.SecretService.Keyring",
    );
    write_alt(&test, "PlaintextKeyring");
    let run = test.run(["import", "--from", "keyrings-alt"]);
    run.success()
        .stdout_is("copied     TOKEN  Ümlaut Service / Ada Lovelace\ncopied     LONG   acme-api / CI Bot\nnot found  GONE   acme-api / gone\n")
        .stderr_has("copied 2 of 3 entries from keyrings-alt into secret-service")
        .stderr_lacks("warning")
        .stderr_has("keyring_pass.cfg holds 2 entries; once `with-secrets check` shows yours found")
        .stderr_has("delete it: rm ")
        .never_shows(VALUE)
        .never_shows(LONG);
    assert!(
        test.path()
            .join("data/python_keyring/keyring_pass.cfg")
            .exists()
    );
    // Now in the Secret Service, where Python's keyring finds it too.
    assert_eq!(seen_by_python(&test), VALUE);
    test.run(["check"]).success().stdout_is(
        "TOKEN  Ümlaut Service  Ada Lovelace  found\nLONG   acme-api        CI Bot        found\nGONE   acme-api        gone          missing (optional)\n",
    );
    assert_eq!(service.items("acme-api", "CI Bot").len(), 1);
}

#[test]
fn import_needs_two_different_stores() {
    alt_project()
        .run([
            "--store",
            "keyrings-alt",
            "import",
            "--from",
            "keyrings-alt",
        ])
        .expect_code(125)
        .stderr_has("--from and --store both name keyrings-alt");
}

#[test]
fn the_encrypted_file_password_is_asked_for_on_a_terminal() {
    let test = alt_project();
    write_alt(&test, "EncryptedKeyring");
    let transcript = test.on_terminal(
        "--store keyrings-alt get LONG",
        "Password for keyrings.alt's ",
        "alt password\r",
    );
    assert!(!transcript.contains("alt password"), "echoed: {transcript}");
    assert!(transcript.ends_with(&format!("{LONG}\r\n")), "{transcript}");
}
