//! Values generated on first use (`generate` in an entry), against a real
//! Secret Service, a real file store and a real OpenBao.

use std::process::Stdio;

use crate::file_store::PASSPHRASE;
use crate::support::bao::Bao;
use crate::support::{SecretService, Test, wait};

const MANIFEST: &str = r#"
[secrets]
SESSION_KEY = { service = "acme", username = "session-key", generate = true }
DB_PASSWORD = { service = "acme", username = "db-password", generate = { length = 24, charset = "hex" } }
URL_TOKEN   = { service = "acme", username = "url-token", generate = { length = 4096, charset = "base64url" } }
"#;

const NAMES: [&str; 3] = ["SESSION_KEY", "DB_PASSWORD", "URL_TOKEN"];

/// What a run gives the command, as [SESSION_KEY, DB_PASSWORD, URL_TOKEN].
fn seen(test: &Test) -> Vec<String> {
    test.seen(&NAMES).split('|').map(str::to_owned).collect()
}

fn assert_shape(values: &[String]) {
    let is = |value: &str, length: usize, allowed: fn(char) -> bool| {
        value.len() == length && value.chars().all(allowed)
    };
    assert!(
        is(&values[0], 32, |c| c.is_ascii_alphanumeric()),
        "{}",
        values[0]
    );
    assert!(
        is(&values[1], 24, |c| matches!(c, '0'..='9' | 'a'..='f')),
        "{}",
        values[1]
    );
    assert!(
        is(&values[2], 4096, |c| c.is_ascii_alphanumeric()
            || c == '-'
            || c == '_'),
        "{}",
        &values[2][..40]
    );
}

#[test]
fn a_missing_value_is_generated_stored_and_read_back_by_every_later_run() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(MANIFEST);
    let check = test.run(["check"]);
    check.success();
    let out = check.stdout();
    assert_eq!(
        out.matches("missing (generated on first run)").count(),
        3,
        "{out}"
    );
    assert!(
        service.items("acme", "session-key").is_empty(),
        "check generates nothing"
    );

    let first = test.run([
        "--",
        "sh",
        "-c",
        "printf '%s|%s|%s' \"$SESSION_KEY\" \"$DB_PASSWORD\" \"$URL_TOKEN\"",
    ]);
    first.success().stderr_has(
        "with-secrets: generated SESSION_KEY, DB_PASSWORD, URL_TOKEN and stored them in \
             secret-service; later runs use the stored values",
    );
    let values: Vec<String> = first.stdout().split('|').map(str::to_owned).collect();
    assert_shape(&values);
    for value in &values {
        assert!(
            !first.stderr().contains(value.as_str()),
            "{}",
            first.stderr()
        );
    }
    // Stored as Python's keyring stores items, with our label.
    let items = service.items("acme", "session-key");
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].label,
        "SESSION_KEY (with-secrets: acme / session-key)"
    );
    assert_eq!(
        test.keyring_cli(&["get", "acme", "db-password"], ""),
        format!("{}\n", values[1])
    );
    // Later runs, `env`, `get` and -q read the same values, and say nothing.
    let again = test.run(["--", "true"]);
    again.success();
    assert_eq!(again.stderr(), "");
    assert_eq!(seen(&test), values);
    test.run(["get", "SESSION_KEY"])
        .success()
        .stdout_is(&values[0]);
    test.run(["env", "--format", "json"])
        .success()
        .stdout_is(&format!(
            "{{\n  \"SESSION_KEY\": \"{}\",\n  \"DB_PASSWORD\": \"{}\",\n  \"URL_TOKEN\": \"{}\"\n}}\n",
            values[0], values[1], values[2]
        ));
    let check = test.run(["check"]);
    check.success();
    assert_eq!(
        check.stdout().matches("  found").count(),
        3,
        "{}",
        check.stdout()
    );

    // `set` still overwrites a generated value.
    test.run_input("chosen", ["set", "DB_PASSWORD"]).success();
    assert_eq!(seen(&test)[1], "chosen");
    assert_eq!(service.items("acme", "db-password").len(), 1);
}

#[test]
fn get_env_and_quiet_runs_generate_too() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(MANIFEST);
    let get = test.run(["-q", "get", "DB_PASSWORD"]);
    get.success();
    assert_eq!(get.stderr(), "", "-q silences the notice");
    let password = get.stdout();
    assert_eq!(password.len(), 24);
    // `get` made only its own entry.
    assert!(service.items("acme", "session-key").is_empty());
    let env = test.run(["env"]);
    env.success()
        .stderr_has("with-secrets: generated SESSION_KEY, URL_TOKEN and stored them");
    assert!(
        env.stdout()
            .contains(&format!("export DB_PASSWORD={password}\n")),
        "{}",
        env.stdout()
    );
}

#[test]
fn eight_parallel_first_runs_all_use_the_one_value_stored() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(MANIFEST);
    let printf = "printf '%s|%s|%s' \"$SESSION_KEY\" \"$DB_PASSWORD\" \"$URL_TOKEN\"";
    // As `make -j8` would: all started before any is waited for.
    let children: Vec<_> = (0..8)
        .map(|_| {
            let mut command = test.command(["--", "sh", "-c", printf]);
            command.stdin(Stdio::null());
            command.spawn().expect("spawn with-secrets")
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(wait).collect();
    let mut generated = 0;
    let mut seen = Vec::new();
    for output in &outputs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        generated += usize::from(stderr.contains("generated"));
        seen.push(String::from_utf8(output.stdout.clone()).unwrap());
    }
    assert_eq!(
        generated, 1,
        "one run generated, the others read its values"
    );
    assert!(seen.iter().all(|values| *values == seen[0]), "{seen:#?}");
    for (username, index) in [("session-key", 0), ("db-password", 1), ("url-token", 2)] {
        assert_eq!(service.items("acme", username).len(), 1, "{username}");
        test.run(["get", NAMES[index]])
            .success()
            .stdout_is(seen[0].split('|').nth(index).unwrap());
    }
}

#[test]
fn with_no_store_nothing_is_generated_and_the_usual_rules_apply() {
    // CI: no session bus, no file store. `auto` passes over the Secret
    // Service to a file store that does not exist.
    let test = Test::new().manifest(MANIFEST);
    let data = test.path().join("data");
    let test = test.env("XDG_DATA_HOME", &data);
    let check = test.run(["check"]);
    check.expect_code(1);
    assert!(
        check
            .stdout()
            .contains("missing: run with-secrets set SESSION_KEY"),
        "{}",
        check.stdout()
    );
    test.run(["--", "true"])
        .expect_code(125)
        .stderr_has("3 required secrets are missing from file and the environment");
    // The environment stands in, as for any entry.
    test.run_env(
        &[
            ("SESSION_KEY", "from-ci"),
            ("DB_PASSWORD", "from-ci"),
            ("URL_TOKEN", "from-ci"),
        ],
        ["--", "sh", "-c", "printf %s \"$SESSION_KEY\""],
    )
    .success()
    .stdout_is("from-ci");
    assert!(
        !data.join("with-secrets/secrets.age").exists(),
        "no store was made"
    );
    // A keyring that is there, with the variable set: the variable wins,
    // and nothing is generated for it.
    let service = SecretService::start();
    let test = test.keyring(&service);
    test.run_env(
        &[("SESSION_KEY", "from-env")],
        ["--", "sh", "-c", "printf %s \"$SESSION_KEY\""],
    )
    .success()
    .stdout_is("from-env");
    assert!(service.items("acme", "session-key").is_empty());
    assert_eq!(service.items("acme", "db-password").len(), 1);
}

#[test]
fn a_file_store_gets_every_generated_value_in_one_write() {
    let test = Test::new().manifest(MANIFEST);
    let data = test.path().join("data");
    let test = test
        .env("XDG_DATA_HOME", &data)
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    // No file yet: nothing is made, not even the file.
    test.run(["--", "true"]).expect_code(125);
    let file = data.join("with-secrets/secrets.age");
    assert!(!file.exists());
    // Once there is one, a run fills it.
    std::fs::write(
        test.path().join("other.toml"),
        "[secrets]\nOTHER = { service = \"o\", username = \"o\" }\n",
    )
    .unwrap();
    test.run_input("x", ["-m", "other.toml", "set", "OTHER"])
        .success();
    let before = std::fs::metadata(&file).unwrap().modified().unwrap();
    let values = seen(&test);
    assert_shape(&values);
    assert_ne!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(seen(&test), values);
    // The real age CLI opens it, and finds the three values in it.
    let plain = crate::file_store::age_decrypt(&test, &file).to_string();
    for value in &values {
        assert!(plain.contains(value.as_str()));
    }
}

#[test]
fn openbao_gets_the_generated_values() {
    let server = Bao::dev();
    let test = server
        .client(Test::new().manifest(MANIFEST))
        .env("WITH_SECRETS_STORE", "vault");
    let values = seen(&test);
    assert_shape(&values);
    let out = server.ok(&["kv", "get", "-format=json", "secret/acme"]);
    let data: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(data["data"]["data"]["session-key"], values[0].as_str());
    assert_eq!(data["data"]["data"]["url-token"], values[2].as_str());
    assert_eq!(seen(&test), values);
}
