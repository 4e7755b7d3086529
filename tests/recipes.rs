//! The dev container, `docker run` and direnv recipes in examples/, run as
//! their tools would run them: direnv itself, and for the programs that are
//! not here (npm, docker) a stand-in recording what it was given.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{BIN, BoundedOutput, SecretService, Test};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// A folder outside the project where a stand-in records what it got.
struct Record(tempfile::TempDir);

impl Record {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.path().join(name))
            .unwrap_or_else(|err| panic!("{name} was not recorded: {err}"))
    }
}

/// `test` with `bin/` first on PATH, holding the binary under test as
/// `with-secrets` and a stand-in `program` that writes its arguments (one per
/// line) to `$RECORD/argv` and its environment to `$RECORD/env`.
fn with_stand_in(test: Test, program: &str, record: &Record) -> Test {
    let bin = test.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("with-secrets")).unwrap();
    let stand_in = bin.join(program);
    std::fs::write(
        &stand_in,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$RECORD/argv\"\nenv -0 > \"$RECORD/env\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    test.env("PATH", path).env("RECORD", record.0.path())
}

/// The environment a stand-in recorded.
fn recorded_env(record: &Record) -> BTreeMap<String, String> {
    record
        .read("env")
        .split('\0')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `${localEnv:NAME}` as the dev container tools expand it, from `host`.
fn expand_local_env(value: &str, host: &BTreeMap<&str, &str>) -> String {
    let mut out = value.to_owned();
    while let Some(start) = out.find("${localEnv:") {
        let end = start + out[start..].find('}').expect("closing brace");
        let name = &out[start + "${localEnv:".len()..end];
        let value = host.get(name).copied().unwrap_or_default();
        out.replace_range(start..=end, value);
    }
    out
}

#[test]
fn the_devcontainer_post_start_command_runs_with_the_file_store() {
    const PASSPHRASE: &str = "host passphrase";
    const TOKEN: &str = "devcontainer-token";
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(example("devcontainer/devcontainer.json")).unwrap())
            .expect("devcontainer.json is plain JSON");
    let container_env = json["containerEnv"].as_object().unwrap();
    let remote_env = json["remoteEnv"].as_object().unwrap();
    let post_start = json["postStartCommand"].as_str().unwrap();
    assert!(post_start.contains("with-secrets -c "), "{post_start}");
    assert_eq!(container_env["WITH_SECRETS_STORE"], "file");
    // The passphrase comes from the host, and is not baked into the
    // container's configuration, where `docker inspect` would show it.
    assert!(!container_env.contains_key("WITH_SECRETS_PASSPHRASE"));
    assert_eq!(
        remote_env["WITH_SECRETS_PASSPHRASE"],
        "${localEnv:WITH_SECRETS_PASSPHRASE}"
    );
    // The store lives in a volume, where the file store looks by default.
    let mount = json["mounts"][0].as_str().unwrap();
    assert!(
        mount.contains("target=/home/node/.local/share/with-secrets,type=volume"),
        "{mount}"
    );

    // The workspace: the project's secrets.toml at its root.
    let record = Record::new();
    let test = with_stand_in(
        Test::new().manifest(&std::fs::read_to_string(example("secrets.toml")).unwrap()),
        "npm",
        &record,
    );
    let host = BTreeMap::from([("WITH_SECRETS_PASSPHRASE", PASSPHRASE)]);
    let mut test = test;
    for (name, value) in container_env.iter().chain(remote_env) {
        test = test.env(name, expand_local_env(value.as_str().unwrap(), &host));
    }
    // Stored once, in the container, with the same passphrase.
    test.run_input(TOKEN, ["set", "API_TOKEN"]).success();

    // A lifecycle command given as a string runs in a shell.
    let (ok, shown) = test.outside("sh", &["-c", post_start], ".");
    assert!(ok, "{shown}");
    assert!(
        shown.contains("API_TOKEN   with-secrets-example  ci-bot      found"),
        "{shown}"
    );
    assert!(!shown.contains(TOKEN), "{shown}");
    assert_eq!(
        record.read("argv"),
        "run\nseed\n--\n--label\ndev container\n"
    );
    assert_eq!(recorded_env(&record)["API_TOKEN"], TOKEN);

    // Without the host's passphrase the start fails, before npm runs, and says why.
    std::fs::remove_file(record.0.path().join("argv")).unwrap();
    let output = Command::new("sh")
        .args(["-c", post_start])
        .current_dir(test.path())
        .env_clear()
        .envs(test.envs())
        .env("WITH_SECRETS_PASSPHRASE", "")
        .bounded_output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!record.0.path().join("argv").exists());
}

#[test]
fn the_docker_run_recipe_passes_values_by_name_through_the_environment_only() {
    const TOKEN: &str = "docker-token-value";
    let service = SecretService::start();
    service.store_foreign("with-secrets-example", "ci-bot", "token", TOKEN);
    let record = Record::new();
    let test = Test::new()
        .file(
            "examples/secrets.toml",
            std::fs::read(example("secrets.toml")).unwrap(),
        )
        .file(
            "examples/docker-run.sh",
            std::fs::read(example("docker-run.sh")).unwrap(),
        )
        .keyring(&service);
    let test = with_stand_in(test, "docker", &record);
    let (ok, shown) = test.outside("sh", &["examples/docker-run.sh"], ".");
    assert!(ok, "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");

    let argv = record.read("argv");
    assert_eq!(
        argv,
        "run\n--rm\n-e\nAPI_TOKEN\n-e\nSENTRY_DSN\nalpine:3\nsh\n-c\n\
         echo \"API_TOKEN has ${#API_TOKEN} characters\"\n"
    );
    assert!(!argv.contains(TOKEN), "never on the command line");
    assert!(!argv.contains("--env-file"), "{argv}");
    let env = recorded_env(&record);
    assert_eq!(env["API_TOKEN"], TOKEN, "docker got it in its environment");
    assert!(
        !env.contains_key("SENTRY_DSN"),
        "a missing optional one is unset"
    );
    assert_eq!(
        crate::support::files_containing(test.path(), TOKEN),
        Vec::<PathBuf>::new(),
        "never in a file"
    );
}

/// A project with examples/direnv/envrc as its `.envrc`, allowed, and the
/// file store in its own XDG_DATA_HOME (direnv keeps its allow list there
/// too), holding TOKEN.
fn direnv_project(manifest: &str) -> Test {
    let test = Test::new().manifest(manifest);
    let envrc = std::fs::read_to_string(example("direnv/envrc")).unwrap();
    let bin = test.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("with-secrets")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let data = test.path().join("data");
    let test = test
        .file(".envrc", envrc)
        .env("PATH", path)
        .env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", "direnv passphrase");
    test.run_input("from the store ✓", ["set", "TOKEN"])
        .success();
    let (ok, out) = test.outside(direnv(), &["allow", "."], ".");
    assert!(ok, "direnv allow: {out}");
    test
}

/// Debian's direnv, which scripts/install-deps installs.
fn direnv() -> &'static str {
    let found = Command::new("direnv")
        .arg("version")
        .bounded_output()
        .is_ok_and(|output| output.status.success());
    assert!(found, "direnv is missing: run ./scripts/install-deps");
    "direnv"
}

const TOKEN_ONLY: &str = "[secrets]\nTOKEN = { service = \"direnv-acme\", username = \"ci\" }\n";

#[test]
fn the_readme_shows_the_direnv_recipe_as_it_is() {
    let envrc = std::fs::read_to_string(example("direnv/envrc")).unwrap();
    let code: String = envrc
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```sh\n{code}```")),
        "README's direnv block differs from examples/direnv/envrc:\n{code}"
    );
}

#[test]
fn direnv_exec_and_its_bash_hook_load_the_variables() {
    let test = direnv_project(TOKEN_ONLY);
    let (ok, out) = test.outside(
        direnv(),
        &["exec", ".", "sh", "-c", "printf '[%s]' \"$TOKEN\""],
        ".",
    );
    assert!(ok, "{out}");
    assert!(out.starts_with("[from the store ✓]"), "{out}");
    // The hook, as `eval "$(direnv hook bash)"` runs it at each prompt.
    let (ok, out) = test.outside(
        "bash",
        &[
            "-c",
            "eval \"$(direnv export bash)\"; printf '[%s]' \"$TOKEN\"",
        ],
        ".",
    );
    assert!(ok, "{out}");
    assert!(out.starts_with("[from the store ✓]"), "{out}");
}

#[test]
fn direnv_reloads_when_the_manifest_changes() {
    let test = direnv_project(TOKEN_ONLY);
    let manifest = test.path().join("secrets.toml");
    test.run_input("added", ["set", "TOKEN"]).success();
    // Two prompts of one shell: the second, after secrets.toml changed
    // (dated a minute on, as a later edit would be), sees the new entry.
    let script = format!(
        "eval \"$(direnv export bash)\"; printf '[%s|%s]' \"$TOKEN\" \"${{ADDED-unset}}\"; \
         printf '%s' 'ADDED = {{ service = \"direnv-acme\", username = \"ci\" }}' >> {m}; \
         touch -d '+1 minute' {m}; \
         eval \"$(direnv export bash)\"; printf '[%s|%s]' \"$TOKEN\" \"${{ADDED-unset}}\"",
        m = shell_words::quote(&manifest.to_string_lossy())
    );
    let (ok, out) = test.outside("bash", &["-c", &script], ".");
    assert!(ok, "{out}");
    assert!(out.contains("[added|unset][added|added]"), "{out}");
}

#[test]
fn with_direnv_a_missing_secret_is_told_and_nothing_is_exported() {
    let test = direnv_project(TOKEN_ONLY);
    std::fs::write(
        test.path().join("secrets.toml"),
        format!("{TOKEN_ONLY}GONE = {{ service = \"direnv-acme\", username = \"gone\" }}\n"),
    )
    .unwrap();
    let (ok, out) = test.outside(
        direnv(),
        &[
            "exec",
            ".",
            "sh",
            "-c",
            "printf '[%s|%s]' \"${TOKEN-unset}\" \"${GONE-unset}\"",
        ],
        ".",
    );
    assert!(ok, "{out}");
    assert!(out.starts_with("[unset|unset]"), "a partial set: {out}");
    assert!(
        out.contains("1 required secret is missing") && out.contains("set GONE"),
        "{out}"
    );
}

#[test]
fn with_direnv_a_folder_without_a_manifest_loads_nothing_and_says_nothing() {
    let test = direnv_project(TOKEN_ONLY);
    std::fs::remove_file(test.path().join("secrets.toml")).unwrap();
    let (ok, out) = test.outside(
        direnv(),
        &["exec", ".", "sh", "-c", "printf '[%s]' \"${TOKEN-unset}\""],
        ".",
    );
    assert!(ok, "{out}");
    assert!(out.starts_with("[unset]"), "{out}");
    assert!(!out.contains("with-secrets:"), "{out}");
}
