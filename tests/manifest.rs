//! Manifest errors as a person sees them: located, with a snippet, exit 125.

use crate::support::Test;

fn run(manifest: &str) -> crate::support::Run {
    Test::new().manifest(manifest).run(["--", "true"])
}

#[test]
fn a_syntax_error_is_located_with_a_snippet() {
    let run = run("[secrets]\nA = { service = \"s\", username = \"u\"\n");
    run.expect_code(125);
    let stderr = run.stderr();
    assert!(stderr.starts_with("with-secrets: "), "{stderr}");
    assert!(stderr.contains("secrets.toml:2:"), "{stderr}");
    assert!(
        stderr.contains("2 | A = { service = \"s\", username = \"u\""),
        "{stderr}"
    );
}

#[test]
fn an_unknown_key_is_located() {
    run("[secrets]\nA = { service = \"s\", user = \"u\" }\n")
        .expect_code(125)
        .stderr_has("secrets.toml:2:22: unknown key `user` in `A`; expected one of service, username, optional, description")
        .stderr_has("2 | A = { service = \"s\", user = \"***\" }\n  |                      ^^^^");
}

#[test]
fn a_value_in_the_manifest_is_refused_and_not_repeated() {
    run(
        "[secrets]\nAPI_TOKEN = { service = \"s\", username = \"u\", value = \"ghp_canary123\" }\n",
    )
    .expect_code(125)
    .stderr_has("secrets belong in the keyring")
    .stderr_has("with-secrets set API_TOKEN")
    .never_shows("ghp_canary123");
    run("[secrets]\nAPI_TOKEN = \"ghp_canary123\"\n")
        .expect_code(125)
        .stderr_has("secrets.toml:2:13: `API_TOKEN` holds a value")
        .never_shows("ghp_canary123");
}

#[test]
fn an_invalid_name_is_refused() {
    run("[secrets]\n\"MY-TOKEN\" = { service = \"s\", username = \"u\" }\n")
        .expect_code(125)
        .stderr_has("secrets.toml:2:1: `MY-TOKEN` is not a valid environment variable name");
}

#[test]
fn empty_service_and_username_are_refused() {
    run("[secrets]\nA = { service = \"\", username = \"u\" }\n")
        .expect_code(125)
        .stderr_has("secrets.toml:2:17: `service` must not be empty");
    run("[secrets]\nA = { service = \"s\", username = \"\" }\n")
        .expect_code(125)
        .stderr_has("`username` must not be empty");
}

#[test]
fn a_manifest_that_is_not_utf8_is_located() {
    Test::new()
        .file("secrets.toml", b"[secrets]\nA = { service = \"\xff\" }\n")
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("secrets.toml:2:18: the file is not valid UTF-8");
}

#[test]
fn a_missing_explicit_manifest_says_so() {
    Test::new()
        .run(["-m", "nope.toml", "--", "true"])
        .expect_code(125)
        .stderr_has("with-secrets: cannot read manifest nope.toml: No such file or directory")
        .stderr_has("create it with: with-secrets init");
}

#[test]
fn the_example_manifest_parses() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/secrets.example.toml");
    let run = Test::new()
        .env("API_TOKEN", "x")
        .env("DATABASE_URL", "y")
        .run(["-m", example, "check"]);
    run.success();
    let lines: Vec<_> = run
        .stdout()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(lines, ["API_TOKEN", "DATABASE_URL", "SENTRY_DSN"]);
}
