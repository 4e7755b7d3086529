//! examples/github-actions/workflow.yml, checked as far as can be without
//! GitHub: it is valid YAML (PyYAML), every with-secrets line in it parses
//! with the real binary, every secret it maps is in the manifest it ships
//! (or is the vault store's connection), and the with-secrets steps of each
//! job, run here under bash as the runner runs them, do what its comments
//! say: with the environment fallback, an OpenBao dev server, and a
//! `$GITHUB_ENV` file read back by the runner's rules for the later steps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::check_json::validated;
use crate::github_env::runner_reads;
use crate::support::bao::Bao;
use crate::support::{BIN, BoundedOutput, Test};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/github-actions")
        .join(name)
}

/// The workflow as PyYAML reads it, as JSON. (YAML 1.1 reads the key `on`
/// as `true`, as PyYAML does; GitHub reads it as `on`. Nothing here uses it.)
fn workflow() -> Value {
    let output = Test::new().python(
        &[
            "-c",
            "import json, sys, yaml\n\
             print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))))",
            example("workflow.yml").to_str().unwrap(),
        ],
        "",
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn jobs() -> serde_json::Map<String, Value> {
    workflow()["jobs"].as_object().unwrap().clone()
}

/// Every with-secrets command line of the workflow's `run:` scripts, as
/// words, up to `--` (the command it runs) or a shell operator; `--` and
/// `true` stand for the command, when there is one.
fn with_secrets_lines() -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    for job in jobs().values() {
        for step in job["steps"].as_array().unwrap() {
            let Some(run) = step["run"].as_str() else {
                continue;
            };
            for line in run.lines().map(str::trim) {
                if !line.starts_with("with-secrets") {
                    // The install step, which run_job checks is this line.
                    let install = "cargo install --locked --path tools/with-secrets";
                    assert!(
                        line == install || !line.contains("with-secrets"),
                        "not checked: {line}"
                    );
                    continue;
                }
                let all = shell_words::split(line).unwrap();
                let mut words: Vec<String> = all
                    .iter()
                    .take_while(|word| {
                        *word != "--" && !word.starts_with(['>', '<', '|', '&', ';'])
                    })
                    .cloned()
                    .collect();
                if all.get(words.len()).is_some_and(|word| word == "--") {
                    words.extend(["--".to_owned(), "true".to_owned()]);
                }
                lines.push(words);
            }
        }
    }
    lines
}

/// Whether the binary's own parser takes `words` (after `with-secrets`).
/// `--help` appended ends the parse with exit 0 only if every subcommand,
/// option and value before it exists; but clap checks the values of global
/// options (`--store`) only after that, so the line is also run for real,
/// against a manifest with no entries (nothing is looked up, `check` and
/// `env` exit 0), where any usage error is exit 125 with clap's `error:`.
fn parses(words: &[String]) -> bool {
    let options = words.split(|word| word == "--").next().unwrap();
    let help = Command::new(BIN)
        .args(options)
        .arg("--help")
        .env_clear()
        .stdin(Stdio::null())
        .bounded_output()
        .unwrap();
    let test = Test::new().manifest("[secrets]\n").file("set_env_1", "");
    let run = test.run_env(
        &[(
            "GITHUB_ENV",
            test.path().join("set_env_1").to_str().unwrap(),
        )],
        words,
    );
    help.status.success() && run.code() == Some(0)
}

#[test]
fn the_workflow_is_yaml_and_every_with_secrets_line_parses_with_the_real_binary() {
    let lines = with_secrets_lines();
    assert!(lines.len() >= 6, "{lines:?}");
    for words in &lines {
        assert_eq!(words[0], "with-secrets");
        assert!(parses(&words[1..]), "does not parse: {words:?}");
    }
    let used: Vec<String> = lines.iter().map(|w| w.join(" ")).collect();
    for needed in [
        "with-secrets check",
        "with-secrets check --format json",
        "with-secrets --store vault check",
        "with-secrets --store vault env --format github",
        "with-secrets -- true",
        "with-secrets --store vault -- true",
    ] {
        assert!(used.iter().any(|l| l == needed), "{needed}: {used:?}");
    }
    // And the check can fail: what does not exist does not parse.
    let words = |line: &str| -> Vec<String> { line.split(' ').map(str::to_owned).collect() };
    for bad in [
        "--stor vault check",
        "check --format yaml",
        "env --format gitlab",
        "--store nowhere check",
        "chek",
    ] {
        assert!(!parses(&words(bad)), "{bad}");
    }
    assert!(parses(&words("env --format gha")));
}

/// The names of the manifest's entries, from `check --format json` with
/// each set in the environment (which exits 0 only if the manifest parses
/// and every entry resolves).
fn manifest_entries() -> Vec<(String, String)> {
    let test = Test::new()
        .file(
            "secrets.toml",
            std::fs::read(example("secrets.toml")).unwrap(),
        )
        .env("WITH_SECRETS_STORE", "keyrings-alt")
        .env("API_TOKEN", "x")
        .env("DATABASE_URL", "x")
        .env("SENTRY_DSN", "x");
    let run = test.run(["-m", "secrets.toml", "check", "--format", "json"]);
    run.success();
    let report = validated(&test, &run.stdout());
    report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_secret_the_workflow_maps_is_in_its_manifest_or_the_vault_connection() {
    let entries = manifest_entries();
    assert!(
        entries
            .iter()
            .all(|(_, status)| status == "from-environment"),
        "{entries:?}"
    );
    let text = std::fs::read_to_string(example("workflow.yml")).unwrap();
    let mut used = Vec::new();
    for piece in text.split("${{").skip(1) {
        let expression = piece.split_once("}}").unwrap().0.trim();
        let name = expression
            .strip_prefix("secrets.")
            .unwrap_or_else(|| panic!("not a secret: {expression}"));
        used.push(name.to_owned());
    }
    assert!(used.len() >= 5, "{used:?}");
    for name in &used {
        // The two the vault store reads to reach the server (README, "For
        // a team"); every other is a manifest entry.
        let connection = ["BAO_ADDR", "BAO_TOKEN"].contains(&name.as_str());
        assert!(
            connection || entries.iter().any(|(n, _)| n == name),
            "{name} is not in examples/github-actions/secrets.toml"
        );
    }
    // And the fallback job maps every entry, each to its own name.
    let fallback = &jobs()["fallback"]["env"];
    for (name, _) in &entries {
        assert_eq!(
            fallback[name].as_str(),
            Some(format!("${{{{ secrets.{name} }}}}").as_str()),
            "{name}"
        );
    }
}

/// A project like the workflow's: the manifest at its root, and on PATH the
/// binary under test and a `cargo` whose `cargo test` prints which of the
/// manifest's variables it has and fails without a required one.
fn project() -> (Test, String) {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let test = Test::new().file(
        "secrets.toml",
        std::fs::read(example("secrets.toml")).unwrap(),
    );
    let bin = test.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    symlink(BIN, bin.join("with-secrets")).unwrap();
    let cargo = bin.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n\
         [ \"$*\" = test ] || { echo \"unexpected: cargo $*\" >&2; exit 2; }\n\
         for v in API_TOKEN DATABASE_URL SENTRY_DSN; do\n\
           eval \"x=\\${$v-}\"\n\
           if [ -n \"$x\" ]; then echo \"$v set (${#x} characters)\"; else echo \"$v unset\"; fi\n\
         done\n\
         [ -n \"${API_TOKEN-}\" ] && [ -n \"${DATABASE_URL-}\" ]\n",
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    (test, path)
}

/// `text` with each `${{ secrets.NAME }}` replaced as GitHub does: by the
/// secret's value, or "" when it is not configured.
fn expand(text: &str, secrets: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${{") {
        out.push_str(&rest[..at]);
        let (expression, after) = rest[at + 3..].split_once("}}").unwrap();
        let name = expression.trim().strip_prefix("secrets.").unwrap();
        out.push_str(secrets.get(name).map_or("", String::as_str));
        rest = after;
    }
    out.push_str(rest);
    out
}

fn env_of(value: &Value, secrets: &BTreeMap<&str, String>) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), expand(v.as_str().unwrap(), secrets)))
                .collect()
        })
        .unwrap_or_default()
}

/// What one step did.
struct Step {
    name: String,
    output: Option<Output>,
}

impl Step {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.as_ref().unwrap().stdout).into_owned()
    }
}

/// Runs `job`'s `run:` steps as the runner does: each in
/// `bash --noprofile --norc -eo pipefail` in the project, with the job's
/// and the step's `env:`, and what earlier steps appended to `$GITHUB_ENV`
/// (read by the runner's rules); after a failure only `if: always()`
/// steps run. The `uses:` steps and the install step are GitHub's part.
fn run_job(job: &str, secrets: &BTreeMap<&str, String>) -> (Test, Vec<Step>) {
    let (test, path) = project();
    let job = &jobs()[job];
    let job_env = env_of(&job["env"], secrets);
    let github_env = test.path().join("set_env_1");
    let mut passed_on: BTreeMap<String, String> = BTreeMap::new();
    let mut failed = false;
    let mut steps = Vec::new();
    for step in job["steps"].as_array().unwrap() {
        let Some(run) = step["run"].as_str() else {
            assert!(step["uses"].is_string(), "{step}");
            continue;
        };
        if run.starts_with("cargo install") {
            assert_eq!(run, "cargo install --locked --path tools/with-secrets");
            continue;
        }
        let name = step["name"].as_str().unwrap_or(run).to_owned();
        if failed && step["if"].as_str() != Some("always()") {
            steps.push(Step { name, output: None });
            continue;
        }
        std::fs::write(&github_env, "").unwrap();
        let output = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", run])
            .current_dir(test.path())
            .env_clear()
            .envs(test.envs())
            .env("PATH", &path)
            .env("GITHUB_ENV", &github_env)
            .envs(&passed_on)
            .envs(job_env.iter().cloned())
            .envs(env_of(&step["env"], secrets))
            .stdin(Stdio::null())
            .bounded_output()
            .unwrap();
        failed |= !output.status.success();
        let text = std::fs::read_to_string(&github_env).unwrap();
        passed_on.extend(runner_reads(&text, false).unwrap());
        steps.push(Step {
            name,
            output: Some(output),
        });
    }
    (test, steps)
}

fn step<'a>(steps: &'a [Step], name: &str) -> &'a Step {
    steps.iter().find(|s| s.name == name).unwrap()
}

fn succeeded(step: &Step) -> bool {
    step.output.as_ref().is_some_and(|o| o.status.success())
}

/// Every step's stdout and stderr, for assertions and messages.
fn transcript(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| match &s.output {
            Some(o) => format!(
                "== {} ({})\n{}{}",
                s.name,
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            None => format!("== {} (skipped)\n", s.name),
        })
        .collect()
}

const TOKEN: &str = "token-canary-5c1d";
const URL: &str = "postgres://canary-5c1d@db/test";

#[test]
fn the_fallback_job_passes_with_the_secrets_configured_and_stops_without_one() {
    let secrets = BTreeMap::from([
        ("API_TOKEN", TOKEN.to_owned()),
        ("DATABASE_URL", URL.to_owned()),
    ]);
    let (test, steps) = run_job("fallback", &secrets);
    let log = transcript(&steps);
    assert!(steps.iter().all(succeeded), "{log}");
    assert!(log.contains("API_TOKEN set (17 characters)"), "{log}");
    assert!(log.contains("SENTRY_DSN unset"), "{log}");
    assert!(!log.contains(TOKEN) && !log.contains(URL), "{log}");
    let report = std::fs::read_to_string(test.path().join("secrets-report.json")).unwrap();
    let report = validated(&test, &report);
    assert_eq!(report["ok"], true);
    assert!(!report.to_string().contains(TOKEN), "{report}");

    // An unconfigured required secret: the preflight fails, the report is
    // still written, and the tests never start.
    let secrets = BTreeMap::from([("DATABASE_URL", URL.to_owned())]);
    let (test, steps) = run_job("fallback", &secrets);
    let log = transcript(&steps);
    let preflight = step(&steps, "Preflight");
    assert_eq!(
        preflight.output.as_ref().unwrap().status.code(),
        Some(1),
        "{log}"
    );
    assert!(preflight.stdout().contains("API_TOKEN"), "{log}");
    assert!(step(&steps, "Test").output.is_none(), "{log}");
    let report = std::fs::read_to_string(test.path().join("secrets-report.json")).unwrap();
    let report = validated(&test, &report);
    assert_eq!(report["entries"][0]["status"], "missing", "{report}");
}

/// An OpenBao dev server holding the manifest's values where [vault] says.
fn bao_with_values() -> (Bao, BTreeMap<&'static str, String>) {
    let bao = Bao::dev();
    bao.ok(&[
        "kv",
        "put",
        "secret/ci/acme-api",
        &format!("api-token={TOKEN}"),
        &format!("database-url={URL}"),
    ]);
    let secrets = BTreeMap::from([
        ("BAO_ADDR", bao.address.clone()),
        ("BAO_TOKEN", bao.token.clone()),
    ]);
    (bao, secrets)
}

#[test]
fn the_vault_job_reads_the_values_from_openbao() {
    let (_bao, secrets) = bao_with_values();
    let (_, steps) = run_job("vault", &secrets);
    let log = transcript(&steps);
    assert!(steps.iter().all(succeeded), "{log}");
    assert!(
        step(&steps, "Preflight")
            .stdout()
            .contains("API_TOKEN     acme-api  api-token     found"),
        "{log}"
    );
    assert!(log.contains("API_TOKEN set (17 characters)"), "{log}");
    assert!(log.contains("DATABASE_URL set (30 characters)"), "{log}");
    assert!(!log.contains(TOKEN) && !log.contains(URL), "{log}");
}

#[test]
fn the_hand_off_job_passes_the_values_to_later_steps_masked() {
    let (_bao, secrets) = bao_with_values();
    let (_, steps) = run_job("hand-off", &secrets);
    let log = transcript(&steps);
    assert!(steps.iter().all(succeeded), "{log}");
    let hand_off = step(&steps, "Read the secrets from OpenBao for the later steps");
    let masks: Vec<String> = hand_off.stdout().lines().map(str::to_owned).collect();
    assert_eq!(
        masks,
        [format!("::add-mask::{TOKEN}"), format!("::add-mask::{URL}")],
        "{log}"
    );
    // The later step, which with-secrets does not start, has them.
    let test_step = step(&steps, "Test").stdout();
    assert!(test_step.contains("API_TOKEN set (17 characters)"), "{log}");
    assert!(
        test_step.contains("DATABASE_URL set (30 characters)"),
        "{log}"
    );
}
