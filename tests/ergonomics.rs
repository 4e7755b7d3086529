//! Everyday use: `-c STRING`, completions and the man page, `--help`'s
//! examples, and what `-v` and `-q` say (or do not).

use std::process::Command;

use crate::support::{BoundedOutput, SecretService, Test, manifest_for};

pub const PASSPHRASE: &str = "ergonomic passphrase";

/// A project whose file store (in its own XDG_DATA_HOME, passphrase from the
/// environment) holds each (NAME, value), at service `acme` and username
/// `name`.
pub fn stored(values: &[(&str, &[u8])]) -> Test {
    let usernames: Vec<String> = values.iter().map(|(n, _)| n.to_lowercase()).collect();
    let entries: Vec<(&str, &str, &str)> = values
        .iter()
        .zip(&usernames)
        .map(|((name, _), username)| (*name, "acme", username.as_str()))
        .collect();
    let test = Test::new().manifest(&manifest_for(&entries));
    let data = test.path().join("data");
    let test = test
        .env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    for (name, value) in values {
        // `set` strips one trailing newline from piped input: add it.
        test.run_input([*value, b"\n"].concat(), ["set", name])
            .success();
    }
    test
}

fn token(service: &SecretService, value: &str) -> Test {
    service.store_foreign("acme-api", "ci-bot", "token", value);
    Test::new()
        .keyring(service)
        .manifest(&manifest_for(&[("API_TOKEN", "acme-api", "ci-bot")]))
}

#[test]
fn dash_c_runs_a_one_string_command_as_the_dash_dash_form_does() {
    let service = SecretService::start();
    let test = token(&service, "s3cr3t");
    // As devcontainer.json would hold it: nested quotes, and no shell, so
    // `$HOME` and `*` reach printf as they are.
    let line = r#"sh -c 'printf "%s|" "$API_TOKEN" "$@"' zero "two words" it\'s '$HOME' *"#;
    let via_c = test.run(["-c", line]);
    via_c.success().stdout_is("s3cr3t|two words|it's|$HOME|*|");
    test.run([
        "--",
        "sh",
        "-c",
        "printf \"%s|\" \"$API_TOKEN\" \"$@\"",
        "zero",
        "two words",
        "it's",
        "$HOME",
        "*",
    ])
    .success()
    .stdout_is(&via_c.stdout());
    test.run(["--command", "sh -c 'exit 42'"]).expect_code(42);
}

#[test]
fn dash_c_keeps_the_exit_codes_of_the_dash_dash_form() {
    let test = Test::new()
        .manifest("")
        .file("script.sh", "#!/bin/sh\necho hi\n");
    test.run(["-c", "no-such-command-here --flag"])
        .expect_code(127)
        .stderr_has("no-such-command-here: command not found");
    test.run(["-c", "./script.sh"])
        .expect_code(126)
        .stderr_has("./script.sh: permission denied");
    test.run(["-c", "   "])
        .expect_code(125)
        .stderr_has("nothing to run");
}

#[test]
fn dash_c_conflicts_with_dash_dash_and_with_subcommands() {
    let test = Test::new().manifest("");
    test.run(["-c", "true", "--", "true"])
        .expect_code(125)
        .stderr_has("cannot be used with");
    test.run(["-c", "true", "check"])
        .expect_code(125)
        .stderr_has("cannot go with a subcommand");
}

#[test]
fn dash_c_with_an_unclosed_quote_is_a_usage_error() {
    Test::new()
        .manifest("")
        .run(["-c", "echo 'oops"])
        .expect_code(125)
        .stderr_has("-c: cannot split the command into words: a quote is not closed");
}

#[test]
fn completions_for_each_shell_mention_the_subcommands() {
    let test = Test::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = test.run(["completions", shell]);
        run.success();
        let script = run.stdout();
        for word in ["with-secrets", "set", "check", "env", "completions", "mask"] {
            assert!(script.contains(word), "{shell} lacks {word}:\n{script}");
        }
    }
    test.run(["completions", "tcsh"]).expect_code(125);
}

#[test]
fn the_bash_completion_script_is_valid_bash_and_completes_subcommands() {
    let test = Test::new();
    let run = test.run(["completions", "bash"]);
    run.success();
    let script = test.path().join("with-secrets.bash");
    std::fs::write(&script, run.output.stdout.as_slice()).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .bounded_output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    // Source it and ask for the completions of `with-secrets ch`.
    let complete = Command::new("bash")
        .arg("-c")
        .arg(
            r#"source "$1"; COMP_WORDS=(with-secrets ch); COMP_CWORD=1; COMP_LINE="with-secrets ch"; COMP_POINT=${#COMP_LINE}
               _with__secrets with-secrets ch with-secrets; printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg("bash")
        .arg(&script)
        .bounded_output()
        .unwrap();
    let words = String::from_utf8_lossy(&complete.stdout);
    assert!(words.lines().any(|w| w == "check"), "{complete:?}");
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let run = Test::new().run(["man"]);
    run.success();
    let page = run.stdout();
    assert!(page.starts_with(".ie") || page.contains("\n.TH"), "{page}");
    assert!(page.contains(".TH with-secrets 1"), "{page}");
    for word in [
        "set",
        "get",
        "delete",
        "check",
        "import",
        "doctor",
        "init",
        "env",
        "completions",
    ] {
        assert!(
            page.contains(&format!("with\\-secrets\\-{word}")) || page.contains(word),
            "{word}"
        );
    }
    assert!(page.contains("\\-\\-mask"), "{page}");
    assert!(page.contains("Makefile"), "the examples are in it: {page}");
}

#[test]
fn help_shows_examples_for_run_set_check_ci_and_a_makefile_preflight() {
    let run = Test::new().run(["--help"]);
    run.success();
    let help = run.stdout();
    for needle in [
        "with-secrets set API_TOKEN",
        "with-secrets -- cargo test",
        "with-secrets check",
        "In CI, where there is no keyring",
        "falls back to the same-named",
        "Makefile preflight",
        "test: check\n  \twith-secrets -- cargo test",
        "with-secrets -c 'npm run dev'",
        "eval \"$(with-secrets env)\"",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn verbose_names_the_manifest_the_store_and_the_time_but_never_a_value() {
    let service = SecretService::start();
    let test = token(&service, "s3cr3t-verbose")
        .manifest(
            "[secrets]\nAPI_TOKEN = { service = \"acme-api\", username = \"ci-bot\" }\n\
             FROM_ENV = { service = \"acme-api\", username = \"env\" }\n\
             GONE = { service = \"acme-api\", username = \"gone\", optional = true }\n",
        )
        .env("FROM_ENV", "env-value")
        .cwd("sub");
    let run = test.run(["-v", "--", "true"]);
    run.success()
        .stderr_has(&format!(
            "with-secrets: manifest {} (the nearest secrets.toml from {})\n",
            test.path().join("secrets.toml").display(),
            test.path().join("sub").display()
        ))
        .stderr_has("with-secrets: store secret-service (auto: the platform's keyring answered)\n")
        .stderr_has("with-secrets: looked up 3 entries in ")
        .stderr_has(
            " ms: API_TOKEN from secret-service, FROM_ENV from the environment, GONE missing (optional)\n",
        )
        .never_shows("s3cr3t-verbose")
        .never_shows("env-value");
}

#[test]
fn verbose_says_why_auto_passed_over_the_keyring() {
    // No session bus, as on WSL or in CI: auto falls back to the file store.
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "acme", "token")]))
        .env("XDG_DATA_HOME", "data")
        .env("TOKEN", "ci-value");
    test.run(["--verbose", "-m", "secrets.toml", "env"])
        .success()
        .stderr_has("(from --manifest)")
        .stderr_has(
            "with-secrets: store file (auto: secret-service is not here: no D-Bus session bus",
        )
        .stderr_has("TOKEN from the environment");
    test.env("WITH_SECRETS_STORE", "file")
        .run(["-v", "check"])
        .success()
        .stderr_has("with-secrets: store file (chosen by WITH_SECRETS_STORE)")
        .never_shows("ci-value");
}

#[test]
fn success_is_silent_by_default() {
    let service = SecretService::start();
    let run = token(&service, "quiet-value").run(["--", "true"]);
    run.success();
    assert!(run.stderr().is_empty(), "{}", run.stderr());
    assert!(run.stdout().is_empty(), "{}", run.stdout());
}

#[test]
fn quiet_silences_warnings_but_never_errors() {
    // keyrings.alt's plain-text file: a warning on every run that uses it.
    let test = Test::new()
        .manifest(&manifest_for(&[("A", "s", "a")]))
        .env("XDG_DATA_HOME", "data")
        .env("WITH_SECRETS_STORE", "keyrings-alt")
        .file(
            "data/python_keyring/keyring_pass.cfg",
            "[s]\na = \n\taGVsbG8=\n\n",
        );
    let print = ["--", "sh", "-c", "printf %s \"$A\""];
    test.run(print)
        .success()
        .stdout_is("hello")
        .stderr_has("keeps secrets in plain text");
    let quiet = test.run([&["-q"][..], &print[..]].concat());
    quiet.success().stdout_is("hello");
    assert!(quiet.stderr().is_empty(), "{}", quiet.stderr());
    // An error still shows.
    test.run(["-q", "--", "no-such-command-here"])
        .expect_code(127)
        .stderr_has("command not found");
    test.run(["-q", "-v", "--", "true"]).expect_code(125);
}

#[test]
fn a_mistyped_subcommand_gets_did_you_mean() {
    let test = stored(&[("TOKEN", b"value")]);
    for (typed, meant) in [("chek", "check"), ("chekc", "check"), ("imprt", "import")] {
        test.run([typed])
            .expect_code(125)
            .stderr_has(&format!("unexpected argument '{typed}' found\n"))
            .stderr_has(&format!(
                "\n  tip: a similar subcommand exists: '{meant}'\n"
            ))
            // A near subcommand is not proof: `sed` is one typo from `set`.
            .stderr_has(&format!(
                "\n  tip: to run `{typed}` with the secrets set, put `--` before it: \
                 with-secrets -- {typed}\n"
            ));
    }
    test.run(["sed", "-n", "p"])
        .expect_code(125)
        .stderr_has("tip: a similar subcommand exists: 'set'")
        .stderr_has("put `--` before it: with-secrets -- sed -n p\n");
    // After the subcommand, an extra word is only that: no tip.
    test.run(["check", "extra"])
        .expect_code(125)
        .stderr_lacks("tip:");
}

#[test]
fn a_command_without_dashes_gets_the_line_with_them() {
    let test = stored(&[("TOKEN", b"from the store")]);
    for (args, word, printed, stdout) in [
        (
            &["echo", "hi"][..],
            "echo",
            "with-secrets -- echo hi",
            "hi\n",
        ),
        (
            &["-q", "--timeout", "20", "sh", "-c", "printf %s \"$TOKEN\""][..],
            "sh",
            "with-secrets -q --timeout 20 -- sh -c 'printf %s \"$TOKEN\"'",
            "from the store",
        ),
    ] {
        test.run(args)
            .expect_code(125)
            .stderr_has(&format!("unexpected argument '{word}' found\n"))
            .stderr_has(&format!(
                "\n  tip: to run `{word}` with the secrets set, put `--` before it: {printed}\n"
            ));
        // The line, run as printed, runs the command with the secrets set.
        let words = shell_words::split(printed).unwrap();
        assert_eq!(words[0], "with-secrets");
        test.run(&words[1..]).success().stdout_is(stdout);
    }
}
