//! `with-secrets env --format github`: what it appends to `$GITHUB_ENV`
//! reads back, by the runner's rules, as exactly each value, as what
//! `@actions/core`'s `exportVariable` writes does; and stdout holds only
//! `::add-mask::` commands, one for each line of each value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{SecretService, Test, manifest_for, wait};

/// Values that would break a naive writer or reader of the file: line
/// breaks of each kind, `=` and `<<` (the runner's two separators), a value
/// shaped like a delimiter, nothing at all, only line breaks, white-space
/// lines, `%` and `::` (the command syntax), and non-ASCII text.
const HOSTILE: &[(&str, &str)] = &[
    ("PLAIN", "plain-value"),
    ("NEWLINES", "line one\nline two\n"),
    ("CRLF", "crlf one\r\ncrlf two\r\nend"),
    ("LONE_CR", "a\rb"),
    ("EQUALS", "a=b==c="),
    ("HEREDOC", "X<<EOF\nEOF\n<<\n=<<"),
    (
        "DELIMITER",
        "ghadelimiter_00000000-0000-0000-0000-000000000000",
    ),
    ("DELIMITER_LINE", "x\nghadelimiter_\nEOF\n"),
    ("EMPTY", ""),
    ("ONLY_NEWLINES", "\n\n\n"),
    ("BLANK_LINES", "  \n\t\nword\n \n"),
    ("PERCENT", "100% %0A %0D %25 ::add-mask::x ::"),
    ("UNICODE", "pä$$ wörd ✓ 🎉 \u{2028} \u{feff}"),
    ("SPACES", "  padded  "),
];

/// The runner's reading of a `$GITHUB_ENV` file, ported from actions/runner
/// `SetEnvFileCommand.ProcessCommand` (src/Runner.Worker/FileCommandManager.cs):
/// lines split at `\n` (on Windows at `\r\n` too); empty lines skipped; a
/// line with `=` before any `<<` is `NAME=VALUE`; one with `<<` first is
/// `NAME<<DELIMITER` (both non-empty), and the value is the text after it up
/// to the line break before the first line that is exactly `DELIMITER`
/// (none is an error). Later settings win.
pub(crate) fn runner_reads(text: &str, windows: bool) -> Result<BTreeMap<String, String>, String> {
    // Each line: (its text, where it starts, where its break starts, where the next starts).
    let mut lines = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        match rest.find('\n') {
            None => {
                lines.push((rest, at, text.len(), text.len()));
                at = text.len();
            }
            Some(lf) => {
                let crlf = windows && lf > 0 && rest.as_bytes()[lf - 1] == b'\r';
                let end = if crlf { lf - 1 } else { lf };
                lines.push((&rest[..end], at, at + end, at + lf + 1));
                at += lf + 1;
            }
        }
    }
    let mut env = BTreeMap::new();
    let mut index = 0;
    while index < lines.len() {
        let (line, _, _, next) = lines[index];
        index += 1;
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line.find("<<");
        match (equals, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                env.insert(line[..e].to_owned(), line[e + 1..].to_owned());
            }
            (_, Some(h)) => {
                let (name, delimiter) = (&line[..h], &line[h + 2..]);
                if name.is_empty() || delimiter.is_empty() {
                    return Err(format!("name or delimiter empty: {line:?}"));
                }
                let start = next;
                let mut end = start;
                loop {
                    let Some(&(value_line, _, line_break, after)) = lines.get(index) else {
                        return Err(format!("no closing {delimiter:?}"));
                    };
                    index += 1;
                    if value_line == delimiter {
                        break;
                    }
                    end = line_break;
                    let _ = after;
                }
                env.insert(name.to_owned(), text[start..end.max(start)].to_owned());
            }
            _ => return Err(format!("invalid line {line:?}")),
        }
    }
    Ok(env)
}

/// The runner's unescaping of command data (actions/runner `ActionCommand`):
/// `%0D`, `%0A`, then `%25`, in that order.
fn unescape(data: &str) -> String {
    data.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%25", "%")
}

/// What the runner would mask for `values`: each line (split at `\r` and
/// `\n`) that is not white space only.
fn lines_to_mask<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut lines: Vec<String> = values
        .flat_map(|value| value.split(['\n', '\r']))
        .filter(|line| !line.chars().all(char::is_whitespace))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn hostile_project(service: &SecretService) -> Test {
    let triples: Vec<(&str, &str, String)> = HOSTILE
        .iter()
        .map(|(name, value)| {
            let username = name.to_lowercase();
            service.store_foreign("acme", &username, name, value);
            (*name, "acme", username)
        })
        .collect();
    let triples: Vec<(&str, &str, &str)> = triples
        .iter()
        .map(|(n, s, u)| (*n, *s, u.as_str()))
        .collect();
    Test::new()
        .keyring(service)
        .manifest(&manifest_for(&triples))
}

fn expected() -> BTreeMap<String, String> {
    HOSTILE
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// A `$GITHUB_ENV` file as the runner makes it for a step, with a line an
/// earlier command of the step wrote.
fn github_env_file(test: &Test) -> PathBuf {
    let path = test.path().join("set_env_1234");
    std::fs::write(&path, "EARLIER=kept\n").unwrap();
    path
}

#[test]
fn the_runner_reads_back_every_value_exactly_on_linux_and_windows() {
    let service = SecretService::start();
    let test = hostile_project(&service);
    let file = github_env_file(&test);
    let run = test.run_env(
        &[("GITHUB_ENV", file.to_str().unwrap())],
        ["env", "--format", "github"],
    );
    run.success();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut want = expected();
    want.insert("EARLIER".to_owned(), "kept".to_owned());
    for windows in [false, true] {
        assert_eq!(runner_reads(&text, windows).unwrap(), want, "{text:?}");
    }
    // Every value in the multi-line form, each with its own delimiter.
    let starts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("<<ghadelimiter_"))
        .collect();
    assert_eq!(starts.len(), HOSTILE.len(), "{text}");
    let mut delimiters: Vec<&str> = starts
        .iter()
        .map(|l| l.split_once("<<").unwrap().1)
        .collect();
    delimiters.sort_unstable();
    delimiters.dedup();
    assert_eq!(delimiters.len(), HOSTILE.len(), "{text}");
}

#[test]
fn stdout_is_only_mask_commands_one_for_every_line_of_every_value() {
    let service = SecretService::start();
    let test = hostile_project(&service);
    let file = github_env_file(&test);
    let run = test.run_env(
        &[("GITHUB_ENV", file.to_str().unwrap())],
        ["env", "--format", "gha"],
    );
    run.success();
    let stdout = run.stdout();
    assert!(stdout.is_empty() || stdout.ends_with('\n'));
    let mut masked: Vec<String> = stdout
        .lines()
        .map(|line| {
            let data = line
                .strip_prefix("::add-mask::")
                .unwrap_or_else(|| panic!("not a mask command: {line:?}"));
            // Nothing the runner would read as a second line.
            assert!(!data.contains(['\r', '\n']), "{line:?}");
            unescape(data)
        })
        .collect();
    masked.sort();
    assert_eq!(masked, lines_to_mask(HOSTILE.iter().map(|(_, v)| *v)));
}

/// Runs `script` (an ES module) with node, `input` on its stdin, and
/// `@actions/core`'s folder in $CORE; returns its stdout.
fn node(script: &str, input: &str, env: &[(&str, &Path)]) -> String {
    let core = std::env::var_os("WITH_SECRETS_TEST_ACTIONS_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-node/actions-core-3.0.1")
        });
    assert!(
        core.join("lib/file-command.js").is_file(),
        "{} is missing: run ./scripts/test, which fetches @actions/core",
        core.display()
    );
    let mut child = Command::new("node")
        .args(["--input-type=module", "-e", script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("CORE", &core)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = wait(child);
    assert!(
        output.status.success(),
        "node: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `exportVariable(name, value)` for each pair as `@actions/core` 3.0.1
/// does it where $GITHUB_ENV is set (its core.js, without the imports
/// that need its dependencies), and `setSecret(line)` for each line to mask.
const EXPORT: &str = r#"
import { readFileSync } from 'fs';
const core = process.env.CORE;
const { issueFileCommand, prepareKeyValueMessage } = await import(`${core}/lib/file-command.js`);
const { issueCommand } = await import(`${core}/lib/command.js`);
const { variables, masks } = JSON.parse(readFileSync(0, 'utf8'));
for (const line of masks) issueCommand('add-mask', {}, line);
for (const [name, value] of variables) issueFileCommand('ENV', prepareKeyValueMessage(name, value));
"#;

#[test]
fn actions_core_writes_what_the_same_reader_reads_as_with_secrets_output() {
    let service = SecretService::start();
    let test = hostile_project(&service);
    let ours = github_env_file(&test);
    let run = test.run_env(
        &[("GITHUB_ENV", ours.to_str().unwrap())],
        ["env", "--format", "github"],
    );
    run.success();
    let theirs = test.path().join("set_env_core");
    std::fs::write(&theirs, "EARLIER=kept\n").unwrap();
    let lines = lines_to_mask(HOSTILE.iter().map(|(_, v)| *v));
    let input = serde_json::json!({ "variables": HOSTILE, "masks": lines }).to_string();
    let core_stdout = node(EXPORT, &input, &[("GITHUB_ENV", &theirs)]);
    let ours_text = std::fs::read_to_string(&ours).unwrap();
    let theirs_text = std::fs::read_to_string(&theirs).unwrap();
    for windows in [false, true] {
        assert_eq!(
            runner_reads(&ours_text, windows).unwrap(),
            runner_reads(&theirs_text, windows).unwrap(),
            "ours:\n{ours_text:?}\ntheirs:\n{theirs_text:?}"
        );
    }
    // The same mask commands as its setSecret, escapes and all.
    let mut ours_masks: Vec<&str> = run
        .output
        .stdout
        .split(|b| *b == b'\n')
        .map(|l| std::str::from_utf8(l).unwrap())
        .filter(|l| !l.is_empty())
        .collect();
    let mut theirs_masks: Vec<&str> = core_stdout.lines().collect();
    ours_masks.sort_unstable();
    theirs_masks.sort_unstable();
    assert_eq!(ours_masks, theirs_masks);
}

#[test]
fn the_reader_follows_the_runners_rules() {
    // The runner's own L0 cases, in short: a plain line, a heredoc with
    // an empty line in it, `=` before `<<`, and errors.
    let read = |text: &str| runner_reads(text, false);
    assert_eq!(
        read("A=1\n\nB<<EOF\nx\n\ny\nEOF\nC=a<<b\n").unwrap(),
        BTreeMap::from([
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "x\n\ny".to_owned()),
            ("C".to_owned(), "a<<b".to_owned())
        ])
    );
    assert_eq!(read("E<<EOF\nEOF\n").unwrap()["E"], "");
    assert_eq!(read("E<<EOF\n\nEOF\n").unwrap()["E"], "");
    assert_eq!(read("E<<EOF\n\n\nEOF\n").unwrap()["E"], "\n");
    assert!(read("A<<EOF\nno end\n").is_err());
    assert!(read("<<EOF\nx\nEOF\n").is_err());
    assert!(read("JUNK\n").is_err());
    // Windows takes the \r of a final \r\n with the line break.
    assert_eq!(
        runner_reads("A<<E\r\nx\r\n\r\nE\r\n", true).unwrap()["A"],
        "x\r\n"
    );
    assert_eq!(runner_reads("A<<E\nx\r\nE\n", true).unwrap()["A"], "x");
    assert_eq!(runner_reads("A<<E\nx\r\nE\n", false).unwrap()["A"], "x\r");
}

#[test]
fn a_value_ending_in_a_carriage_return_is_refused_by_name_and_nothing_is_written() {
    let test = Test::new()
        .manifest(&manifest_for(&[("FIRST", "s", "a"), ("ENDS_CR", "s", "b")]))
        .env("WITH_SECRETS_STORE", "keyrings-alt")
        .env("FIRST", "first-canary-value")
        .env("ENDS_CR", "value\r");
    let file = github_env_file(&test);
    let run = test.run_env(
        &[("GITHUB_ENV", file.to_str().unwrap())],
        ["env", "--format", "github"],
    );
    run.expect_code(125)
        .stderr_has("cannot print ENDS_CR as github: its value ends with a carriage return")
        .never_shows("first-canary-value")
        .stdout_is("");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "EARLIER=kept\n");
}

#[test]
fn without_github_env_it_says_what_to_do_and_looks_nothing_up() {
    let test = Test::new()
        .manifest(&manifest_for(&[("A", "s", "a")]))
        .env("WITH_SECRETS_STORE", "keyrings-alt")
        .env("A", "a-canary-value");
    for env in [&[][..], &[("GITHUB_ENV", "")]] {
        test.run_env(env, ["env", "--format", "github"])
            .expect_code(125)
            .stderr_has("GITHUB_ENV is not set")
            .stderr_has("use another format, e.g.: with-secrets env --format dotenv")
            .stdout_is("");
    }
    let missing = test.path().join("no-such-file");
    test.run_env(
        &[("GITHUB_ENV", missing.to_str().unwrap())],
        ["env", "--format", "github"],
    )
    .expect_code(125)
    .stderr_has("cannot append to")
    .stderr_has("no-such-file")
    .never_shows("a-canary-value")
    .stdout_is("");
    assert!(!missing.exists());
}
