//! `with-secrets -- COMMAND`: resolution, exec in place, exit codes, the CI fallback.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;

use crate::support::{SecretService, Test, manifest_for};

const PRINT_TOKEN: &[&str] = &["--", "sh", "-c", "printf %s \"$API_TOKEN\""];

fn with_token(service: &SecretService, value: &str) -> Test {
    service.store_foreign("acme-api", "ci-bot", "token", value);
    Test::new()
        .keyring(service)
        .manifest(&manifest_for(&[("API_TOKEN", "acme-api", "ci-bot")]))
}

#[test]
fn the_command_sees_the_secret_from_a_subfolder() {
    let service = SecretService::start();
    with_token(&service, "s3cr3t ünï\n")
        .cwd("crates/deep/er")
        .run(PRINT_TOKEN)
        .success()
        .stdout_is("s3cr3t ünï\n");
}

#[test]
fn the_manifest_flag_and_variable_override_discovery() {
    let service = SecretService::start();
    service.store_foreign("other", "me", "x", "from-other");
    let test = with_token(&service, "from-default").file(
        "conf/other.toml",
        manifest_for(&[("API_TOKEN", "other", "me")]),
    );
    test.run([
        "-m",
        "conf/other.toml",
        "--",
        "sh",
        "-c",
        "printf %s \"$API_TOKEN\"",
    ])
    .success()
    .stdout_is("from-other");
    test.env("WITH_SECRETS_MANIFEST", "conf/other.toml")
        .run(PRINT_TOKEN)
        .success()
        .stdout_is("from-other");
}

#[test]
fn no_manifest_lists_where_it_looked() {
    Test::new()
        .cwd("a/b")
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("no secrets.toml found in ")
        .stderr_has("a/b or any folder above it")
        .stderr_has("with-secrets init");
}

#[test]
fn the_command_replaces_with_secrets_in_place() {
    let service = SecretService::start();
    let test = with_token(&service, "x");
    let child = test
        .command(["--", "sh", "-c", "echo $$"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = crate::support::wait(child);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        pid.to_string()
    );
}

#[test]
fn argv0_and_arguments_pass_through_untouched() {
    Test::new()
        .manifest("")
        .run([
            "--",
            "sh",
            "-c",
            "printf '%s|' \"$0\" \"$@\"",
            "zero",
            "a b",
            "",
            "--",
            "-m",
        ])
        .success()
        .stdout_is("zero|a b||--|-m|");
}

#[test]
fn the_command_status_passes_through() {
    let run = Test::new().manifest("").run(["--", "sh", "-c", "exit 42"]);
    run.expect_code(42);
    assert!(run.stderr().is_empty(), "{}", run.stderr());
}

#[test]
fn a_signal_death_passes_through() {
    let run = Test::new()
        .manifest("")
        .run(["--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(run.output.status.signal(), Some(libc::SIGTERM), "{run:?}");
}

#[test]
fn an_unknown_command_is_127_before_any_keyring_access() {
    // A bus that would hang any keyring call: the run must not get that far.
    let service = SecretService::start();
    let test = with_token(&service, "x");
    service.signal_keyring(libc::SIGSTOP);
    let run = test.run(["--", "no-such-command-here"]);
    service.signal_keyring(libc::SIGCONT);
    run.expect_code(127)
        .stderr_has("with-secrets: no-such-command-here: command not found");
}

#[test]
fn a_missing_path_is_127() {
    Test::new()
        .manifest("")
        .run(["--", "./nothing-here"])
        .expect_code(127)
        .stderr_has("./nothing-here: not found");
}

#[test]
fn a_file_that_is_not_executable_is_126() {
    let test = Test::new()
        .manifest("")
        .file("script.sh", "#!/bin/sh\necho hi\n");
    test.run(["--", "./script.sh"])
        .expect_code(126)
        .stderr_has("./script.sh: permission denied");
    let bin = test.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(test.path().join("script.sh"), bin.join("plain")).unwrap();
    std::fs::set_permissions(bin.join("plain"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    test.env("PATH", path)
        .run(["--", "plain"])
        .expect_code(126)
        .stderr_has("plain: permission denied");
}

#[test]
fn a_directory_is_126() {
    Test::new()
        .manifest("")
        .cwd("dir")
        .run(["--", "../dir"])
        .expect_code(126);
}

#[test]
fn every_missing_secret_is_reported_at_once_and_nothing_runs() {
    let service = SecretService::start();
    service.store_foreign("acme", "present", "p", "here");
    let test = Test::new().keyring(&service).manifest(
        r#"
[defaults]
service = "acme"

[secrets]
PRESENT = { username = "present" }
FIRST   = { username = "first", description = "the first one" }
SECOND  = { service = "other", username = "second user" }
EXTRA   = { username = "extra", optional = true }
"#,
    );
    let run = test.run(["--", "touch", "ran"]);
    run.expect_code(125)
        .stderr_has("2 required secrets are missing from secret-service and the environment:")
        .stderr_has("FIRST   service \"acme\", username \"first\" (the first one)")
        .stderr_has("SECOND  service \"other\", username \"second user\"")
        .stderr_has("with-secrets set FIRST\n")
        .stderr_has("with-secrets set SECOND\n")
        .never_shows("here");
    assert!(!run.stderr().contains("EXTRA"), "{}", run.stderr());
    assert!(!test.path().join("ran").exists());
}

#[test]
fn the_fix_names_the_manifest_given_by_flag() {
    let service = SecretService::start();
    Test::new()
        .keyring(&service)
        .file("my conf.toml", manifest_for(&[("A", "s", "u")]))
        .run(["-m", "my conf.toml", "--", "true"])
        .expect_code(125)
        .stderr_has("with-secrets -m 'my conf.toml' set A");
}

#[test]
fn a_missing_optional_secret_leaves_its_variable_unset() {
    let service = SecretService::start();
    service.store_foreign("s", "a", "a", "1");
    Test::new()
        .keyring(&service)
        .manifest("[secrets]\nA = { service = \"s\", username = \"a\" }\nB = { service = \"s\", username = \"b\", optional = true }\n")
        .run(["--", "sh", "-c", "printf '%s %s' \"$A\" \"${B-unset}\""])
        .success()
        .stdout_is("1 unset");
}

#[test]
fn the_environment_fills_in_what_the_keyring_lacks() {
    let service = SecretService::start();
    service.store_foreign("s", "a", "a", "from-keyring");
    Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[("A", "s", "a"), ("B", "s", "b")]))
        .env("A", "from-env")
        .env("B", "from-env")
        .run(["--", "sh", "-c", "printf '%s %s' \"$A\" \"$B\""])
        .success()
        .stdout_is("from-keyring from-env");
}

#[test]
fn with_no_bus_at_all_ci_variables_are_used() {
    // As in CI: no DBUS_SESSION_BUS_ADDRESS, no $XDG_RUNTIME_DIR/bus.
    Test::new()
        .manifest(&manifest_for(&[("A", "s", "a"), ("B", "s", "b")]))
        .env("A", "ci-a")
        .env("B", "ci-b")
        .run(["--", "sh", "-c", "printf '%s %s' \"$A\" \"$B\""])
        .success()
        .stdout_is("ci-a ci-b");
}

#[test]
fn with_no_bus_and_no_fallback_the_store_is_named() {
    Test::new()
        .manifest(&manifest_for(&[("A", "s", "a"), ("B", "s", "b")]))
        .env("A", "ci-a")
        .env("XDG_RUNTIME_DIR", "/nonexistent")
        .env("WITH_SECRETS_STORE", "secret-service")
        .run(["--", "touch", "ran"])
        .expect_code(125)
        .stderr_has("with-secrets: secret-service: no D-Bus session bus")
        .stderr_has("this variable has no fallback in the environment: B");
}

#[test]
fn a_bus_without_a_secret_service_is_named() {
    let bus = SecretService::bus_only();
    Test::new()
        .keyring(&bus)
        .manifest(&manifest_for(&[("A", "s", "a")]))
        .env("WITH_SECRETS_STORE", "secret-service")
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("secret-service: no Secret Service on the session bus")
        .stderr_has("no fallback in the environment: A");
}

#[test]
fn a_dead_bus_address_is_named() {
    Test::new()
        .manifest(&manifest_for(&[("A", "s", "a")]))
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env("WITH_SECRETS_STORE", "secret-service")
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("cannot connect to the D-Bus session bus at unix:path=/nonexistent/bus");
}

#[test]
fn the_child_environment_is_the_parent_plus_the_secrets() {
    let service = SecretService::start();
    let test = with_token(&service, "tok")
        .env("KEEP_ME", "kept")
        .env("EMPTY", "");
    let run = test.run(["--", "env"]);
    run.success();
    let mut seen: Vec<String> = run.stdout().lines().map(str::to_owned).collect();
    seen.sort();
    let mut expected = vec![
        format!("PATH={}", std::env::var("PATH").unwrap()),
        format!("HOME={}", test.path().join("home").display()),
        format!("DBUS_SESSION_BUS_ADDRESS={}", service.address()),
        "KEEP_ME=kept".to_owned(),
        "EMPTY=".to_owned(),
        "API_TOKEN=tok".to_owned(),
    ];
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn no_command_is_a_usage_error() {
    Test::new()
        .manifest("")
        .run(Vec::<&str>::new())
        .expect_code(125)
        .stderr_has("nothing to run: give a command after `--`");
}

#[test]
fn help_and_version_succeed_and_bad_flags_are_125() {
    let test = Test::new();
    let help = test.run(["--help"]);
    help.success();
    assert!(
        help.stdout()
            .contains("with-secrets [OPTIONS] -- COMMAND [ARGS]...")
    );
    assert!(help.stdout().contains("Exit status"));
    test.run(["--version"]).success();
    test.run(["--no-such-flag"]).expect_code(125);
    test.run(["frobnicate"]).expect_code(125);
}

#[test]
fn no_error_path_shows_a_stored_secret() {
    const CANARY: &str = "canary-7f3a9c1e";
    let service = SecretService::start();
    service.store_foreign("acme-api", "ci-bot", "t", CANARY);
    let test = Test::new().keyring(&service).manifest(
        "[secrets]\nAPI_TOKEN = { service = \"acme-api\", username = \"ci-bot\" }\nGONE = { service = \"acme-api\", username = \"gone\" }\n",
    );
    let test = test.file("noexec", "#!/bin/sh\n");
    for args in [
        vec!["--", "true"],
        vec!["--", "no-such-command-here"],
        vec!["--", "./noexec"],
        vec!["check"],
        vec!["get", "GONE"],
        vec!["set", "NOT_IN_MANIFEST"],
        vec!["-m", "missing.toml", "--", "true"],
    ] {
        let run = test.run(&args);
        assert_ne!(run.code(), Some(0), "{args:?} should fail: {run:?}");
        run.never_shows(CANARY);
    }
}
