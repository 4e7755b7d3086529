//! The environment stands in for a store only when there is no store here
//! at all; a store that is there but fails stops the run. Plus what the
//! command gets: every name its value, never a key to the whole store.

use crate::support::{SecretService, Test, manifest_for};

const PASSPHRASE: &str = "fallback passphrase";
/// What a stale `export API_TOKEN=...` in a shell profile holds.
const STALE: &str = "stale-exported-value";

/// A project on the file store, in its own XDG_DATA_HOME, whose API_TOKEN
/// is also (stale) in the environment.
fn file_project() -> Test {
    let test = Test::new().manifest(&manifest_for(&[("API_TOKEN", "acme", "api")]));
    let data = test.path().join("data");
    test.env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_STORE", "file")
        .env("API_TOKEN", STALE)
}

/// Runs a command that would print API_TOKEN, and asserts it never ran.
#[track_caller]
fn refused(test: &Test, args: &[&str], message: &str) {
    let mut argv: Vec<&str> = args.to_vec();
    argv.extend(["--", "sh", "-c", "printf 'ran:%s' \"$API_TOKEN\""]);
    let run = test.run(&argv);
    run.expect_code(125).stderr_has(message).never_shows(STALE);
    assert!(!run.stdout().contains("ran:"), "{}", run.stdout());
}

#[test]
fn a_wrong_passphrase_is_an_error_even_with_the_variable_set() {
    let test = file_project().env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    test.run_input("from-store", ["set", "API_TOKEN"]).success();
    let test = test.env("WITH_SECRETS_PASSPHRASE", "not the passphrase");
    refused(&test, &[], "the password does not open");
    // check says the same, and lists nothing to `set`.
    let check = test.run(["check"]);
    check
        .expect_code(125)
        .stderr_has("the password does not open");
    assert!(!check.stdout().contains("missing"), "{}", check.stdout());
    test.run(["env"])
        .expect_code(125)
        .stderr_has("the password does not open")
        .never_shows(STALE);
}

#[test]
fn a_damaged_store_file_is_an_error_even_with_the_variable_set() {
    let test = file_project().env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    test.run_input("from-store", ["set", "API_TOKEN"]).success();
    let file = test.path().join("data/with-secrets/secrets.age");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55; // flips bits in the payload's authentication tag
    std::fs::write(&file, bytes).unwrap();
    refused(&test, &[], "secrets.age");
}

#[test]
fn a_store_file_that_needs_a_passphrase_nobody_can_give_is_an_error() {
    let test = file_project().env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    test.run_input("from-store", ["set", "API_TOKEN"]).success();
    // No passphrase, and (as in CI) no terminal to ask on.
    let test = test.env("WITH_SECRETS_PASSPHRASE", "");
    refused(&test, &[], "WITH_SECRETS_PASSPHRASE");
}

#[test]
fn a_missing_store_file_is_no_store_so_the_environment_stands_in() {
    file_project()
        .run(["--", "sh", "-c", "printf %s \"$API_TOKEN\""])
        .success()
        .stdout_is(STALE);
}

#[test]
fn a_locked_keyring_is_an_error_even_with_the_variable_set() {
    let service = SecretService::start();
    service.store_foreign("acme", "api", "token", "from-keyring");
    service.lock();
    let test = Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[("API_TOKEN", "acme", "api")]))
        .env("API_TOKEN", STALE);
    refused(&test, &["--timeout", "5"], "locked");
    let check = test.run(["--timeout", "5", "check"]);
    check.expect_code(125).stderr_has("locked");
    assert!(!check.stdout().contains("missing"), "{}", check.stdout());
}

#[test]
fn a_hung_keyring_is_an_error_even_with_the_variable_set() {
    let service = SecretService::start();
    service.store_foreign("acme", "api", "token", "from-keyring");
    service.signal_keyring(libc::SIGSTOP);
    let test = Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[("API_TOKEN", "acme", "api")]))
        .env("API_TOKEN", STALE);
    refused(&test, &["--timeout", "0.5"], "no answer within 0.5 s");
    service.signal_keyring(libc::SIGCONT);
}

#[test]
fn a_keyring_that_refuses_access_is_an_error_even_with_the_variable_set() {
    let service = SecretService::start_denied();
    let test = Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[("API_TOKEN", "acme", "api")]))
        .env("API_TOKEN", STALE);
    refused(&test, &[], "access denied");
}

#[test]
fn with_no_secret_service_the_environment_stands_in() {
    let bus = SecretService::bus_only();
    Test::new()
        .keyring(&bus)
        .manifest(&manifest_for(&[("API_TOKEN", "acme", "api")]))
        .env("WITH_SECRETS_STORE", "secret-service")
        .env("API_TOKEN", STALE)
        .run(["--", "sh", "-c", "printf %s \"$API_TOKEN\""])
        .success()
        .stdout_is(STALE);
}

#[test]
fn two_names_for_one_item_both_get_its_value() {
    let service = SecretService::start();
    service.store_foreign("acme", "api", "token", "shared-value");
    let manifest = manifest_for(&[
        ("API_TOKEN", "acme", "api"),
        ("OTHER", "acme", "other"),
        ("GITHUB_TOKEN", "acme", "api"),
    ]);
    let test = Test::new().keyring(&service).manifest(&manifest);
    test.run([
        "--",
        "sh",
        "-c",
        "printf '%s|%s|%s' \"$API_TOKEN\" \"${OTHER-unset}\" \"$GITHUB_TOKEN\"",
    ])
    .expect_code(125)
    .stderr_has("1 required secret is missing")
    .stderr_has("OTHER");
    service.store_foreign("acme", "other", "other", "other-value");
    test.run([
        "--",
        "sh",
        "-c",
        "printf '%s|%s|%s' \"$API_TOKEN\" \"$OTHER\" \"$GITHUB_TOKEN\"",
    ])
    .success()
    .stdout_is("shared-value|other-value|shared-value");
    let check = test.run(["check"]);
    check.success();
    assert_eq!(
        check.stdout().matches("  found").count(),
        3,
        "{}",
        check.stdout()
    );
    // The file store too.
    let file = Test::new().manifest(&manifest);
    let data = file.path().join("data");
    let file = file
        .env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    file.run_input("file-value", ["set", "API_TOKEN"]).success();
    file.run_input("o", ["set", "OTHER"]).success();
    file.run([
        "--",
        "sh",
        "-c",
        "printf '%s|%s' \"$API_TOKEN\" \"$GITHUB_TOKEN\"",
    ])
    .success()
    .stdout_is("file-value|file-value");
}

#[test]
fn the_passphrase_variables_never_reach_the_command() {
    let test = file_project()
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
        .env("WITH_SECRETS_KEYRINGS_ALT_PASSWORD", "alt password");
    test.run_input("from-store", ["set", "API_TOKEN"]).success();
    for mask in [&[][..], &["--mask"][..]] {
        let mut args = mask.to_vec();
        args.extend(["--", "env"]);
        let run = test.run(&args);
        run.success();
        let environment = run.stdout();
        assert!(environment.contains("API_TOKEN="), "{environment}");
        for hidden in [
            "WITH_SECRETS_PASSPHRASE",
            "WITH_SECRETS_KEYRINGS_ALT_PASSWORD",
        ] {
            assert!(
                !environment.contains(hidden),
                "{mask:?}: {hidden} reached the command:\n{environment}"
            );
        }
        assert!(!environment.contains(PASSPHRASE), "{environment}");
    }
}
