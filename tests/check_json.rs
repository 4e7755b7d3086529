//! `with-secrets check --format json`: one JSON document, valid against
//! schema/check.schema.json (checked with Python's `jsonschema`), built from
//! the same statuses as the table, never holding a value, with check's own
//! exit codes.

use std::path::Path;

use serde_json::Value;

use crate::support::{SecretService, Test};

const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/check.schema.json");

/// Validates `document` against the schema with the venv's `jsonschema`
/// (draft 2020-12, with its format checker), and returns it parsed.
pub(crate) fn validated(test: &Test, document: &str) -> Value {
    let output = test.python(
        &[
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)\n\
             errors = [f'{list(e.absolute_path)}: {e.message}' for e in validator.iter_errors(json.loads(sys.stdin.read()))]\n\
             print('\\n'.join(errors) if errors else 'valid')",
            SCHEMA,
        ],
        document,
    );
    let verdict = String::from_utf8_lossy(&output.stdout);
    assert_eq!(verdict.trim(), "valid", "{document}");
    serde_json::from_str(document).unwrap_or_else(|err| panic!("{err}: {document}"))
}

/// Each entry's (name, status, source).
fn statuses(report: &Value) -> Vec<(String, String, Value)> {
    report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["name"].as_str().unwrap().to_owned(),
                entry["status"].as_str().unwrap().to_owned(),
                entry["source"].clone(),
            )
        })
        .collect()
}

fn triple(name: &str, status: &str, source: Option<&str>) -> (String, String, Value) {
    (
        name.to_owned(),
        status.to_owned(),
        source.map_or(Value::Null, |s| Value::String(s.to_owned())),
    )
}

const CANARY_STORED: &str = "canary-3e9b71-stored";
const CANARY_ENV: &str = "canary-3e9b71-environment";

/// A manifest with an entry in each state: found, from the environment,
/// missing, missing but optional, and generated on first run.
fn every_status(service: &SecretService) -> Test {
    service.store_foreign("acme", "found", "FOUND", CANARY_STORED);
    Test::new()
        .keyring(service)
        .manifest(
            "[defaults]\nservice = \"acme\"\n\n[secrets]\n\
             FOUND = { username = \"found\" }\n\
             FROM_ENV = { username = \"from-env\" }\n\
             MISSING = { username = \"missing\" }\n\
             OPTIONAL = { username = \"optional\", optional = true }\n\
             MADE = { username = \"made\", generate = true }\n",
        )
        .env("FROM_ENV", CANARY_ENV)
        .env("WITH_SECRETS_STORE", "secret-service")
}

#[test]
fn check_json_gives_every_status_valid_against_its_schema_and_exits_as_check_does() {
    let service = SecretService::start();
    let test = every_status(&service);
    let run = test.run(["check", "--format", "json"]);
    run.expect_code(1);
    let report = validated(&test, &run.stdout());
    assert_eq!(
        statuses(&report),
        [
            triple("FOUND", "found", Some("store")),
            triple("FROM_ENV", "from-environment", Some("environment")),
            triple("MISSING", "missing", None),
            triple("OPTIONAL", "missing-optional", None),
            triple("MADE", "generated-on-first-run", Some("generated")),
        ]
    );
    assert_eq!(report["ok"], false);
    assert_eq!(report["error"], Value::Null);
    assert_eq!(report["profile"], Value::Null);
    assert_eq!(report["store"]["name"], "secret-service");
    assert_eq!(
        report["store"]["why"], "chosen by WITH_SECRETS_STORE",
        "{report}"
    );
    assert_eq!(report["entries"][0]["matches"], 1);
    assert_eq!(
        report["entries"][2]["detail"],
        "missing: run with-secrets set MISSING"
    );
    let manifest = test.path().join("secrets.toml");
    assert_eq!(report["manifest"], manifest.to_str().unwrap());
    // Nothing on stdout but the document.
    assert!(run.stdout().ends_with("}\n"), "{}", run.stdout());

    // With the missing one stored, it exits 0 and says ok.
    service.store_foreign("acme", "missing", "MISSING", "now-here");
    let run = test.run(["check", "--format", "json"]);
    run.success();
    let report = validated(&test, &run.stdout());
    assert_eq!(report["ok"], true);
    assert_eq!(report["entries"][2]["status"], "found");
}

#[test]
fn check_json_and_the_table_say_the_same_of_each_entry() {
    let service = SecretService::start();
    let test = every_status(&service);
    let table = test.run(["check"]);
    let json = test.run(["check", "--format", "json"]);
    assert_eq!(table.code(), json.code());
    let report = validated(&test, &json.stdout());
    let lines: Vec<String> = table.stdout().lines().map(str::to_owned).collect();
    let entries = report["entries"].as_array().unwrap();
    assert_eq!(lines.len(), entries.len(), "{}", table.stdout());
    for (line, entry) in lines.iter().zip(entries) {
        let (name, detail) = (
            entry["name"].as_str().unwrap(),
            entry["detail"].as_str().unwrap(),
        );
        assert!(line.starts_with(name), "{line}");
        assert!(line.ends_with(&format!("  {detail}")), "{line} / {detail}");
    }
}

#[test]
fn check_json_never_holds_a_value() {
    let service = SecretService::start();
    let test = every_status(&service);
    for args in [
        &["check", "--format", "json"][..],
        &["-v", "check", "--format", "json"],
    ] {
        let run = test.run(args);
        run.never_shows(CANARY_STORED).never_shows(CANARY_ENV);
        assert!(run.stdout().contains("\"FOUND\""), "{}", run.stdout());
    }
}

#[test]
fn a_store_that_fails_still_gets_its_document_and_exits_125() {
    let service = SecretService::start();
    let test = every_status(&service);
    service.lock();
    let run = test.run(["check", "--format", "json"]);
    run.expect_code(125)
        .stderr_has("secret-service: the keyring is locked");
    let report = validated(&test, &run.stdout());
    assert_eq!(report["ok"], false);
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("the keyring is locked"), "{error}");
    for (name, status, source) in statuses(&report) {
        assert_eq!(
            (status.as_str(), &source),
            ("error", &Value::Null),
            "{name}"
        );
    }
    // The table is not printed, as before: the error is what to fix.
    test.run(["check"]).expect_code(125).stdout_is("");
}

#[test]
fn a_profile_and_a_read_only_store_are_reported() {
    let test = Test::new().manifest(
        "[secrets]\nA = { service = \"s\", username = \"a\" }\n\n\
         [profiles.ci]\nstore = \"keyrings-alt\"\n\n[profiles.ci.secrets]\n\
         B = { service = \"s\", username = \"b\" }\n",
    );
    let run = test.run(["--profile", "ci", "check", "--format", "json"]);
    run.expect_code(1);
    let report = validated(&test, &run.stdout());
    assert_eq!(report["profile"], "ci");
    assert_eq!(report["store"]["name"], "keyrings-alt");
    assert_eq!(report["store"]["why"], "chosen by the profile's `store`");
    let detail = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["detail"].as_str().unwrap())
        .collect::<Vec<_>>();
    assert!(
        detail
            .iter()
            .all(|d| *d == "missing: keyrings-alt is read-only"),
        "{detail:?}"
    );
    // In CI, the fallback: the same document says where each comes from.
    let run = test.run_env(
        &[("A", "x"), ("B", "y")],
        ["--profile", "ci", "check", "--format", "json"],
    );
    run.success();
    let report = validated(&test, &run.stdout());
    assert!(
        statuses(&report)
            .iter()
            .all(|(_, status, _)| status == "from-environment"),
        "{report}"
    );
}

#[test]
fn strings_are_json_escaped_raw_not_terminal_escaped() {
    let test = Test::new()
        .file(
            "odd\u{1b}[31m dir/secrets.toml",
            "[secrets]\nA = { service = \"s\\u001b[2Jx\\u0007\", username = \"\\\"q\\\" \\\\ ü\" }\n",
        )
        .env("A", "x");
    let manifest = "odd\u{1b}[31m dir/secrets.toml";
    let run = test.run(["-m", manifest, "check", "--format", "json"]);
    run.success();
    // The raw control characters never reach stdout: JSON escapes them.
    assert!(!run.stdout().contains('\u{1b}'), "{}", run.stdout());
    assert!(
        run.stdout().contains("s\\u001b[2Jx\\u0007"),
        "{}",
        run.stdout()
    );
    let report = validated(&test, &run.stdout());
    assert_eq!(report["entries"][0]["service"], "s\u{1b}[2Jx\u{7}");
    assert_eq!(report["entries"][0]["username"], "\"q\" \\ ü");
    assert!(
        report["manifest"]
            .as_str()
            .unwrap()
            .ends_with("odd\u{1b}[31m dir/secrets.toml"),
        "{report}"
    );
}

#[test]
fn a_manifest_with_no_entries_gives_an_empty_document() {
    let test = Test::new().manifest("[secrets]\n");
    let run = test.run(["check", "--format", "json"]);
    run.success().stderr_has("has no entries");
    let report = validated(&test, &run.stdout());
    assert_eq!(report["store"], Value::Null);
    assert_eq!(report["entries"], Value::Array(Vec::new()));
    assert_eq!(report["ok"], true);
}

#[test]
fn the_schema_names_every_store_and_status_the_binary_has() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(SCHEMA)).unwrap()).unwrap();
    let stores: Vec<&str> = schema["$defs"]["store"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // Every store --help offers (but auto, which reports the store it
    // picked) is one the schema allows.
    let help = Test::new().run(["--help"]).stdout();
    let listed = help.split("--store <STORE>").nth(1).unwrap();
    for store in [
        "secret-service",
        "keyutils",
        "file",
        "keyrings-alt",
        "windows",
        "vault",
        "agent",
    ] {
        assert!(listed.contains(store), "{store} not in --help");
        assert!(stores.contains(&store), "{store} not in the schema");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_value_from_the_session_cache_is_found_with_its_age() {
    use crate::keyutils::{in_session, with_secrets};
    let logs = tempfile::tempdir().unwrap();
    let server = crate::support::bao::Bao::dev();
    server.ok(&["kv", "put", "secret/app", "a=cached-canary-value"]);
    let test = server
        .client(Test::new().manifest("[secrets]\nA = { service = \"app\", username = \"a\" }\n"))
        .env("WITH_SECRETS_STORE", "vault")
        .env("XDG_DATA_HOME", logs.path().join("data"));
    let runs = in_session(
        &test,
        &[
            with_secrets(&["unlock", "--for", "1h"]),
            // Read from the server, and kept.
            with_secrets(&["check", "--format", "json"]),
            // Served from what was kept.
            with_secrets(&["check", "--format", "json"]),
        ],
    );
    runs[0].success();
    let first = validated(&test, &runs[1].success().stdout());
    assert_eq!(first["entries"][0]["source"], "store", "{first}");
    let kept = validated(&test, &runs[2].success().stdout());
    let entry = &kept["entries"][0];
    assert_eq!(entry["status"], "found", "{kept}");
    assert_eq!(entry["source"], "session-cache", "{kept}");
    assert!(entry["cached_seconds_ago"].as_u64().is_some(), "{kept}");
    assert!(
        entry["detail"]
            .as_str()
            .unwrap()
            .starts_with("found (in the session cache, read "),
        "{kept}"
    );
    runs[2].never_shows("cached-canary-value");
}

#[test]
fn the_readme_example_is_valid_against_the_schema() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split_once("### A report for tools: `check --format json`")
        .unwrap()
        .1;
    let example = section
        .split_once("```json\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    let report = validated(&Test::new(), example);
    assert_eq!(report["entries"][0]["status"], "missing");
}
