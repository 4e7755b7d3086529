//! `with-secrets env`: every format gives each value back exactly, to the
//! readers it is for, or refuses it by name.

use std::collections::BTreeMap;
use std::process::Command;

use crate::ergonomics::stored;
use crate::support::{BIN, SecretService, Test, manifest_for};

/// Values that trip up quoting: quotes, newlines, `$`, backticks, backslashes,
/// non-ASCII text, braces and tildes, and nothing at all.
const AWKWARD: &[(&str, &str)] = &[
    ("QUOTES", "it's \"quoted\" ''"),
    ("NEWLINES", "line one\nline two\n\n"),
    ("DOLLARS", "$HOME ${PATH} $(id) $$ $"),
    ("BACKTICKS", "`id` \\`x\\`"),
    ("BACKSLASHES", "a\\b\\n\\\\ \\'"),
    ("UNICODE", "pä$$ wörd ✓ 🎉"),
    // bash expands braces and a tilde after `:` even in an `export` word.
    ("BRACES", "x{b,c}"),
    ("TILDE", "a:~"),
    ("EMPTY", ""),
];

fn awkward_project(service: &SecretService) -> Test {
    let entries: Vec<(String, String)> = AWKWARD
        .iter()
        .map(|(name, value)| {
            let username = name.to_lowercase();
            service.store_foreign("acme", &username, name, value);
            (name.to_string(), username)
        })
        .collect();
    let triples: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(name, username)| (name.as_str(), "acme", username.as_str()))
        .collect();
    Test::new()
        .keyring(service)
        .manifest(&manifest_for(&triples))
}

/// `script` run by `shell` in the project, with `$WS` the binary under test;
/// returns its stdout.
fn shell(test: &Test, shell: &str, script: &str) -> Vec<u8> {
    let output = Command::new(shell)
        .args(["-c", script])
        .current_dir(test.path())
        .env_clear()
        .envs(test.envs())
        .env("WS", BIN)
        .output()
        .unwrap_or_else(|err| panic!("{shell}: {err}"));
    assert!(
        output.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A shell line that prints each awkward variable, NUL-terminated.
fn print_awkward() -> String {
    let names: Vec<String> = AWKWARD.iter().map(|(n, _)| format!("\"${n}\"")).collect();
    format!("printf '%s\\0' {}", names.join(" "))
}

fn expected_awkward() -> Vec<u8> {
    AWKWARD
        .iter()
        .flat_map(|(_, value)| [value.as_bytes(), b"\0"].concat())
        .collect()
}

#[test]
fn eval_of_env_reproduces_every_value_exactly_in_sh_and_bash() {
    let service = SecretService::start();
    let test = awkward_project(&service);
    for sh in ["sh", "bash"] {
        let seen = shell(
            &test,
            sh,
            &format!("eval \"$(\"$WS\" env)\" && {}", print_awkward()),
        );
        assert_eq!(
            String::from_utf8_lossy(&seen),
            String::from_utf8_lossy(&expected_awkward()),
            "{sh}"
        );
    }
    // And the run form sees the very same.
    let run = test.run(["--", "sh", "-c", &print_awkward()]);
    run.success();
    assert_eq!(run.output.stdout, expected_awkward());
}

#[test]
fn shell_format_is_export_lines_in_manifest_order() {
    let service = SecretService::start();
    service.store_foreign("s", "b", "b", "it's");
    service.store_foreign("s", "a", "a", "plain");
    Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[("B", "s", "b"), ("A", "s", "a")]))
        .run(["env"])
        .success()
        .stdout_is("export B='it'\\''s'\nexport A=plain\n");
}

#[test]
fn env_prints_fallback_variables_and_leaves_out_missing_optional_ones() {
    // As in CI: no keyring, so values come from the environment.
    let test = Test::new()
        .manifest(
            "[secrets]\nFROM_CI = { service = \"s\", username = \"a\" }\n\
             UNSET = { service = \"s\", username = \"b\", optional = true }\n",
        )
        .env("FROM_CI", "ci value");
    test.run(["env"])
        .success()
        .stdout_is("export FROM_CI='ci value'\n");
    test.run(["env", "--format", "json"])
        .success()
        .stdout_is("{\n  \"FROM_CI\": \"ci value\"\n}\n");
}

#[test]
fn a_missing_required_variable_fails_env_as_it_fails_a_run() {
    let service = SecretService::start();
    let test =
        Test::new()
            .keyring(&service)
            .manifest(&manifest_for(&[("API_TOKEN", "acme", "ci-bot")]));
    for format in ["shell", "dotenv", "json"] {
        let run = test.run(["env", "--format", format]);
        run.expect_code(125)
            .stderr_has("1 required secret is missing from secret-service and the environment")
            .stderr_has("with-secrets set API_TOKEN");
        assert!(run.stdout().is_empty(), "{}", run.stdout());
    }
}

/// Values a `.env` line can hold for both readers: `=`, `#` without a space
/// before it, `$` without `{`, quotes inside, backslashes, tabs inside,
/// non-ASCII text, and nothing.
const DOTENV_SAFE: &[(&str, &[u8])] = &[
    ("EQUALS", b"a=b==c"),
    ("HASHES", b"#lead x#y"),
    ("DOLLAR", b"$HOME $x"),
    ("QUOTES_INSIDE", b"it's \"q\""),
    ("BACKSLASH", b"a\\nb\\"),
    ("TAB", b"a\tb"),
    ("UNICODE", "pä$$ wörd ✓".as_bytes()),
    ("EMPTY", b""),
];

/// Docker's documented `--env-file` rules: one `NAME=VALUE` per line, lines
/// that are blank or start with `#` skipped, the value taken literally.
fn docker_env_file(text: &str) -> BTreeMap<String, String> {
    text.split('\n')
        .map(|line| line.trim_start())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once('=').expect("NAME=VALUE");
            assert!(!name.contains(char::is_whitespace), "{line}");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn dotenv_output_reads_back_alike_in_python_dotenv_and_by_docker_rules() {
    let test = stored(DOTENV_SAFE);
    let run = test.run(["env", "--format", "dotenv"]);
    run.success();
    let text = run.stdout();
    let expected: BTreeMap<String, String> = DOTENV_SAFE
        .iter()
        .map(|(n, v)| (n.to_string(), String::from_utf8(v.to_vec()).unwrap()))
        .collect();

    assert_eq!(text.lines().count(), DOTENV_SAFE.len(), "{text}");
    assert_eq!(docker_env_file(&text), expected);

    let parsed = test.python(
        &[
            "-c",
            "import io, json, sys, dotenv\n\
             print(json.dumps(dotenv.dotenv_values(stream=io.StringIO(sys.stdin.read()))))",
        ],
        &text,
    );
    let parsed: BTreeMap<String, String> = serde_json::from_slice(&parsed.stdout).unwrap();
    assert_eq!(parsed, expected);
}

#[test]
fn dotenv_refuses_a_value_with_a_newline_by_name() {
    let test = stored(&[("FINE", b"fine"), ("NOTE", b"two\nlines")]);
    let run = test.run(["env", "--format", "dotenv"]);
    run.expect_code(125)
        .stderr_has(
            "cannot print NOTE as dotenv: its value contains a line break, which docker's \
             --env-file cannot hold",
        )
        .stderr_has("use another --format")
        .never_shows("two");
    assert!(run.stdout().is_empty(), "nothing is half-printed");
}

#[test]
fn dotenv_refuses_values_that_python_dotenv_would_read_differently() {
    for (value, reason) in [
        (" padded ", "starts or ends with white space"),
        ("'quoted'", "starts with a quote"),
        ("value #not-a-comment", "has white space before a `#`"),
        ("${HOME}", "contains `${`"),
    ] {
        stored(&[("TRICKY", value.as_bytes())])
            .run(["env", "--format", "dotenv"])
            .expect_code(125)
            .stderr_has(&format!(
                "cannot print TRICKY as dotenv: its value {reason}"
            ));
    }
}

#[test]
fn json_output_maps_each_name_to_its_value() {
    let service = SecretService::start();
    let test = awkward_project(&service);
    let run = test.run(["env", "--format", "json"]);
    run.success();
    let parsed: BTreeMap<String, String> = serde_json::from_str(&run.stdout()).unwrap();
    let expected: BTreeMap<String, String> = AWKWARD
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(parsed, expected);
}

#[test]
fn a_value_that_is_not_utf8_is_refused_by_name() {
    let test = stored(&[("BINARY", b"\xff\xfe binary")]);
    for format in ["shell", "dotenv", "json"] {
        test.run(["env", "--format", format])
            .expect_code(125)
            .stderr_has(&format!(
                "cannot print BINARY as {format}: its value is not valid UTF-8 text"
            ));
    }
}

#[test]
fn env_warns_when_stdout_is_a_terminal_unless_quiet() {
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "s", "t")]))
        .env("TOKEN", "from-ci");
    let shown = test.on_terminal("env", "", "");
    assert!(
        shown.contains("with-secrets: warning: printing secret values to the terminal"),
        "{shown}"
    );
    assert!(shown.contains("export TOKEN=from-ci"), "{shown}");
    let quiet = test.on_terminal("-q env", "", "");
    assert!(!quiet.contains("warning"), "{quiet}");
    // Piped, as `eval "$(with-secrets env)"` runs it: no warning.
    let piped = test.run(["env"]);
    piped.success();
    assert!(piped.stderr().is_empty(), "{}", piped.stderr());
}
