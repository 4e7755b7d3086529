//! The manifest's JSON Schema (schema/secrets.schema.json) against the
//! parser, with real validators: Taplo (`taplo check`, the engine of the
//! "Even Better TOML" editor extension) and Python's `jsonschema` over
//! `tomllib`. Every manifest the project shows or tests with validates; the
//! manifests the parser refuses fail validation too, except where a JSON
//! Schema cannot say the rule (`EXCLUDED`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use with_secrets::Manifest;

use crate::support::{BIN, Test, python, wait_for};

/// Where the schema is in the repository (the binary has it built in).
fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/secrets.schema.json")
}

/// The taplo-cli that scripts/test installs: `WITH_SECRETS_TEST_TAPLO`
/// (which scripts/test sets), else its place in the cache.
fn taplo() -> PathBuf {
    const CACHED: &str = "with-secrets-test/taplo-cli-0.10.0/bin/taplo";
    let path = std::env::var_os("WITH_SECRETS_TEST_TAPLO")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
            Some(cache.join(CACHED))
        });
    match path {
        Some(path) if path.exists() => path,
        _ => panic!(
            "taplo is missing: run ./scripts/test, which installs it in ~/.cache/{CACHED} \
             (or set WITH_SECRETS_TEST_TAPLO to its path)"
        ),
    }
}

/// A validator's verdict on one file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Valid,
    /// Not valid against the schema, with the validator's first message.
    Invalid(String),
    /// Not TOML at all (a syntax error, a key defined twice).
    NotToml,
}

impl Verdict {
    fn valid(&self) -> bool {
        *self == Self::Valid
    }
}

/// Python's jsonschema (Draft 4, as the schema says) over tomllib, for
/// each file in `argv[2:]`, one line each. JSON Schema's patterns are
/// ECMA-262's, where `$` is the end of the text; Python's `$` also matches
/// before a final newline, so each pattern's final `$` is given to Python
/// as `\Z`, its end of the text (Taplo's Rust regex reads `$` as ECMA-262
/// does). The validator itself is jsonschema's own.
const JSONSCHEMA: &str = r#"
import json, sys, tomllib
import jsonschema

def ecma(pattern):
    return pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern

def python_patterns(node):
    if isinstance(node, dict):
        return {
            key: (
                ecma(value) if key == "pattern" and isinstance(value, str)
                else {ecma(k): python_patterns(v) for k, v in value.items()}
                if key == "patternProperties" and isinstance(value, dict)
                else python_patterns(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [python_patterns(item) for item in node]
    return node

schema = json.load(open(sys.argv[1], encoding="utf-8"))
jsonschema.Draft4Validator.check_schema(schema)
validator = jsonschema.Draft4Validator(python_patterns(schema))
for path in sys.argv[2:]:
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        print("not-toml")
        continue
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        print("valid")
    else:
        print("invalid", json.dumps(error.message[:300]))
"#;

/// jsonschema's verdicts on `files`, in one Python process.
fn jsonschema_verdicts(files: &[PathBuf]) -> Vec<Verdict> {
    let mut command = Command::new(python());
    command
        .arg("-c")
        .arg(JSONSCHEMA)
        .arg(schema_path())
        .args(files)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = wait_for(command.spawn().expect("python"), Duration::from_secs(600));
    assert!(
        output.status.success(),
        "python jsonschema failed (pip install jsonschema==4.26.0 in the venv: ./scripts/test \
         does):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let verdicts: Vec<Verdict> = stdout
        .lines()
        .map(|line| match line.split_once(' ') {
            _ if line == "valid" => Verdict::Valid,
            _ if line == "not-toml" => Verdict::NotToml,
            Some(("invalid", message)) => Verdict::Invalid(message.to_owned()),
            _ => panic!("jsonschema said {line:?}"),
        })
        .collect();
    assert_eq!(verdicts.len(), files.len(), "{stdout}");
    verdicts
}

/// Taplo's verdicts on `files`, in one `taplo check --schema` (no
/// configuration file, no catalog, nothing from the network).
fn taplo_verdicts(files: &[PathBuf]) -> Vec<Verdict> {
    let schema = format!("file://{}", schema_path().display());
    let mut command = Command::new(taplo());
    command
        .args(["check", "--colors", "never", "--no-auto-config", "--schema"])
        .arg(&schema)
        .args(files)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = wait_for(command.spawn().expect("taplo"), Duration::from_secs(600));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // Each of a file's errors is a diagnostic: `error: MESSAGE`, then
    // `  ┌─ PATH:LINE:COLUMN`. Not taplo's closing log lines (`invalid file
    // ... path=...`), which it may lose at exit on a loaded machine; the
    // diagnostics are written as they come.
    let mut invalid_files = std::collections::HashMap::new();
    let mut message = None;
    for line in stderr.lines() {
        if let Some(text) = line.strip_prefix("error: ") {
            message = Some(text.to_owned());
        } else if let Some(place) = line.trim_start().strip_prefix("┌─ ")
            && let Some(message) = message.take()
        {
            let path = place.rsplitn(3, ':').nth(2).unwrap_or(place).to_owned();
            let verdict = if ["invalid TOML", "conflicting keys"].contains(&message.as_str()) {
                Verdict::NotToml
            } else {
                Verdict::Invalid(message)
            };
            invalid_files.entry(path).or_insert(verdict);
        }
    }
    let verdicts: Vec<Verdict> = files
        .iter()
        .map(|file| {
            invalid_files
                .remove(&file.display().to_string())
                .unwrap_or(Verdict::Valid)
        })
        .collect();
    assert!(
        invalid_files.is_empty(),
        "taplo named other files: {invalid_files:?}"
    );
    let invalid = verdicts.iter().filter(|v| !v.valid()).count();
    assert_eq!(
        output.status.success(),
        invalid == 0,
        "taplo's status and its files disagree:\n{stderr}"
    );
    verdicts
}

/// Writes each text to a file of its own in `dir`. A byte-order mark,
/// which the parser skips (editors on Windows write one), is left out:
/// tomllib and Taplo both read it as a syntax error, a matter of TOML
/// readers, not of the schema.
fn write_all(dir: &Path, texts: &[String]) -> Vec<PathBuf> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let path = dir.join(format!("m{i:05}.toml"));
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            std::fs::write(&path, text).expect("write manifest");
            path
        })
        .collect()
}

fn parses(text: &str) -> Result<(), String> {
    Manifest::parse(Path::new("secrets.toml"), text)
        .map(drop)
        .map_err(|err| err.to_string())
}

/// The rules a JSON Schema cannot say, by the parser's message: a manifest
/// refused for one of them may validate. Each is about more than one place
/// at once, or about the file rather than its data.
const EXCLUDED: &[(&str, &str)] = &[
    (
        "with different `generate` rules",
        "one keyring item given two `generate` rules, by two names, in [secrets] or in a \
         profile's view of it (which mixes [secrets], the profile's entries, and both \
         [defaults]): a comparison of values across entries, which draft 4 cannot make",
    ),
    (
        "the manifest is larger than 1 MiB",
        "the size of the file, not its data",
    ),
];

fn excluded(message: &str) -> bool {
    EXCLUDED.iter().any(|(needle, _)| message.contains(needle))
}

/// The ```toml blocks of README that are manifests (not the .taplo.toml).
fn readme_manifests() -> Vec<String> {
    let readme = include_str!("../README.md");
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line == "```toml" {
            let block: Vec<&str> = lines.by_ref().take_while(|line| *line != "```").collect();
            blocks.push(block.join("\n") + "\n");
        }
    }
    blocks.retain(|block| !block.contains("[[rule]]"));
    assert!(blocks.len() >= 4, "{blocks:?}");
    blocks
}

/// Every secrets.toml under examples/, and secrets.example.toml.
fn example_manifests() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.file_name().is_some_and(|name| name == "secrets.toml") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = vec![root.join("secrets.example.toml")];
    walk(&root.join("examples"), &mut paths);
    assert!(paths.len() >= 2, "{paths:?}");
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

/// The string literals of a Rust source: plain ones with their escapes
/// read, and raw ones.
fn string_literals(source: &str) -> Vec<String> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // A comment: to the end of the line.
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = source[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            // A character literal that is a quote, or a lifetime.
            b'\'' => {
                if source[i..].starts_with("'\"'") {
                    i += 3;
                } else if source[i..].starts_with("'\\\"'") || source[i..].starts_with("'\\''") {
                    i += 4;
                } else {
                    i += 1;
                }
            }
            b'r' if !bytes[i.saturating_sub(1)].is_ascii_alphanumeric()
                && matches!(bytes.get(i + 1), Some(b'"' | b'#')) =>
            {
                let hashes = source[i + 1..].bytes().take_while(|b| *b == b'#').count();
                let open = i + 1 + hashes;
                if bytes.get(open) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let end = source[open + 1..]
                    .find(&close)
                    .map_or(bytes.len(), |n| open + 1 + n);
                out.push(source[open + 1..end].to_owned());
                i = end + close.len();
            }
            b'"' => {
                let mut text = String::new();
                let mut chars = source[i + 1..].char_indices();
                let mut end = bytes.len();
                while let Some((at, c)) = chars.next() {
                    match c {
                        '"' => {
                            end = i + 1 + at + 1;
                            break;
                        }
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => text.push('\n'),
                            Some('r') => text.push('\r'),
                            Some('t') => text.push('\t'),
                            Some('0') => text.push('\0'),
                            Some('u') => {
                                let hex: String = chars
                                    .by_ref()
                                    .map(|(_, c)| c)
                                    .skip(1)
                                    .take_while(|c| *c != '}')
                                    .collect();
                                let code = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                                text.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            }
                            Some('\n') => {
                                // A continued line: its leading blanks go.
                                let rest = chars.as_str();
                                let blanks = rest.len() - rest.trim_start().len();
                                for _ in 0..rest[..blanks].chars().count() {
                                    chars.next();
                                }
                            }
                            Some(c) => text.push(c),
                            None => {}
                        },
                        c => text.push(c),
                    }
                }
                out.push(text);
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

/// The manifests the tests use that the parser accepts: each string
/// literal of tests/ and of src/ that has a manifest's table or key, as it
/// is and with a format string's `{{` `}}` read as `{` `}`.
fn fixture_manifests() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    walk(&root.join("tests"), &mut sources);
    walk(&root.join("src"), &mut sources);
    let mut found = BTreeSet::new();
    for source in sources {
        let text = std::fs::read_to_string(&source).unwrap();
        for literal in string_literals(&text) {
            let manifest_like = [
                "[secrets]",
                "[defaults]",
                "[profiles.",
                "[vault]",
                "store =",
            ]
            .iter()
            .any(|table| literal.contains(table));
            if !manifest_like {
                continue;
            }
            for text in [
                literal.clone(),
                literal.replace("{{", "{").replace("}}", "}"),
            ] {
                if parses(&text).is_ok() {
                    found.insert(text);
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Both validators' verdicts on `texts`.
fn verdicts(texts: &[String]) -> (Vec<Verdict>, Vec<Verdict>) {
    let dir = tempfile::tempdir().unwrap();
    let files = write_all(dir.path(), texts);
    (jsonschema_verdicts(&files), taplo_verdicts(&files))
}

#[test]
fn every_manifest_the_project_shows_or_tests_with_validates() {
    let mut texts = Vec::new();
    for block in readme_manifests() {
        parses(&block).unwrap_or_else(|err| panic!("README's block does not parse: {err}"));
        texts.push(block);
    }
    for (path, text) in example_manifests() {
        parses(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        texts.push(text);
    }
    let shown = texts.len();
    let fixtures = fixture_manifests();
    // The scan finds the tests' manifests, not a handful of strings.
    assert!(fixtures.len() >= 40, "only {} fixtures", fixtures.len());
    eprintln!(
        "{shown} manifests of README and the examples, {} of the tests",
        fixtures.len()
    );
    texts.extend(fixtures);
    let (python, taplo) = verdicts(&texts);
    let mut failures = Vec::new();
    for ((text, python), taplo) in texts.iter().zip(&python).zip(&taplo) {
        if !python.valid() || !taplo.valid() {
            failures.push(format!(
                "jsonschema: {python:?}\ntaplo: {taplo:?}\n{text}\n"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} manifests the parser accepts do not validate:\n{}",
        failures.len(),
        texts.len(),
        failures.join("\n")
    );
}

/// Whether the parser refuses `text`, and for a rule the schema says.
fn refused_for_a_schema_rule(text: &str) -> bool {
    match parses(text) {
        Ok(()) => false,
        Err(message) => !excluded(&message),
    }
}

#[test]
fn manifests_the_parser_refuses_fail_validation_too() {
    let entry =
        |fields: &str| format!("[secrets]\nA = {{ service = \"s\", username = \"u\"{fields} }}\n");
    let named =
        |name: &str| format!("[secrets]\n{name} = {{ service = \"s\", username = \"u\" }}\n");
    let profile = |name: &str| format!("[profiles.{name}]\nstore = \"file\"\n");
    let mut cases: Vec<(&str, String)> = vec![
        // Unknown keys, in each table.
        ("unknown table", "[secret]\n".into()),
        ("unknown top-level key", "storage = \"file\"\n".into()),
        (
            "a value at the top level",
            "token = \"sk-live-123\"\n".into(),
        ),
        ("unknown entry key", entry(", servce = \"x\"")),
        ("a value in an entry", entry(", password = \"hunter2\"")),
        (
            "unknown key in [defaults]",
            "[defaults]\nservice = \"s\"\nusername = \"u\"\n".into(),
        ),
        ("unknown key in [vault]", "[vault]\nmuont = \"kv\"\n".into()),
        (
            "unknown key in a profile",
            "[profiles.ci]\nsecret = \"x\"\n".into(),
        ),
        (
            "unknown key in generate",
            entry(", generate = { lenght = 20 }"),
        ),
        // Wrong types.
        ("an entry that is a number", "[secrets]\nA = 3\n".into()),
        ("optional as a string", entry(", optional = \"yes\"")),
        ("description as a number", entry(", description = 3")),
        ("generate as a string", entry(", generate = \"yes\"")),
        ("length as a float", entry(", generate = { length = 20.5 }")),
        (
            "length as a string",
            entry(", generate = { length = \"20\" }"),
        ),
        ("[secrets] as a number", "secrets = 3\n".into()),
        ("[vault] as a number", "vault = 1\n".into()),
        ("[profiles] as a string", "profiles = \"ci\"\n".into()),
        ("store as a number", "store = 3\n".into()),
        (
            "[defaults] service as an array",
            "[defaults]\nservice = []\n".into(),
        ),
        ("mount as a number", "[vault]\nmount = 3\n".into()),
        // Empty or missing service and username.
        (
            "empty service",
            "[secrets]\nA = { service = \"\", username = \"u\" }\n".into(),
        ),
        (
            "empty username",
            "[secrets]\nA = { service = \"s\", username = \"\" }\n".into(),
        ),
        (
            "empty [defaults] service",
            "[defaults]\nservice = \"\"\n".into(),
        ),
        ("no username", "[secrets]\nA = { service = \"s\" }\n".into()),
        (
            "no service and no [defaults]",
            "[secrets]\nA = { username = \"u\" }\n".into(),
        ),
        (
            "no service in a profile, no [defaults]",
            "[profiles.ci.secrets]\nA = { username = \"u\" }\n".into(),
        ),
        (
            "a [defaults] with no service",
            "[defaults]\n[secrets]\nA = { username = \"u\" }\n".into(),
        ),
        // A value pasted in as a string.
        (
            "a value pasted as a string",
            "[secrets]\nAPI_TOKEN = \"sk-live-123\"\n".into(),
        ),
        (
            "a value pasted in a profile",
            "[profiles.ci.secrets]\nAPI_TOKEN = \"sk-live-123\"\n".into(),
        ),
        // Bad names.
        ("a name starting with a digit", named("1ABC")),
        ("a name with a dash", named("A-B")),
        ("a name with a space", named("\"A B\"")),
        ("an empty name", named("\"\"")),
        ("a name with a non-ASCII letter", named("\"É\"")),
        ("a name ending in a newline", named("\"A\\n\"")),
        // Bad profile names, and too many profiles.
        ("a profile name with a space", profile("\"a b\"")),
        ("an empty profile name", profile("\"\"")),
        ("a profile name of 65 characters", profile(&"p".repeat(65))),
        ("a profile name with a dot", profile("\"a.b\"")),
        (
            "65 profiles",
            (0..65).map(|i| format!("[profiles.p{i}]\n")).collect(),
        ),
        // generate's rule.
        ("length 15", entry(", generate = { length = 15 }")),
        ("length 4097", entry(", generate = { length = 4097 }")),
        ("length -1", entry(", generate = { length = -1 }")),
        (
            "an unknown charset",
            entry(", generate = { charset = \"base64\" }"),
        ),
        (
            "generate with optional",
            entry(", optional = true, generate = true"),
        ),
        (
            "a generate table with optional",
            entry(", optional = true, generate = {}"),
        ),
        // Stores.
        ("an unknown store", "store = \"consul\"\n".into()),
        (
            "an unknown profile store",
            "[profiles.ci]\nstore = \"consul\"\n".into(),
        ),
        // [vault].
        ("an empty mount", "[vault]\nmount = \"\"\n".into()),
        ("a mount of slashes", "[vault]\nmount = \"//\"\n".into()),
        ("a mount with ..", "[vault]\nmount = \"a/../b\"\n".into()),
        (
            "a prefix with an empty part",
            "[vault]\nprefix = \"a//b\"\n".into(),
        ),
        ("a prefix with a ?", "[vault]\nprefix = \"a?b\"\n".into()),
        (
            "a prefix with a control character",
            "[vault]\nprefix = \"a\\u0007b\"\n".into(),
        ),
    ];
    // The one rule the schema cannot say stays out, checked as such.
    let clash = "[secrets]\nA = { service = \"s\", username = \"u\", generate = true }\n\
                 B = { service = \"s\", username = \"u\", generate = { length = 20 } }\n";
    assert!(parses(clash).is_err() && !refused_for_a_schema_rule(clash));
    for (what, text) in &cases {
        assert!(
            refused_for_a_schema_rule(text),
            "the parser takes {what}:\n{text}"
        );
    }
    cases.push(("valid, as a control", entry(", generate = { length = 16 }")));
    let texts: Vec<String> = cases.iter().map(|(_, text)| text.clone()).collect();
    let (python, taplo) = verdicts(&texts);
    let mut failures = Vec::new();
    for (((what, text), python), taplo) in cases.iter().zip(&python).zip(&taplo) {
        let expected = *what == "valid, as a control";
        // A refusal must be the schema's, not a syntax error.
        let schema_refused = |v: &Verdict| matches!(v, Verdict::Invalid(_));
        for (validator, verdict) in [("jsonschema", python), ("taplo", taplo)] {
            if verdict.valid() != expected || (!expected && !schema_refused(verdict)) {
                failures.push(format!("{validator} on {what}: {verdict:?}\n{text}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` as a TOML key: bare where it can be.
fn toml_key(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        text.to_owned()
    } else {
        toml_string(text)
    }
}

// What the property test draws from: each slot's choices, the valid ones
// first (`Slot::valid` of them), so that a manifest is mostly valid with a
// mutation or two. `None` leaves the key out; a choice is the TOML of its
// value. Invalid names, profile names and whole-entry forms are drawn the
// same way.
struct Slot<T: 'static> {
    choices: &'static [T],
    valid: usize,
}

impl<T> Slot<T> {
    /// An index into `choices`: mostly a valid one.
    fn strategy(&self) -> proptest::strategy::BoxedStrategy<usize> {
        proptest::prop_oneof![10 => 0..self.valid, 1 => 0..self.choices.len()].boxed()
    }
}

/// An entry's name: mostly `N{position}` (unique in its table); else a
/// valid name that may repeat (a TOML error then), or an invalid one.
const NAMES: Slot<&str> = Slot {
    choices: &[
        "",
        "API_TOKEN",
        "_x",
        "1A",
        "A-B",
        "A B",
        "",
        "É",
        "A\n",
        "A=B",
    ],
    valid: 1,
};
const SERVICES: Slot<Option<&str>> = Slot {
    choices: &[Some("\"s\""), Some("\"t\""), None, Some("\"\""), Some("3")],
    valid: 3,
};
const USERNAMES: Slot<Option<&str>> = Slot {
    choices: &[
        Some("\"u\""),
        Some("\"v\""),
        None,
        Some("\"\""),
        Some("true"),
    ],
    valid: 2,
};
const OPTIONALS: Slot<Option<&str>> = Slot {
    choices: &[None, Some("false"), Some("true"), Some("\"yes\"")],
    valid: 3,
};
const DESCRIPTIONS: Slot<Option<&str>> = Slot {
    choices: &[None, Some("\"d\""), Some("\"\""), Some("1")],
    valid: 3,
};
const GENERATES: Slot<Option<&str>> = Slot {
    choices: &[
        None,
        Some("true"),
        Some("false"),
        Some("{}"),
        Some("{ length = 16 }"),
        Some("{ length = 4096, charset = \"base64url\" }"),
        Some("{ length = 0x20 }"),
        Some("{ charset = \"hex\" }"),
        Some("{ length = 15 }"),
        Some("{ length = 4097 }"),
        Some("{ length = -16 }"),
        Some("{ length = 20.0 }"),
        Some("{ charset = \"base64\" }"),
        Some("{ charset = 1 }"),
        Some("{ lenght = 20 }"),
        Some("\"yes\""),
    ],
    valid: 8,
};
const EXTRAS: Slot<Option<&str>> = Slot {
    choices: &[
        None,
        Some("token = \"sk-1\""),
        Some("servce = \"x\""),
        Some("user = \"u\""),
    ],
    valid: 1,
};
/// An entry is a table, or a value pasted in as a string, or a number.
const FORMS: Slot<()> = Slot {
    choices: &[(), (), ()],
    valid: 1,
};
const STORES: Slot<Option<&str>> = Slot {
    choices: &[
        None,
        Some("\"file\""),
        Some("\"openbao\""),
        Some("\"vault\""),
        Some("\"keyrings-alt\""),
        Some("\"consul\""),
        Some("\"File\""),
        Some("3"),
        Some("\"\""),
    ],
    valid: 5,
};
const DEFAULTS: Slot<Option<&str>> = Slot {
    choices: &[
        None,
        Some("service = \"s\""),
        Some("service = \"t\""),
        Some(""),
        Some("service = \"\""),
        Some("service = 3"),
        Some("service = \"s\"\ntoken = \"x\""),
    ],
    valid: 4,
};
const VAULTS: Slot<Option<&str>> = Slot {
    choices: &[
        None,
        Some(""),
        Some("mount = \"kv\""),
        Some("mount = \"/kv/\""),
        Some("mount = \".x\""),
        Some("prefix = \"team/apps\""),
        Some("prefix = \"/\""),
        Some("prefix = \"...\""),
        Some("mount = \"\""),
        Some("mount = \"/\""),
        Some("mount = \"a/../b\""),
        Some("prefix = \"a//b\""),
        Some("prefix = \"x?y\""),
        Some("prefix = \"./x\""),
        Some("muont = \"kv\""),
        Some("mount = 1"),
    ],
    valid: 8,
};
/// A profile's name: mostly `p-{position}` (unique); else a valid name
/// that may repeat (a TOML error then), or an invalid one.
const PROFILE_NAMES: Slot<&str> = Slot {
    choices: &[
        "",
        "ci",
        "a b",
        "",
        "é",
        "a.b",
        "x!",
        "p_1",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
    ],
    valid: 1,
};
const PROFILE_EXTRAS: Slot<Option<&str>> = Slot {
    choices: &[
        None,
        Some("token = \"x\""),
        Some("x = 1"),
        Some("secret = {}"),
    ],
    valid: 1,
};
const TOP_EXTRAS: Slot<Option<&str>> = Slot {
    choices: &[
        None,
        Some("secret = \"x\""),
        Some("store_ = 1"),
        Some("password = \"x\""),
    ],
    valid: 1,
};

/// One entry, as indices into the slots above: name, service, username,
/// optional, description, generate, extra key, form.
type DrawnEntry = (usize, usize, usize, usize, usize, usize, usize, usize);

fn entry_strategy() -> impl Strategy<Value = DrawnEntry> {
    (
        NAMES.strategy(),
        SERVICES.strategy(),
        USERNAMES.strategy(),
        OPTIONALS.strategy(),
        DESCRIPTIONS.strategy(),
        GENERATES.strategy(),
        EXTRAS.strategy(),
        FORMS.strategy(),
    )
}

/// The entry at `position` in its table.
fn entry_line(position: usize, drawn: &DrawnEntry) -> String {
    let &(name, service, username, optional, description, generate, extra, form) = drawn;
    let name = match name {
        0 => format!("N{position}"),
        other => toml_key(NAMES.choices[other]),
    };
    match form {
        1 => return format!("{name} = \"sk-live-123\"\n"),
        2 => return format!("{name} = 3\n"),
        _ => {}
    }
    let fields: Vec<String> = [
        ("service", SERVICES.choices[service]),
        ("username", USERNAMES.choices[username]),
        ("optional", OPTIONALS.choices[optional]),
        ("description", DESCRIPTIONS.choices[description]),
        ("generate", GENERATES.choices[generate]),
    ]
    .iter()
    .filter_map(|(key, value)| value.map(|value| format!("{key} = {value}")))
    .chain(EXTRAS.choices[extra].map(str::to_owned))
    .collect();
    format!("{name} = {{ {} }}\n", fields.join(", "))
}

/// A profile: name, store, defaults, extra key, entries.
type DrawnProfile = (usize, usize, usize, usize, Vec<DrawnEntry>);

/// A manifest: store, extra top-level key, defaults, vault, entries,
/// profiles, and a count of empty profiles to add (to cross the limit).
type DrawnManifest = (
    usize,
    usize,
    usize,
    usize,
    Vec<DrawnEntry>,
    Vec<DrawnProfile>,
    usize,
);

fn manifest_strategy() -> impl Strategy<Value = DrawnManifest> {
    let profile = (
        PROFILE_NAMES.strategy(),
        STORES.strategy(),
        DEFAULTS.strategy(),
        PROFILE_EXTRAS.strategy(),
        proptest::collection::vec(entry_strategy(), 0..3),
    );
    (
        STORES.strategy(),
        TOP_EXTRAS.strategy(),
        DEFAULTS.strategy(),
        VAULTS.strategy(),
        proptest::collection::vec(entry_strategy(), 0..4),
        proptest::collection::vec(profile, 0..3),
        proptest::sample::select(vec![0usize, 0, 0, 0, 0, 0, 0, 0, 62, 63]),
    )
}

fn manifest_text(drawn: &DrawnManifest) -> String {
    let (store, extra, defaults, vault, entries, profiles, padding) = drawn;
    let mut text = String::new();
    if let Some(store) = STORES.choices[*store] {
        text.push_str(&format!("store = {store}\n"));
    }
    if let Some(extra) = TOP_EXTRAS.choices[*extra] {
        text.push_str(&format!("{extra}\n"));
    }
    if let Some(defaults) = DEFAULTS.choices[*defaults] {
        text.push_str(&format!("[defaults]\n{defaults}\n"));
    }
    if let Some(vault) = VAULTS.choices[*vault] {
        text.push_str(&format!("[vault]\n{vault}\n"));
    }
    text.push_str("[secrets]\n");
    for (position, entry) in entries.iter().enumerate() {
        text.push_str(&entry_line(position, entry));
    }
    for (position, (name, store, defaults, extra, entries)) in profiles.iter().enumerate() {
        let name = match name {
            0 => format!("p-{position}"),
            other => toml_key(PROFILE_NAMES.choices[*other]),
        };
        text.push_str(&format!("[profiles.{name}]\n"));
        if let Some(store) = STORES.choices[*store] {
            text.push_str(&format!("store = {store}\n"));
        }
        if let Some(extra) = PROFILE_EXTRAS.choices[*extra] {
            text.push_str(&format!("{extra}\n"));
        }
        if let Some(defaults) = DEFAULTS.choices[*defaults] {
            text.push_str(&format!("[profiles.{name}.defaults]\n{defaults}\n"));
        }
        text.push_str(&format!("[profiles.{name}.secrets]\n"));
        for (position, entry) in entries.iter().enumerate() {
            text.push_str(&entry_line(position, entry));
        }
    }
    for i in 0..*padding {
        text.push_str(&format!("[profiles.pad{i}]\n"));
    }
    text
}

/// How many manifests the property test draws: all validated in one
/// Python process and one `taplo check`.
const CASES: usize = 3000;

#[test]
fn the_parser_and_the_schema_agree_on_drawn_manifests() {
    let mut runner = proptest::test_runner::TestRunner::default();
    let strategy = manifest_strategy();
    let texts: Vec<String> = (0..CASES)
        .map(|_| manifest_text(&strategy.new_tree(&mut runner).unwrap().current()))
        .collect();
    let parsed: Vec<Result<(), String>> = texts.iter().map(|text| parses(text)).collect();
    let start = std::time::Instant::now();
    let (python, taplo) = verdicts(&texts);
    eprintln!("validated in {:?}", start.elapsed());
    let (mut accepted, mut refused, mut not_toml, mut left_out) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (((text, parsed), python), taplo) in texts.iter().zip(&parsed).zip(&python).zip(&taplo) {
        match parsed {
            Err(message) if excluded(message) => {
                left_out += 1;
                continue;
            }
            Ok(()) => accepted += 1,
            Err(_) if *python == Verdict::NotToml => not_toml += 1,
            Err(_) => refused += 1,
        }
        for (validator, verdict) in [("jsonschema", python), ("taplo", taplo)] {
            if verdict.valid() != parsed.is_ok() {
                failures.push(format!(
                    "{validator}: {verdict:?}; parser: {parsed:?}\n{text}"
                ));
            }
        }
    }
    eprintln!(
        "{CASES} manifests: {accepted} accepted, {refused} refused by a rule of the schema, \
         {not_toml} not TOML, {left_out} left out (a rule the schema cannot say)"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The draw meets both verdicts often, and the rule left out.
    assert!(
        accepted >= CASES / 10 && refused >= CASES / 3,
        "{accepted} {refused}"
    );
    assert!(left_out >= 1, "{left_out}");
}

/// A manifest for Taplo: `directive` first, then an entry with a key
/// the schema refuses (`servce`) if `bad`.
fn for_taplo(directive: &str, bad: bool) -> String {
    let extra = if bad { ", servce = \"x\"" } else { "" };
    format!("{directive}[secrets]\nA = {{ service = \"s\", username = \"u\"{extra} }}\n")
}

#[test]
fn init_writes_the_schema_beside_the_manifest_where_taplo_finds_it() {
    let bin_dir = Path::new(BIN).parent().unwrap().to_owned();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let test = Test::new().env("PATH", path).cwd("project");
    let project = test.path().join("project");
    std::fs::create_dir(test.path().join("elsewhere")).unwrap();
    test.run(["init", "API_TOKEN"])
        .success()
        .stderr_has("secrets.schema.json (the manifest's schema, for editors)");
    let schema = std::fs::read_to_string(schema_path()).unwrap();
    let written = std::fs::read_to_string(project.join("secrets.schema.json")).unwrap();
    assert_eq!(written, schema);
    let manifest = std::fs::read_to_string(project.join("secrets.toml")).unwrap();
    assert!(
        manifest.starts_with("#:schema ./secrets.schema.json\n"),
        "{manifest}"
    );
    test.run(["schema"]).success().stdout_is(&schema);

    // Taplo reads the directive's path relative to the manifest, not to
    // the folder it runs in: run from another one, with no --schema, it
    // takes the manifest init wrote and refuses a key the schema lacks.
    let taplo = taplo();
    let check =
        |file: &str| test.outside(&taplo, &["check", "--colors", "never", file], "elsewhere");
    let (ok, output) = check("../project/secrets.toml");
    assert!(ok, "{output}");
    std::fs::write(
        project.join("bad.toml"),
        for_taplo("#:schema ./secrets.schema.json\n", true),
    )
    .unwrap();
    let (ok, output) = check("../project/bad.toml");
    assert!(
        !ok && output.contains("'servce' was unexpected"),
        "{output}"
    );
    // Where there is no schema beside the file, that is an error, not a pass.
    std::fs::write(
        test.path().join("elsewhere/secrets.toml"),
        for_taplo("#:schema ./secrets.schema.json\n", false),
    )
    .unwrap();
    // (Only the status says so: taplo may lose its last log lines, which
    // say why, at exit on a loaded machine.)
    let (ok, output) = check("secrets.toml");
    assert!(!ok, "{output}");

    // init never overwrites a schema that is there; one that differs gets
    // the line that refreshes it, which works as printed.
    std::fs::remove_file(project.join("secrets.toml")).unwrap();
    test.run(["init"]).success().stderr_lacks("schema");
    std::fs::remove_file(project.join("secrets.toml")).unwrap();
    std::fs::write(project.join("secrets.schema.json"), "{}").unwrap();
    let run = test.run(["init"]);
    run.success();
    assert_eq!(
        std::fs::read_to_string(project.join("secrets.schema.json")).unwrap(),
        "{}"
    );
    let stderr = run.stderr();
    let (_, fix) = stderr
        .split_once("is there and is not this version's schema; refresh it with: ")
        .unwrap_or_else(|| panic!("{stderr}"));
    let (ok, output) = test.outside("sh", &["-c", fix.trim_end()], "project");
    assert!(ok, "{output}");
    assert_eq!(
        std::fs::read_to_string(project.join("secrets.schema.json")).unwrap(),
        schema
    );
}

/// The `.taplo.toml` README gives, verbatim.
fn readme_taplo_config() -> String {
    let readme = include_str!("../README.md");
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line == "```toml" {
            let block: Vec<&str> = lines.by_ref().take_while(|line| *line != "```").collect();
            if block.contains(&"[[rule]]") {
                return block.join("\n") + "\n";
            }
        }
    }
    panic!("README has no .taplo.toml block");
}

#[test]
fn readme_s_taplo_config_gives_every_secrets_toml_the_schema() {
    let test = Test::new()
        .file(".taplo.toml", readme_taplo_config())
        .file("secrets.schema.json", std::fs::read(schema_path()).unwrap())
        .file("secrets.toml", for_taplo("", false))
        .file("service/secrets.toml", for_taplo("", false))
        .file("other.toml", for_taplo("", true));
    let taplo = taplo();
    // Run at the project's root, where the config is: every secrets.toml
    // below is checked against the schema, and no other file.
    let (ok, output) = test.outside(&taplo, &["check", "--colors", "never"], "");
    assert!(ok, "{output}");
    let test = test.file("service/secrets.toml", for_taplo("", true));
    let (ok, output) = test.outside(&taplo, &["check", "--colors", "never"], "");
    assert!(
        !ok && output.contains("'servce' was unexpected"),
        "{output}"
    );
    assert!(output.contains("service/secrets.toml"), "{output}");
    assert!(!output.contains("other.toml:"), "{output}");
}
