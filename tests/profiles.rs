//! Profiles: one manifest for several environments (`--profile NAME`,
//! `WITH_SECRETS_PROFILE`), against a real Secret Service and file store.

use crate::file_store::PASSPHRASE;
use crate::support::{SecretService, Test};

/// The manifest from the issue that asked for profiles.
const MANIFEST: &str = r#"
[secrets]
API_TOKEN = { service = "acme-api", username = "dev" }
DB_URL    = { service = "acme-db",  username = "dev" }

[profiles.ci]
store = "file"                                   # optional: a profile may name its store

[profiles.ci.secrets]
API_TOKEN = { service = "acme-api", username = "ci-bot" }

[profiles.staging.secrets]
API_TOKEN    = { service = "acme-api", username = "staging" }
STAGING_ONLY = { service = "acme",     username = "staging-only" }
"#;

const STAGING: (&str, &str) = ("WITH_SECRETS_PROFILE", "staging");

/// A project with `MANIFEST`, its keyring holding a value for every entry
/// but `ci-bot` (which is in the file store), and its own file store.
fn project(service: &SecretService) -> Test {
    service.store_foreign("acme-api", "dev", "x", "dev-token");
    service.store_foreign("acme-db", "dev", "x", "dev-db");
    service.store_foreign("acme-api", "staging", "x", "staging-token");
    service.store_foreign("acme", "staging-only", "x", "staging-only");
    let test = Test::new().keyring(service).manifest(MANIFEST);
    let data = test.path().join("data");
    test.env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
}

#[test]
fn a_profile_replaces_and_adds_entries_in_every_command() {
    let service = SecretService::start();
    let test = project(&service);
    let names = ["API_TOKEN", "DB_URL", "STAGING_ONLY"];
    // Without a profile, [secrets] alone: STAGING_ONLY is not set.
    assert_eq!(test.seen(&names), "dev-token|dev-db|");
    let staging = "staging-token|dev-db|staging-only";
    assert_eq!(test.seen_with(&["--profile", "staging"], &names), staging);
    let printf = "printf '%s|%s|%s' \"$API_TOKEN\" \"$DB_URL\" \"$STAGING_ONLY\"";
    test.run_env(&[STAGING], ["--", "sh", "-c", printf])
        .success()
        .stdout_is(staging);
    // An empty variable is no profile.
    test.run_env(&[("WITH_SECRETS_PROFILE", "")], ["--", "sh", "-c", printf])
        .success()
        .stdout_is("dev-token|dev-db|");
    test.run([
        "--profile",
        "staging",
        "-c",
        "sh -c 'printf %s \"$STAGING_ONLY\"'",
    ])
    .success()
    .stdout_is("staging-only");
    test.run(["--profile", "staging", "env", "--format", "json"])
        .success()
        .stdout_is(
            "{\n  \"API_TOKEN\": \"staging-token\",\n  \"DB_URL\": \"dev-db\",\n  \"STAGING_ONLY\": \
             \"staging-only\"\n}\n",
        );
    test.run(["--profile", "staging", "get", "API_TOKEN"])
        .success()
        .stdout_is("staging-token");
    // A global flag: after the subcommand too.
    test.run(["get", "API_TOKEN", "--profile", "staging"])
        .success()
        .stdout_is("staging-token");
    test.run_env(&[STAGING], ["-v", "get", "STAGING_ONLY"])
        .success()
        .stderr_has("with-secrets: profile staging (from WITH_SECRETS_PROFILE)");
    test.run_env(&[STAGING], ["get", "STAGING_ONLY"])
        .success()
        .stdout_is("staging-only");
    // Not in [secrets], so not there without the profile.
    test.run(["get", "STAGING_ONLY"])
        .expect_code(125)
        .stderr_has("STAGING_ONLY is not in");
    let check = test.run(["--profile", "staging", "check"]);
    check.success();
    let out = check.stdout();
    assert!(
        out.contains("API_TOKEN     acme-api  staging       found"),
        "{out}"
    );
    assert!(
        out.contains("STAGING_ONLY  acme      staging-only  found"),
        "{out}"
    );

    // set and delete reach the profile's entry, and only it.
    test.run_input("new-staging", ["--profile", "staging", "set", "API_TOKEN"])
        .success();
    test.run(["get", "API_TOKEN"])
        .success()
        .stdout_is("dev-token");
    test.run(["--profile", "staging", "get", "API_TOKEN"])
        .success()
        .stdout_is("new-staging");
    test.run(["--profile", "staging", "delete", "STAGING_ONLY"])
        .success();
    assert!(service.items("acme", "staging-only").is_empty());
    assert_eq!(service.items("acme-api", "dev").len(), 1);
}

#[test]
fn a_profiles_store_comes_after_the_flag_and_the_variable_and_before_the_manifests() {
    let service = SecretService::start();
    let test = project(&service);
    // `ci` names the file store: `set` stores the ci-bot entry there.
    test.run_input("ci-token", ["--profile", "ci", "set", "API_TOKEN"])
        .success();
    test.run_input("ci-db", ["--profile", "ci", "set", "DB_URL"])
        .success();
    assert!(service.items("acme-api", "ci-bot").is_empty());
    assert!(test.path().join("data/with-secrets/secrets.age").exists());
    assert_eq!(
        test.seen_with(&["--profile", "ci"], &["API_TOKEN"]),
        "ci-token"
    );
    let run = test.run(["-v", "--profile", "ci", "get", "API_TOKEN"]);
    run.success()
        .stdout_is("ci-token")
        .stderr_has("with-secrets: profile ci (from --profile)")
        .stderr_has("with-secrets: store file (chosen by the profile's `store`)");
    // --store and WITH_SECRETS_STORE come first: the keyring has no ci-bot.
    for (env, args) in [
        (
            ("WITH_SECRETS_STORE", "secret-service"),
            &["--profile", "ci", "get", "API_TOKEN"],
        ),
        (
            ("WITH_SECRETS_PROFILE", "ci"),
            &["--store", "secret-service", "get", "API_TOKEN"],
        ),
    ] {
        test.run_env(&[env], args).expect_code(125).stderr_has(
            "API_TOKEN is not stored in secret-service (service \"acme-api\", username \"ci-bot\")",
        );
    }
    // The manifest's own `store` comes after the profile's.
    let with_store = Test::new()
        .keyring(&service)
        .manifest(&format!("store = \"secret-service\"\n{MANIFEST}"))
        .env("XDG_DATA_HOME", test.path().join("data"))
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    with_store
        .run(["--profile", "ci", "get", "API_TOKEN"])
        .success()
        .stdout_is("ci-token");
    with_store
        .run(["--profile", "staging", "-v", "get", "API_TOKEN"])
        .success()
        .stdout_is("staging-token")
        .stderr_has("store secret-service (chosen by the manifest's `store`)");
}

#[test]
fn an_unknown_profile_is_an_error_that_lists_the_profiles() {
    let service = SecretService::start();
    let test = project(&service);
    let expected = "with-secrets: no profile `prod` ";
    for args in [
        &["--profile", "prod", "--", "true"][..],
        &["--profile", "prod", "check"],
        &["--profile", "prod", "env"],
        &["--profile", "prod", "set", "API_TOKEN"],
    ] {
        test.run(args)
            .expect_code(125)
            .stderr_has(expected)
            .stderr_has("(from --profile) in ")
            .stderr_has(
                "secrets.toml; it has: ci, staging\n  use one of those, add \
                 [profiles.prod.secrets], or run without --profile to use [secrets] alone",
            );
    }
    test.run_env(&[("WITH_SECRETS_PROFILE", "prod")], ["--", "true"])
        .expect_code(125)
        .stderr_has(expected)
        .stderr_has("(from WITH_SECRETS_PROFILE)")
        .stderr_has("or unset WITH_SECRETS_PROFILE to use [secrets] alone");
    // A name no manifest could have is a usage error, before any manifest
    // is read; from the variable too.
    test.run(["--profile", "a b$(x)", "--", "true"])
        .expect_code(125)
        .stderr_has("`a b$(x)` is not a profile name: use up to 64 ASCII letters");
    test.run_env(&[("WITH_SECRETS_PROFILE", "../x")], ["check"])
        .expect_code(125)
        .stderr_has("WITH_SECRETS_PROFILE: `../x` is not a profile name");
    // doctor still reports the rest.
    let doctor = test.run(["--profile", "prod", "doctor"]);
    doctor.success();
    assert!(
        doctor.stdout().contains("no profile `prod`"),
        "{}",
        doctor.stdout()
    );
}

#[test]
fn fix_lines_repeat_the_profile() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(MANIFEST);
    let run = test.run(["--profile", "staging", "--", "true"]);
    run.expect_code(125)
        .stderr_has("with-secrets --profile staging set API_TOKEN")
        .stderr_has("with-secrets --profile staging set STAGING_ONLY");
    // Chosen by the variable, it is repeated too: the fix may be run in
    // another shell, where the variable is not set.
    let check = test.run_env(&[STAGING], ["check"]);
    check.expect_code(1);
    assert!(
        check
            .stdout()
            .contains("missing: run with-secrets --profile staging set STAGING_ONLY"),
        "{}",
        check.stdout()
    );
    test.run(["--profile", "staging", "get", "DB_URL"])
        .expect_code(125)
        .stderr_has("with-secrets --profile staging set DB_URL");
}

#[test]
fn doctor_and_import_honour_the_profile() {
    let service = SecretService::start();
    let test = project(&service);
    let doctor = test.run(["--profile", "staging", "doctor"]);
    doctor.success();
    let out = doctor.stdout();
    assert!(
        out.contains("  profile:        staging (of: ci, staging)"),
        "{out}"
    );
    assert!(
        out.contains("STAGING_ONLY  acme      staging-only  found"),
        "{out}"
    );
    let out = test.run(["doctor"]).stdout();
    assert!(
        out.contains(
            "  profile:        none, so [secrets] alone (--profile NAME picks one of: ci, staging)"
        ),
        "{out}"
    );
    // import copies the profile's entries: ci-bot, from keyrings.alt's
    // plain-text file into the keyring.
    let test = test.file(
        "data/python_keyring/keyring_pass.cfg",
        // base64 of "hello"; keyrings.alt escapes `-` as `_2D`.
        "[acme_2Dapi]\nci_2Dbot = \n\taGVsbG8=\n\n",
    );
    let run = test.run([
        "--profile",
        "ci",
        "--store",
        "secret-service",
        "import",
        "--from",
        "keyrings-alt",
    ]);
    run.success();
    assert!(
        run.stdout()
            .contains("copied     API_TOKEN  acme-api / ci-bot"),
        "{}",
        run.stdout()
    );
    test.run([
        "--profile",
        "ci",
        "--store",
        "secret-service",
        "get",
        "API_TOKEN",
    ])
    .success()
    .stdout_is("hello");
}

#[test]
fn a_name_only_a_profile_defines_gets_the_profile_line() {
    let service = SecretService::start();
    let test = project(&service);
    let path = test.path().join("secrets.toml");
    for command in ["get", "set", "delete"] {
        test.run_input("new value", [command, "STAGING_ONLY"])
            .expect_code(125)
            .stderr_has(&format!(
                "with-secrets: STAGING_ONLY is not in {}'s [secrets]; it is defined in profile \
                 staging\n  use it with: with-secrets --profile staging {command} STAGING_ONLY\n",
                path.display()
            ))
            .stderr_lacks("add it");
    }
    // Under another profile, the line names the one that defines it.
    test.run(["--profile", "ci", "get", "STAGING_ONLY"])
        .expect_code(125)
        .stderr_has("use it with: with-secrets --profile staging get STAGING_ONLY\n");
    // The lines, run as printed, do what they say.
    test.run(["--profile", "staging", "get", "STAGING_ONLY"])
        .success()
        .stdout_is("staging-only");
    test.run_input("changed", ["--profile", "staging", "set", "STAGING_ONLY"])
        .success();
    test.run(["--profile", "staging", "get", "STAGING_ONLY"])
        .success()
        .stdout_is("changed");
    test.run(["--profile", "staging", "delete", "STAGING_ONLY"])
        .success();
    assert!(service.items("acme", "staging-only").is_empty());
    // A name no table defines is still "add it".
    test.run(["get", "NOWHERE"])
        .expect_code(125)
        .stderr_has("NOWHERE is not in ")
        .stderr_has("add it: NOWHERE = ");
}
