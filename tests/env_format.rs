//! `with-secrets env`: every format gives each value back exactly, to the
//! readers it is for, or refuses it by name.

use std::collections::BTreeMap;
use std::process::Command;

use crate::ergonomics::stored;
use crate::support::{BIN, BoundedOutput, SecretService, Test, manifest_for};

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
        .bounded_output()
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
    // Bare when safe, as README says: letters, digits and `_@%+:,./-`;
    // anything else (here a `~` and a space) is single-quoted.
    service.store_foreign("s", "c", "c", "aZ9_@%+:,./-");
    service.store_foreign("s", "d", "d", "~x");
    service.store_foreign("s", "e", "e", "a b");
    Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[
            ("B", "s", "b"),
            ("A", "s", "a"),
            ("C", "s", "c"),
            ("D", "s", "d"),
            ("E", "s", "e"),
        ]))
        .run(["env"])
        .success()
        .stdout_is(
            "export B='it'\\''s'\nexport A=plain\nexport C=aZ9_@%+:,./-\n\
             export D='~x'\nexport E='a b'\n",
        );
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
    for format in ["shell", "dotenv", "docker", "json"] {
        let run = test.run(["env", "--format", format]);
        run.expect_code(125)
            .stderr_has("1 required secret is missing from secret-service and the environment")
            .stderr_has("with-secrets set API_TOKEN");
        assert!(run.stdout().is_empty(), "{}", run.stdout());
    }
}

/// Values a literal `.env` line can hold for both docker and python-dotenv: `=`, `#` without a space
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
fn docker_output_reads_back_alike_in_python_dotenv_and_by_docker_rules() {
    let test = stored(DOTENV_SAFE);
    let run = test.run(["env", "--format", "docker"]);
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
fn docker_refuses_a_value_with_a_newline_by_name() {
    let test = stored(&[("FINE", b"fine"), ("NOTE", b"two\nlines")]);
    let run = test.run(["env", "--format", "docker"]);
    run.expect_code(125)
        .stderr_has(
            "cannot print NOTE as docker: its value contains a line break, which docker's \
             --env-file cannot hold",
        )
        .stderr_has("use another --format")
        .never_shows("two");
    assert!(run.stdout().is_empty(), "nothing is half-printed");
}

#[test]
fn docker_refuses_values_that_python_dotenv_would_read_differently() {
    for (value, reason) in [
        (" padded ", "starts or ends with white space"),
        ("'quoted'", "starts with a quote"),
        ("value #not-a-comment", "has white space before a `#`"),
        ("${HOME}", "contains `${`"),
    ] {
        stored(&[("TRICKY", value.as_bytes())])
            .run(["env", "--format", "docker"])
            .expect_code(125)
            .stderr_has(&format!(
                "cannot print TRICKY as docker: its value {reason}"
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
    for format in ["shell", "dotenv", "docker", "json"] {
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

/// Values a `.env` file needs, which the three readers treat differently
/// unless quoted just so: a PEM key over lines, both kinds of quote, `$`
/// and backticks, white space around, a ` #`, backslashes, text that is
/// not ASCII, and nothing at all.
const DOTENV: &[(&str, &str)] = &[
    (
        "PEM",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n\
         -----END PRIVATE KEY-----\n",
    ),
    ("APOSTROPHE", "it's\non two lines"),
    ("DOUBLE", "say \"hi\" #not-a-comment"),
    ("DOLLAR", "$HOME $(id) `id` $$"),
    ("PADDED", "  padded\t "),
    ("WINDOWS_PATH", "C:\\Users\\me\\new"),
    ("UNICODE", "pä wörd ✓ 🎉 \u{a0}"),
    ("HASH", "#lead a#b"),
    ("EQUALS", "=a=b="),
    ("NEWLINES", "\n\nx\n\n"),
    ("PLAIN", "abc-123_./:@"),
    ("EMPTY", ""),
];

/// The folder of Node's dotenv package that scripts/test unpacks.
fn node_dotenv() -> std::path::PathBuf {
    let dir = std::env::var_os("WITH_SECRETS_TEST_NODE_DOTENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-node/dotenv-18.0.10")
        });
    assert!(
        dir.join("package.json").exists(),
        "{} is missing: run ./scripts/test, which unpacks Node's dotenv there",
        dir.display()
    );
    dir
}

/// What Node's dotenv reads from `file`, with its default parser or, with
/// `fast`, the other one it has.
fn node_reads(file: &std::path::Path, fast: bool) -> BTreeMap<String, String> {
    let script = "const dotenv = require(process.argv[1]);\n\
                  const text = require('fs').readFileSync(process.argv[2], 'utf8');\n\
                  const fast = process.argv[3] === 'fast';\n\
                  process.stdout.write(JSON.stringify(fast ? dotenv.parse(text, { fast: true }) : dotenv.parse(text)));";
    let output = Command::new("node")
        .args(["-e", script])
        .arg(node_dotenv())
        .arg(file)
        .arg(if fast { "fast" } else { "default" })
        .env_clear()
        .bounded_output()
        .expect("node (Debian package nodejs)");
    assert!(
        output.status.success(),
        "node: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// What python-dotenv reads from `file`, as `dotenv_values(PATH)` does.
fn python_reads(test: &Test, file: &std::path::Path) -> BTreeMap<String, String> {
    let output = test.python(
        &[
            "-c",
            "import json, sys, dotenv\n\
             print(json.dumps(dotenv.dotenv_values(sys.argv[1])))",
            &file.to_string_lossy(),
        ],
        "",
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Fails with the values `reader` read differently, if any, and no others.
#[track_caller]
fn same(reader: &str, read: &BTreeMap<String, String>, expected: &BTreeMap<String, String>) {
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(name, value)| read.get(*name) != Some(*value))
        .map(|(name, value)| format!("{name}: wrote {value:?}, read {:?}", read.get(name)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{reader} read back:\n{}",
        wrong.join("\n")
    );
    assert_eq!(read.len(), expected.len(), "{reader}: {read:?}");
}

/// What Rust's dotenvy reads from `file`.
fn dotenvy_reads(file: &std::path::Path) -> BTreeMap<String, String> {
    dotenvy::from_path_iter(file)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|err| panic!("dotenvy: {err}"))
}

#[test]
fn dotenv_output_reads_back_byte_for_byte_in_python_dotenv_dotenvy_and_node() {
    let values: Vec<(&str, &[u8])> = DOTENV.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let test = stored(&values);
    let run = test.run(["env", "--format", "dotenv"]);
    run.success();
    let text = run.stdout();
    // Quoted only where needed, single quotes first.
    assert!(text.contains("\nPLAIN=abc-123_./:@\n"), "{text}");
    assert!(text.contains("\nEMPTY=\n"), "{text}");
    assert!(
        text.starts_with("PEM='-----BEGIN PRIVATE KEY-----\n"),
        "{text}"
    );
    assert!(
        text.contains("\nAPOSTROPHE=\"it's\non two lines\"\n"),
        "{text}"
    );
    let file = test.path().join(".env");
    std::fs::write(&file, &text).unwrap();
    let expected: BTreeMap<String, String> = DOTENV
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    same("python-dotenv", &python_reads(&test, &file), &expected);
    same("dotenvy", &dotenvy_reads(&file), &expected);
    same("Node's dotenv", &node_reads(&file, false), &expected);
    same("Node's dotenv, fast", &node_reads(&file, true), &expected);
}

/// Values of 1 to 12 characters drawn from every character the three
/// readers treat specially (and a few plain ones), each printed by its own
/// run: each one printed must read back in all three readers, and each one
/// refused must be refused with one of the documented reasons.
#[test]
fn random_awkward_values_read_back_in_all_three_readers_or_are_refused() {
    // Backslashes and single quotes twice or more, as their rules are the
    // finest: some 9 values of 300 have a `\\\\` only a wrong rule would
    // print, 21 end with `\\`, 29 need double quotes.
    const ALPHABET: &[char] = &[
        'a', 'Z', ' ', '\t', '\n', '\r', '\'', '\'', '"', '`', '$', '{', '}', '#', '=', '\\', '\\',
        '\\', 'é', '\u{a0}', '\u{feff}', '\u{2028}', '\u{1}',
    ];
    const REASONS: [&str; 4] = [
        "contains a carriage return",
        "contains `${`",
        "contains a `'`, so it cannot be single-quoted",
        "contains `\\\\` or ends with `\\`",
    ];
    // A fixed xorshift, so that a failure is the same on every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % bound as u64).unwrap()
    };
    let test = Test::new().manifest(&manifest_for(&[("V", "s", "v")]));
    let mut text = String::new();
    let mut expected = BTreeMap::new();
    let mut refused = 0;
    for i in 0..300 {
        let value: String = (0..1 + next(10))
            .map(|_| ALPHABET[next(ALPHABET.len())])
            .collect();
        // The value from the environment (the CI fallback): no store needed.
        let run = test.run_env(&[("V", &value)], ["env", "--format", "dotenv"]);
        if run.code() == Some(125) {
            let stderr = run.stderr();
            let reason = stderr
                .strip_prefix("with-secrets: cannot print V as dotenv: its value ")
                .unwrap_or_else(|| panic!("{value:?}: {stderr}"));
            assert!(
                REASONS.iter().any(|known| reason.starts_with(known)),
                "{value:?}: {stderr}"
            );
            refused += 1;
            continue;
        }
        run.success();
        // Each run prints `V=...`; in the one file, each is V{i}.
        let line = run.stdout();
        text.push_str(&format!("V{i}{}", line.strip_prefix('V').unwrap()));
        expected.insert(format!("V{i}"), value);
    }
    assert!(
        refused < 200 && refused > 10,
        "{refused} of 300 refused: the alphabet no longer tests both sides"
    );
    let file = test.path().join(".env");
    std::fs::write(&file, &text).unwrap();
    same("python-dotenv", &python_reads(&test, &file), &expected);
    same("dotenvy", &dotenvy_reads(&file), &expected);
    same("Node's dotenv", &node_reads(&file, false), &expected);
    same("Node's dotenv, fast", &node_reads(&file, true), &expected);
}

#[test]
fn dotenv_refuses_by_name_what_no_quoting_gives_back_to_every_reader() {
    for (value, reason) in [
        (
            "${HOME}",
            "contains `${`, which python-dotenv expands however the value is quoted",
        ),
        (
            "it's $5",
            "contains a `'`, so it cannot be single-quoted, and a `\"`, `\\` or `$`",
        ),
        ("ends\\", "contains `\\\\` or ends with `\\`"),
        ("a\\\\b", "contains `\\\\` or ends with `\\`"),
        ("line\r\n", "contains a carriage return"),
    ] {
        let run = stored(&[("FINE", b"fine"), ("TRICKY", value.as_bytes())])
            .run(["env", "--format", "dotenv"]);
        run.expect_code(125)
            .stderr_has(&format!(
                "cannot print TRICKY as dotenv: its value {reason}"
            ))
            .stderr_has("use another --format")
            .never_shows(value);
        assert!(run.stdout().is_empty(), "nothing is half-printed");
    }
}
