//! The recipes in examples/, run as a user would run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{BIN, SecretService, Test, wait_for};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// A project folder holding copies of the example manifest and `files`, and a
/// `bin/with-secrets` that is the binary under test, first on PATH.
fn project(files: &[&str]) -> Test {
    let mut test = Test::new().file(
        "examples/secrets.toml",
        std::fs::read(example("secrets.toml")).unwrap(),
    );
    for file in files {
        test = test.file(
            &format!("examples/{file}"),
            std::fs::read(example(file)).unwrap(),
        );
    }
    let bin = test.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("with-secrets")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    test.env("PATH", path)
}

#[test]
fn the_makefile_preflight_fails_until_the_secret_is_stored() {
    let service = SecretService::start();
    let test = project(&["Makefile"]).keyring(&service);
    let (ok, output) = test.outside("make", &["--no-print-directory", "test"], "examples");
    assert!(!ok, "{output}");
    assert!(
        output.contains(
            "API_TOKEN   with-secrets-example  ci-bot      missing: run with-secrets set API_TOKEN"
        ),
        "{output}"
    );
    assert!(
        !output.contains("API_TOKEN is set"),
        "the recipe ran: {output}"
    );

    let stored = test.run_input(
        "makefile-secret",
        ["-m", "examples/secrets.toml", "set", "API_TOKEN"],
    );
    stored.success();
    let (ok, output) = test.outside("make", &["--no-print-directory", "test"], "examples");
    assert!(ok, "{output}");
    assert!(
        output.contains("API_TOKEN is set (15 characters)"),
        "{output}"
    );
    assert!(
        output.contains("SENTRY_DSN is unset (optional)"),
        "{output}"
    );
    assert!(!output.contains("makefile-secret"), "{output}");
}

#[test]
fn the_makefile_ci_target_uses_the_environment() {
    let test = project(&["Makefile"]).env("API_TOKEN", "from-ci");
    let (ok, output) = test.outside("make", &["--no-print-directory", "env-ci"], "examples");
    assert!(ok, "{output}");
    assert!(
        output.contains("API_TOKEN   with-secrets-example  ci-bot      from environment"),
        "{output}"
    );
    assert!(
        output.contains("API_TOKEN is set (7 characters)"),
        "{output}"
    );
}

/// The `run:` steps of the workflow that exercise with-secrets (not the
/// apt-get and cargo install steps, which set up a runner).
fn workflow_steps() -> Vec<String> {
    let text = std::fs::read_to_string(example("github-actions.yml")).unwrap();
    let steps: Vec<String> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- run: "))
        .filter(|step| step.contains("with-secrets"))
        .map(str::to_owned)
        .collect();
    assert!(steps.len() >= 2, "{steps:?}");
    steps
}

#[test]
fn the_github_actions_steps_pass_with_the_secret_in_the_environment() {
    let test = project(&[])
        .env("API_TOKEN", "from-actions")
        .env("SENTRY_DSN", "");
    for step in workflow_steps() {
        let (ok, output) = test.outside("sh", &["-c", &step], ".");
        assert!(ok, "{step}\n{output}");
        assert!(!output.contains("from-actions"), "{output}");
    }
}

#[test]
fn the_github_actions_steps_fail_when_the_secret_is_not_configured() {
    // An unconfigured secret expands to an empty string.
    let test = project(&[]).env("API_TOKEN", "").env("SENTRY_DSN", "");
    let last = workflow_steps().pop().unwrap();
    let (ok, output) = test.outside("sh", &["-c", &last], ".");
    assert!(!ok, "{output}");
    assert!(output.contains("API_TOKEN"), "{output}");
}

#[test]
fn the_demo_runs_end_to_end_on_its_own_keyring() {
    let test = Test::new();
    let demo = Command::new(example("demo"))
        .env_clear()
        .envs(test.envs())
        .env("WITH_SECRETS", BIN)
        .env("TMPDIR", test.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It may install packages first: longer than one run.
    let output = wait_for(demo, Duration::from_secs(600));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains("DEMO_TOKEN has 10 characters"), "{text}");
    assert!(!text.lines().any(|line| line == "never printed"), "{text}");
    // Everything the demo made, its keyring included, is gone.
    let left: Vec<_> = std::fs::read_dir(test.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "home")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A PATH with bash and the few tools the demo uses before it builds, and
/// stand-ins for apt-get, apt-cache and sudo: apt-get writes each command
/// line it gets to `apt.log` and installs nothing. Nothing else is on it,
/// so every package looks missing.
fn bare_path(test: &Test) -> std::ffi::OsString {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let bin = test.path().join("bare-bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["bash", "env", "id", "dirname"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|dir| dir.join(tool))
            .find(|path| path.is_file())
            .unwrap_or_else(|| panic!("{tool} is not on PATH"));
        symlink(found, bin.join(tool)).unwrap();
    }
    let log = test.path().join("apt.log");
    let stand_ins = [
        (
            "apt-get",
            format!(
                "#!/bin/sh
printf '%s\n' \"$*\" >> '{}'
",
                log.display()
            ),
        ),
        (
            "apt-cache",
            "#!/bin/sh
exit 0
"
            .to_owned(),
        ),
        (
            "sudo",
            "#!/bin/sh
exec \"$@\"
"
            .to_owned(),
        ),
    ];
    for (name, text) in stand_ins {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin.into_os_string()
}

/// What apt-get was asked to install, by a run of `program` with `args` on
/// `bare_path`.
fn installed_by(program: &Path, args: &[&str]) -> Vec<String> {
    let test = Test::new();
    let path = bare_path(&test);
    let child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("WITH_SECRETS", BIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The demo stops after the install, as nothing was installed.
    let output = wait_for(child, Duration::from_secs(120));
    let log = std::fs::read_to_string(test.path().join("apt.log"))
        .unwrap_or_else(|_| panic!("apt-get never ran: {output:?}"));
    let install = log
        .lines()
        .find(|line| line.contains(" install "))
        .unwrap_or_else(|| panic!("no install in {log:?}: {output:?}"));
    let mut packages: Vec<String> = install
        .split_whitespace()
        .skip_while(|word| *word != "--no-install-recommends")
        .skip(1)
        .map(str::to_owned)
        .collect();
    packages.sort();
    packages
}

#[test]
fn the_demo_installs_only_what_it_needs_and_the_tests_get_the_rest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The four packages README's "Try it in one command" names.
    let demo = ["dbus", "dbus-bin", "gcc", "gnome-keyring"];
    assert_eq!(installed_by(&example("demo"), &[]), demo);
    let all = installed_by(&root.join("scripts/install-deps"), &[]);
    for package in demo.iter().chain(&[
        "wine",
        "keepassxc",
        "xvfb",
        "age",
        "direnv",
        "openssh-client",
        "util-linux",
        "podman",
    ]) {
        assert!(all.iter().any(|p| p == package), "{package}: {all:?}");
    }
}

/// Every ```toml block of README.md is a manifest with-secrets accepts, as
/// is each of its profiles: `check` with no store ends in 0 or 1 (missing
/// values), never in 125 (a manifest error). All but the `.taplo.toml`
/// (its `[[rule]]`), which tests/schema.rs runs Taplo with.
#[test]
fn every_toml_block_in_the_readme_is_a_manifest_with_secrets_accepts() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .map(|rest| rest.split_once("```").expect("a closed block").0)
        .filter(|block| !block.contains("[[rule]]"))
        .collect();
    assert!(blocks.len() >= 4, "{} blocks", blocks.len());
    let mut profiles_seen = 0;
    for (index, block) in blocks.iter().enumerate() {
        let test = Test::new().file(&format!("block{index}.toml"), block);
        let manifest = format!("block{index}.toml");
        let mut profiles: Vec<Option<&str>> = vec![None];
        for line in block.lines() {
            if let Some(rest) = line.strip_prefix("[profiles.") {
                let name = rest.split(['.', ']']).next().unwrap();
                if !profiles.contains(&Some(name)) {
                    profiles.push(Some(name));
                }
            }
        }
        profiles_seen += profiles.len() - 1;
        for profile in profiles {
            let mut args = vec!["-m", manifest.as_str(), "--store", "keyrings-alt"];
            if let Some(name) = profile {
                args.extend(["--profile", name]);
            }
            args.push("check");
            let run = test.run(&args);
            assert!(
                matches!(run.code(), Some(0 | 1)),
                "README block {index} ({profile:?}):\n{block}\n{}",
                run.stderr()
            );
        }
    }
    assert!(profiles_seen >= 2, "the Profiles example was not found");
}
