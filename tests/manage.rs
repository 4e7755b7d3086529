//! set, get, delete, check and init against a real Secret Service.

use crate::support::keyring::Item;
use crate::support::{SecretService, Test, manifest_for};

fn project(service: &SecretService) -> Test {
    Test::new().keyring(service).manifest(
        "[defaults]\nservice = \"acme\"\n\n[secrets]\nAPI_TOKEN = { username = \"CI Bot\" }\nDB_URL = { username = \"db\", optional = true }\n",
    )
}

fn ours(label: &str) -> Item {
    Item {
        label: label.to_owned(),
        attributes: vec![
            ("application".into(), "Python keyring library".into()),
            ("service".into(), "acme".into()),
            ("username".into(), "CI Bot".into()),
        ],
    }
}

#[test]
fn set_then_get_round_trips_exactly() {
    let service = SecretService::start();
    let test = project(&service);
    for (input, stored) in [
        ("plain\n", "plain"),
        ("two\nlines\n\n", "two\nlines\n"),
        ("crlf\r\n", "crlf"),
        ("no newline", "no newline"),
        (
            "ünïcødé ✓ $HOME `x` 'q' \"d\"",
            "ünïcødé ✓ $HOME `x` 'q' \"d\"",
        ),
    ] {
        let run = test.run_input(input, ["set", "API_TOKEN"]);
        run.success();
        assert!(
            run.stdout().is_empty() && run.stderr().is_empty(),
            "{run:?}"
        );
        test.run(["get", "API_TOKEN"]).success().stdout_is(stored);
        // C libsecret reads the same item: the value is stored, not mangled.
        let lookup =
            service.secret_tool(&["lookup", "service", "acme", "username", "CI Bot"], None);
        assert_eq!(String::from_utf8_lossy(&lookup.stdout), stored);
    }
}

#[test]
fn set_creates_one_labelled_item_and_updates_it_in_place() {
    let service = SecretService::start();
    let test = project(&service);
    test.run_input("one", ["set", "API_TOKEN"]).success();
    assert_eq!(
        service.items("acme", "CI Bot"),
        [ours("API_TOKEN (with-secrets: acme / CI Bot)")]
    );
    test.run_input("two", ["set", "API_TOKEN"]).success();
    assert_eq!(
        service.items("acme", "CI Bot"),
        [ours("API_TOKEN (with-secrets: acme / CI Bot)")]
    );
    test.run(["get", "API_TOKEN"]).success().stdout_is("two");
}

#[test]
fn set_updates_another_tools_item_and_keeps_its_label() {
    let service = SecretService::start();
    service.store_foreign("acme", "CI Bot", "Made by someone else", "old");
    let test = project(&service);
    test.run_input("new", ["set", "API_TOKEN"]).success();
    let items = service.items("acme", "CI Bot");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].label, "Made by someone else");
    test.run(["get", "API_TOKEN"]).success().stdout_is("new");
}

#[test]
fn set_collapses_duplicates_into_one_item() {
    let service = SecretService::start();
    service.store_foreign("acme", "CI Bot", "first", "a");
    // secret-tool replaces an item with identical attributes, so the second
    // one differs by an extra attribute, as items from other tools do.
    let output = service.secret_tool(
        &[
            "store", "--label", "second", "service", "acme", "username", "CI Bot", "extra", "1",
        ],
        Some("b"),
    );
    assert!(output.status.success());
    assert_eq!(service.items("acme", "CI Bot").len(), 2);
    let test = project(&service);
    test.run(["check"]).success().stdout_is(
        "API_TOKEN  acme  CI Bot  found (2 items match; using the most recently modified)\n\
         DB_URL     acme  db      missing (optional)\n",
    );
    test.run(["get", "API_TOKEN"]).success().stdout_is("b");
    test.run_input("c", ["set", "API_TOKEN"]).success();
    assert_eq!(service.items("acme", "CI Bot").len(), 1);
    test.run(["get", "API_TOKEN"]).success().stdout_is("c");
}

#[test]
fn set_refuses_a_name_that_is_not_in_the_manifest() {
    let service = SecretService::start();
    project(&service)
        .run_input("x", ["set", "NOPE"])
        .expect_code(125)
        .stderr_has("NOPE is not in ")
        .stderr_has("add it: NOPE = { service = \"...\", username = \"...\" }");
}

#[test]
fn get_of_a_missing_entry_says_how_to_store_it() {
    let service = SecretService::start();
    project(&service)
        .run(["get", "API_TOKEN"])
        .expect_code(125)
        .stderr_has(
            "API_TOKEN is not stored in secret-service (service \"acme\", username \"CI Bot\")",
        )
        .stderr_has("store it with: with-secrets set API_TOKEN");
}

#[test]
fn delete_removes_every_item_and_is_idempotent() {
    let service = SecretService::start();
    let test = project(&service);
    test.run_input("x", ["set", "API_TOKEN"]).success();
    let run = test.run(["delete", "API_TOKEN"]);
    run.success();
    assert!(run.stderr().is_empty(), "{}", run.stderr());
    assert!(service.items("acme", "CI Bot").is_empty());
    test.run(["delete", "API_TOKEN"])
        .success()
        .stderr_has("API_TOKEN was not stored in secret-service");
}

#[test]
fn check_lists_every_entry_without_values_and_fails_on_a_missing_one() {
    let service = SecretService::start();
    service.store_foreign("acme", "CI Bot", "t", "value-never-shown");
    let test = project(&service);
    test.run(["check"])
        .success()
        .never_shows("value-never-shown")
        .stdout_is("API_TOKEN  acme  CI Bot  found\nDB_URL     acme  db      missing (optional)\n");
    let strict = Test::new().keyring(&service).manifest(&manifest_for(&[
        ("A", "acme", "CI Bot"),
        ("B", "acme", "b"),
    ]));
    strict
        .run(["check"])
        .expect_code(1)
        .stdout_is("A  acme  CI Bot  found\nB  acme  b       missing: run with-secrets set B\n");
    strict
        .env("B", "from-ci")
        .run(["check"])
        .success()
        .stdout_is("A  acme  CI Bot  found\nB  acme  b       from environment\n");
}

#[test]
fn check_without_a_keyring_reports_the_store_and_uses_the_environment() {
    let test = Test::new()
        .manifest(&manifest_for(&[("A", "s", "a")]))
        .env("WITH_SECRETS_STORE", "secret-service");
    test.run(["check"])
        .expect_code(1)
        .stderr_has("with-secrets: secret-service: no D-Bus session bus");
    test.env("A", "x")
        .run(["check"])
        .success()
        .stdout_is("A  s  a  from environment\n");
}

#[test]
fn init_writes_a_starter_that_works_and_never_overwrites() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).cwd("My Project");
    test.run(["init", "API_TOKEN", "DB_URL"])
        .success()
        .stderr_has("store a value with: with-secrets set API_TOKEN");
    let text = std::fs::read_to_string(test.path().join("My Project/secrets.toml")).unwrap();
    assert!(text.contains("service = \"my-project\""), "{text}");
    assert!(
        text.contains("API_TOKEN = { username = \"api-token\" }"),
        "{text}"
    );
    test.run(["check"])
        .expect_code(1)
        .stdout_is("API_TOKEN  my-project  api-token  missing: run with-secrets set API_TOKEN\nDB_URL     my-project  db-url     missing: run with-secrets set DB_URL\n");
    test.run(["init"])
        .expect_code(125)
        .stderr_has("already exists");
    assert_eq!(
        std::fs::read_to_string(test.path().join("My Project/secrets.toml")).unwrap(),
        text
    );
    test.run(["init", "9BAD"])
        .expect_code(125)
        .stderr_has("`9BAD` is not a valid");
}

#[test]
fn init_at_an_explicit_path() {
    let test = Test::new();
    test.run(["-m", "conf/s.toml", "init"])
        .expect_code(125)
        .stderr_has("cannot write conf/s.toml: No such file or directory");
    std::fs::create_dir(test.path().join("conf")).unwrap();
    test.run(["-m", "conf/s.toml", "init"]).success();
    test.run(["-m", "conf/s.toml", "check"])
        .success()
        .stdout_is("");
}

#[test]
fn set_on_a_terminal_prompts_without_echo_and_get_adds_a_newline() {
    let service = SecretService::start();
    let test = project(&service);
    let transcript = test.on_terminal(
        "set API_TOKEN",
        "API_TOKEN (acme / CI Bot): ",
        "typed-value\r",
    );
    assert!(!transcript.contains("typed-value"), "echoed: {transcript}");
    assert!(
        transcript.contains("stored API_TOKEN in secret-service"),
        "{transcript}"
    );
    test.run(["get", "API_TOKEN"])
        .success()
        .stdout_is("typed-value");
    let transcript = test.on_terminal("get API_TOKEN", "", "");
    assert_eq!(transcript, "typed-value\r\n");
}

#[test]
fn of_several_items_the_most_recently_modified_wins() {
    let service = SecretService::start();
    service.store_foreign("acme", "CI Bot", "first", "old-a");
    let output = service.secret_tool(
        &[
            "store", "--label", "second", "service", "acme", "username", "CI Bot", "extra", "1",
        ],
        Some("b"),
    );
    assert!(output.status.success());
    // Modified has whole seconds: wait until the clock has moved on to the
    // next second, then change the first.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        == start
    {
        assert!(std::time::Instant::now() < deadline, "the clock stopped");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    service.store_foreign("acme", "CI Bot", "first", "new-a");
    assert_eq!(service.items("acme", "CI Bot").len(), 2);
    project(&service)
        .run(["get", "API_TOKEN"])
        .success()
        .stdout_is("new-a");
}

#[test]
fn check_of_a_manifest_with_no_entries_says_so_and_how_to_add_one() {
    let test = Test::new().manifest("");
    let data = test.path().join("data");
    let test = test
        .env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_PASSPHRASE", "a passphrase");
    test.run(["check"]).success().stdout_is("").stderr_has(
        "secrets.toml has no entries, so there is nothing to check\n  \
         add one under its [secrets] table (write the table if there is none), e.g.: \
         API_TOKEN = { service = \"my-app\", username = \"api-token\" }\n  \
         then store its value: with-secrets set API_TOKEN\n",
    );
    // The advice, followed: the entry, then the `set` line as printed.
    let test = test
        .manifest("[secrets]\nAPI_TOKEN = { service = \"my-app\", username = \"api-token\" }\n");
    test.run_input("tok", ["set", "API_TOKEN"]).success();
    test.run(["check"])
        .success()
        .stdout_is("API_TOKEN  my-app  api-token  found\n");
    // A manifest whose only entries are in a profile points at the profile.
    let test = Test::new()
        .manifest("[profiles.staging.secrets]\nA = { service = \"s\", username = \"u\" }\n");
    test.run(["check"]).success().stderr_has(
        "\n  or check a profile that has entries (staging): with-secrets --profile staging check\n",
    );
    test.run(["--profile", "staging", "check"])
        .expect_code(1)
        .stdout_is(
            "A  s  u  missing: the file store is not made yet, and nothing here can give its \
             new passphrase: run with-secrets --profile staging set A at a terminal, or with \
             WITH_SECRETS_PASSPHRASE set\n",
        );
}
