//! Manifest errors as a person sees them: located, with a snippet, exit 125.

use crate::support::{Test, needs_root};

fn run(manifest: &str) -> crate::support::Run {
    Test::new().manifest(manifest).run(["--", "true"])
}

#[test]
fn a_syntax_error_is_located_with_a_snippet() {
    let run = run("[secrets]\nA = { service = \"s\", username = \"u\"\n");
    run.expect_code(125);
    let stderr = run.stderr();
    assert!(stderr.starts_with("with-secrets: "), "{stderr}");
    assert!(stderr.contains("secrets.toml:2:"), "{stderr}");
    assert!(
        stderr.contains("2 | A = { service = \"s\", username = \"u\""),
        "{stderr}"
    );
}

#[test]
fn an_unknown_key_is_located() {
    run("[secrets]\nA = { service = \"s\", user = \"u\" }\n")
        .expect_code(125)
        .stderr_has("secrets.toml:2:22: unknown key `user` in `A`; expected one of service, username, optional, description")
        .stderr_has("2 | A = { service = \"s\", user = \"***\" }\n  |                      ^^^^");
}

#[test]
fn a_value_in_the_manifest_is_refused_and_not_repeated() {
    run(
        "[secrets]\nAPI_TOKEN = { service = \"s\", username = \"u\", value = \"ghp_canary123\" }\n",
    )
    .expect_code(125)
    .stderr_has("secrets belong in the keyring")
    .stderr_has("with-secrets set API_TOKEN")
    .never_shows("ghp_canary123");
    run("[secrets]\nAPI_TOKEN = \"ghp_canary123\"\n")
        .expect_code(125)
        .stderr_has("secrets.toml:2:13: `API_TOKEN` holds a value")
        .never_shows("ghp_canary123");
}

#[test]
fn an_invalid_name_is_refused() {
    run("[secrets]\n\"MY-TOKEN\" = { service = \"s\", username = \"u\" }\n")
        .expect_code(125)
        .stderr_has("secrets.toml:2:1: `MY-TOKEN` is not a valid environment variable name");
}

#[test]
fn empty_service_and_username_are_refused() {
    run("[secrets]\nA = { service = \"\", username = \"u\" }\n")
        .expect_code(125)
        .stderr_has("secrets.toml:2:17: `service` must not be empty");
    run("[secrets]\nA = { service = \"s\", username = \"\" }\n")
        .expect_code(125)
        .stderr_has("`username` must not be empty");
}

#[test]
fn a_manifest_that_is_not_utf8_is_located() {
    Test::new()
        .file("secrets.toml", b"[secrets]\nA = { service = \"\xff\" }\n")
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("secrets.toml:2:18: the file is not valid UTF-8");
}

#[test]
fn a_missing_explicit_manifest_says_so() {
    let test = Test::new();
    test.run(["-m", "nope.toml", "--", "true"])
        .expect_code(125)
        .stderr_has("with-secrets: cannot read manifest nope.toml: No such file or directory")
        .stderr_has(
            "\n  create it with: with-secrets -m nope.toml init (or fix the --manifest path)\n",
        )
        .stderr_lacks("WITH_SECRETS_MANIFEST");
    // The line, run as printed, makes that file (plain `init` would not).
    test.run(["-m", "nope.toml", "init"]).success();
    assert!(test.path().join("nope.toml").is_file());
    assert!(!test.path().join("secrets.toml").exists());
}

#[test]
fn a_missing_manifest_named_by_the_variable_names_the_variable() {
    let test = Test::new().env("WITH_SECRETS_MANIFEST", "nope.toml");
    test.run(["--", "true"])
        .expect_code(125)
        .stderr_has("with-secrets: cannot read manifest nope.toml: No such file or directory")
        .stderr_has(
            "\n  create it with: with-secrets init (or fix WITH_SECRETS_MANIFEST, or unset it \
             to use the nearest secrets.toml)\n",
        )
        .stderr_lacks("--manifest");
    // The line, run as printed, makes the file the variable names.
    test.run(["init"]).success();
    assert!(test.path().join("nope.toml").is_file());
    test.run(["check"]).success();
}

#[test]
fn the_example_manifest_parses() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/secrets.example.toml");
    let test = Test::new()
        .env("API_TOKEN", "x")
        .env("DATABASE_URL", "y")
        .env("SESSION_KEY", "z");
    for profile in [&[][..], &["--profile", "ci"]] {
        let mut args = vec!["-m", example];
        args.extend(profile);
        args.push("check");
        let run = test.run(&args);
        run.success();
        let lines: Vec<_> = run
            .stdout()
            .lines()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect();
        let username = if profile.is_empty() {
            "ci-bot"
        } else {
            "ci-deploy"
        };
        assert_eq!(
            lines,
            [
                format!("API_TOKEN acme-api {username}"),
                "DATABASE_URL acme dev-db".to_owned(),
                "SENTRY_DSN sentry acme".to_owned(),
                "SESSION_KEY acme session-key".to_owned(),
            ]
        );
    }
}

/// A manifest whose strings carry terminal escapes: colour, window title,
/// bell, and a line break that would fake a line of output.
const HOSTILE: &str = r#"[secrets]
API_TOKEN = { service = "acme\u001b[31m", username = "ci\u001b]0;owned\u0007bot\u202Egnp.exe", description = "red\u001b[2Jalert\nfake line" }
"#;

/// Whether `text` has a control character other than a line break (and the
/// carriage return a terminal transcript has).
fn has_control(text: &str) -> bool {
    text.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\r') || c == '\u{202e}')
}

#[test]
fn manifest_strings_reach_the_terminal_with_control_characters_escaped() {
    let test = Test::new()
        .manifest(HOSTILE)
        .file("dir\u{1b}[31m/m\u{1b}[31m.toml", HOSTILE)
        .cwd("dir\u{1b}[31m")
        .env("XDG_DATA_HOME", "/nonexistent/data")
        .env("WITH_SECRETS_STORE", "file");
    let mut outputs = Vec::new();
    for args in [
        &["check"][..],
        &["doctor"],
        &["-v", "--", "true"],
        &["import", "--from", "keyrings-alt"],
        &["get", "API_TOKEN"],
        &["delete", "API_TOKEN"],
        &["-m", "m\u{1b}[31m.toml", "check"],
        &["-m", "m\u{1b}[31m.toml", "-v", "env"],
    ] {
        let run = test.run(args);
        outputs.push((args.join(" "), run.stdout(), run.stderr()));
    }
    // The missing-secrets message, with the description.
    let run = test.run(["--", "true"]);
    run.expect_code(125).stderr_has("acme\\u{1b}[31m");
    outputs.push(("run".into(), run.stdout(), run.stderr()));
    // The `set` prompt, on a terminal (script(1)).
    let data = test.path().join("data");
    let transcript = test
        .env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_PASSPHRASE", "p")
        .on_terminal("set API_TOKEN", "API_TOKEN (", "value\r");
    assert!(
        transcript.contains("API_TOKEN (acme\\u{1b}[31m / "),
        "{transcript:?}"
    );
    outputs.push(("set".into(), transcript, String::new()));
    for (what, stdout, stderr) in &outputs {
        assert!(
            !has_control(stdout) && !has_control(stderr),
            "{what}:\n{stdout:?}\n{stderr:?}"
        );
    }
    let all: String = outputs
        .iter()
        .map(|(_, out, err)| format!("{out}{err}"))
        .collect();
    // Escaped, not dropped: the person sees what the manifest says.
    for shown in [
        "acme\\u{1b}[31m",
        "ci\\u{1b}]0;owned\\u{7}bot\\u{202e}gnp.exe",
        "red\\u{1b}[2Jalert\\nfake line",
    ] {
        assert!(all.contains(shown), "{shown} not shown in:\n{all}");
    }
    assert!(!all.contains("\nfake line"), "{all}");
}

#[test]
fn a_manifest_found_by_walking_up_that_another_user_owns_is_refused() {
    use std::os::unix::fs::chown;
    needs_root("it gives a file to another user");
    let test = Test::new()
        .manifest(&crate::support::manifest_for(&[("A", "s", "a")]))
        .cwd("sub")
        .env("A", "from-env");
    let manifest = test.path().join("secrets.toml");
    chown(&manifest, Some(4242), Some(4242)).unwrap();
    let run = test.run(["--", "sh", "-c", "echo ran"]);
    run.expect_code(125)
        .stderr_has("secrets.toml belongs to another user (uid 4242)")
        .stderr_has("if you trust it, name it: with-secrets -m ");
    assert!(!run.stdout().contains("ran"), "{}", run.stdout());
    test.run(["check"]).expect_code(125).stderr_has("uid 4242");
    // Named explicitly, it is used: that says the user means it.
    let path = manifest.to_string_lossy().into_owned();
    test.run(["-m", &path, "--", "sh", "-c", "printf %s \"$A\""])
        .success()
        .stdout_is("from-env");
    // Root's (as in a system-wide checkout) and one's own are used.
    chown(&manifest, Some(0), Some(0)).unwrap();
    test.run(["--", "sh", "-c", "printf %s \"$A\""])
        .success()
        .stdout_is("from-env");
}

#[test]
fn init_in_a_folder_with_combining_marks_writes_a_manifest_that_parses() {
    let test = Test::new().cwd("हिन्दी परियोजना");
    test.run(["init", "API_TOKEN"]).success();
    let written = test.path().join("हिन्दी परियोजना/secrets.toml");
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(text.contains("service = \"हिन्दी-परियोजना\""), "{text}");
    let check = test.env("API_TOKEN", "x").run(["check"]);
    check.success();
    assert!(
        check
            .stdout()
            .contains("API_TOKEN  हिन्दी-परियोजना  api-token  from environment"),
        "{}",
        check.stdout()
    );
}

#[test]
fn a_link_to_the_manifest_that_another_user_owns_is_refused() {
    use std::os::unix::fs::{lchown, symlink};
    needs_root("it gives a link to another user");
    // Someone who may write to a folder above yours links secrets.toml to a
    // file of root's: the file passes, the link's owner chose it.
    let test = Test::new()
        .file(
            "real/manifest.toml",
            crate::support::manifest_for(&[("A", "s", "a")]),
        )
        .cwd("sub")
        .env("A", "from-env");
    let link = test.path().join("secrets.toml");
    symlink(test.path().join("real/manifest.toml"), &link).unwrap();
    lchown(&link, Some(4242), Some(4242)).unwrap();
    test.run(["--", "true"])
        .expect_code(125)
        .stderr_has("secrets.toml belongs to another user (uid 4242)");
    // The same link, yours: used.
    lchown(&link, Some(0), Some(0)).unwrap();
    test.run(["--", "sh", "-c", "printf %s \"$A\""])
        .success()
        .stdout_is("from-env");
}

/// A project whose file store (own XDG_DATA_HOME, passphrase from the
/// environment) takes `set`, with `manifest`.
fn file_store_project(manifest: &str) -> Test {
    let test = Test::new().manifest(manifest);
    let data = test.path().join("data");
    test.env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", "a passphrase")
}

#[test]
fn an_unquoted_pasted_token_is_called_a_value_at_once() {
    const TOKEN: &str = "ghp_abc123def456ghi789jkl012mno345pqr678";
    for (manifest, line, fixed, set) in [
        (
            format!("[secrets]\nAPI_TOKEN = {TOKEN}\n"),
            2,
            "[secrets]\nAPI_TOKEN = { service = \"acme\", username = \"api\" }\n",
            &["set", "API_TOKEN"][..],
        ),
        (
            format!("[secrets]\n\n[profiles.staging.secrets]\nAPI_TOKEN = {TOKEN}\n"),
            4,
            "[secrets]\n\n[profiles.staging.secrets]\n\
             API_TOKEN = { service = \"acme\", username = \"api\" }\n",
            &["--profile", "staging", "set", "API_TOKEN"][..],
        ),
    ] {
        let test = file_store_project(&manifest);
        test.run(["check"])
            .expect_code(125)
            .stderr_has(&format!(
                "secrets.toml:{line}:13: `API_TOKEN = ...` looks like a value pasted into the \
                 manifest, but secrets belong in the keyring, not in a checked-in manifest; \
                 write API_TOKEN = {{ service = \"...\", username = \"...\" }}, then store the \
                 value with: with-secrets {}\n",
                set.join(" ")
            ))
            .stderr_has(&format!("{line} | API_TOKEN = ***\n"))
            .stderr_lacks("must be quoted")
            .never_shows("ghp_");
        // The advice, followed: the entry written, then the line as printed.
        let test = test.manifest(fixed);
        test.run_input(TOKEN, set).success();
        let mut get = set.to_vec();
        *get.iter_mut().find(|arg| **arg == "set").unwrap() = "get";
        test.run(get).success().stdout_is(TOKEN);
    }
    // A setting, or a string in an entry's table, that lost its quotes is
    // only that: TOML's own "must be quoted", never "a value pasted".
    for manifest in [
        "store = keyutils\n[secrets]\n",
        "[defaults]\nservice = acme\n[secrets]\n",
        "[vault]\nmount = kv\n[secrets]\n",
        "[secrets]\nAPI = { service = acme, username = \"x\" }\n",
        "[profiles.ci]\nstore = keyutils\n[secrets]\n",
    ] {
        file_store_project(manifest)
            .run(["check"])
            .expect_code(125)
            .stderr_has("must be quoted")
            .stderr_lacks("looks like a value");
    }
}

#[test]
fn a_table_one_typo_from_a_known_one_gets_did_you_mean() {
    let test = file_store_project("[secret]\nA = { service = \"s\", username = \"u\" }\n");
    test.run(["check"])
        .expect_code(125)
        .stderr_has("secrets.toml:1:2: unknown table [secret]; did you mean `[secrets]`?\n")
        .stderr_lacks("looks like a value");
    for (text, said) in [
        (
            "[default]\nservice = \"s\"\n",
            "unknown table [default]; did you mean `[defaults]`?",
        ),
        (
            "[profile.ci]\n",
            "unknown table [profile]; did you mean `[profiles.NAME]`?",
        ),
        (
            "stor = \"file\"\n",
            "unknown key `stor`; did you mean `store = \"...\"`?",
        ),
        (
            "[bogus]\n",
            "unknown table [bogus]; expected `store`, `[defaults]`",
        ),
    ] {
        file_store_project(text)
            .run(["check"])
            .expect_code(125)
            .stderr_has(said);
    }
    // Renamed as suggested, it works.
    file_store_project("[secrets]\nA = { service = \"s\", username = \"u\" }\n")
        .env("A", "x")
        .run(["check"])
        .success();
}
