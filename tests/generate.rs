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
fn a_run_that_stops_on_a_missing_value_generates_and_stores_nothing() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(
        r#"
[secrets]
SESSION_KEY = { service = "acme", username = "session-key", generate = true }
API_TOKEN   = { service = "acme", username = "api-token" }
"#,
    );
    // secret-tool, an independent client, finds no SESSION_KEY item.
    let stored = || {
        let lookup = service.secret_tool(
            &["lookup", "service", "acme", "username", "session-key"],
            None,
        );
        String::from_utf8(lookup.stdout).unwrap()
    };
    test.run(["--", "true"])
        .expect_code(125)
        .stderr_has("with-secrets set API_TOKEN")
        .stderr_lacks("set SESSION_KEY")
        .stderr_lacks("generated");
    assert_eq!(stored(), "", "a run that stopped stored SESSION_KEY");
    // Once the missing value is set, a run generates.
    service.store_foreign("acme", "api-token", "token", "api-token-value");
    test.run(["--", "true"]).success().stderr_has(
        "with-secrets: generated SESSION_KEY and stored it in secret-service; later runs use \
         the stored value",
    );
    assert_eq!(stored().trim_end().len(), 32);
}

#[test]
fn a_run_with_no_data_folder_to_lock_in_still_works() {
    // A user whose home cannot be written (HOME=/nonexistent in many
    // containers): no lock file can be made.
    let test = Test::new()
        .manifest(MANIFEST)
        .env("XDG_DATA_HOME", "/proc/with-secrets-test-cannot-exist");
    // No store (CI): the environment, as for any entry; nothing to lock.
    let run = test.run_env(
        &[
            ("SESSION_KEY", "from-ci"),
            ("DB_PASSWORD", "from-ci"),
            ("URL_TOKEN", "from-ci"),
        ],
        ["--", "sh", "-c", "printf %s \"$DB_PASSWORD\""],
    );
    run.success().stdout_is("from-ci");
    assert_eq!(run.stderr(), "");
    // A keyring: the values are generated, with a warning that runs started
    // at the same moment are not kept apart.
    let service = SecretService::start();
    let test = test.keyring(&service);
    let run = test.run(["--", "true"]);
    run.success()
        .stderr_has("with-secrets: warning: cannot make /proc/with-secrets-test-cannot-exist/")
        .stderr_has("generating without it (set XDG_DATA_HOME to a folder you can write to)")
        .stderr_has("with-secrets: generated SESSION_KEY, DB_PASSWORD, URL_TOKEN");
    assert_eq!(service.items("acme", "url-token").len(), 1);
}

#[test]
fn get_does_not_generate_what_the_environment_has() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(MANIFEST);
    // A run uses the variable; `get` reads the store only, and makes
    // nothing that would then win over the variable.
    test.run_env(&[("SESSION_KEY", "from-env")], ["get", "SESSION_KEY"])
        .expect_code(125)
        .stderr_has("SESSION_KEY is not stored in secret-service");
    assert!(service.items("acme", "session-key").is_empty());
    test.run_env(
        &[("SESSION_KEY", "from-env")],
        ["--", "sh", "-c", "printf %s \"$SESSION_KEY\""],
    )
    .success()
    .stdout_is("from-env");
}

#[test]
fn a_read_only_store_is_never_asked_to_hold_a_generated_value() {
    // keyrings.alt's files are read, never written: nothing is generated
    // into them, and `check` says the entry is missing, as a run does.
    let test = Test::new().manifest(MANIFEST).file(
        "data/python_keyring/keyring_pass.cfg",
        // base64 of "hello".
        "[acme]\nsession_2Dkey = \n\taGVsbG8=\n\n",
    );
    let data = test.path().join("data");
    let test = test
        .env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_STORE", "keyrings-alt");
    // `set` cannot store in a read-only store: no line says to, and the
    // lines that do work are printed instead.
    let advice = "keyrings-alt is read-only, so `set` cannot store in it; copy what it has \
                  into a writable store, store the rest there, then run with that store \
                  (--store auto):\n  \
                  with-secrets --store auto import --from keyrings-alt\n  \
                  with-secrets --store auto set DB_PASSWORD\n  \
                  with-secrets --store auto set URL_TOKEN\n";
    let check = test.run(["check"]);
    check.expect_code(1).stderr_has(advice);
    let out = check.stdout();
    assert!(out.contains("session-key  found"), "{out}");
    assert!(
        out.contains("db-password  missing: keyrings-alt is read-only\n"),
        "{out}"
    );
    assert!(!out.contains("set DB_PASSWORD"), "{out}");
    assert!(!out.contains("generated on first run"), "{out}");
    test.run(["--", "true"])
        .expect_code(125)
        .stderr_has("2 required secrets are missing from keyrings-alt")
        .stderr_has(advice)
        .stderr_lacks("\n  with-secrets set ");
    // Each line, run as printed (with the file store's passphrase, as
    // there is no terminal), does what it says.
    let test = test.env("WITH_SECRETS_PASSPHRASE", "a passphrase");
    test.run(["--store", "auto", "import", "--from", "keyrings-alt"])
        .success()
        .stderr_has("copied 1 of 3 entries from keyrings-alt into file");
    test.run_input("db", ["--store", "auto", "set", "DB_PASSWORD"])
        .success();
    test.run_input("url", ["--store", "auto", "set", "URL_TOKEN"])
        .success();
    assert_eq!(test.seen_with(&["--store", "auto"], &NAMES), "hello|db|url");
}

#[test]
fn check_counts_another_name_for_a_generated_item_as_resolving() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(&format!(
        "{MANIFEST}ALSO_SESSION_KEY = {{ service = \"acme\", username = \"session-key\" }}\n"
    ));
    let check = test.run(["check"]);
    check.success();
    assert_eq!(
        check
            .stdout()
            .matches("missing (generated on first run)")
            .count(),
        4,
        "{}",
        check.stdout()
    );
    // The variable set for SESSION_KEY makes nothing: ALSO_SESSION_KEY is
    // then missing, for `check` as for a run.
    let check = test.run_env(&[("SESSION_KEY", "from-env")], ["check"]);
    check.expect_code(1);
    assert!(
        check
            .stdout()
            .contains("session-key  missing: run with-secrets set ALSO_SESSION_KEY"),
        "{}",
        check.stdout()
    );
    test.run_env(&[("SESSION_KEY", "from-env")], ["--", "true"])
        .expect_code(125)
        .stderr_has("ALSO_SESSION_KEY");
    let seen = test.seen(&["SESSION_KEY", "ALSO_SESSION_KEY"]);
    let (first, second) = seen.split_once('|').unwrap();
    assert_eq!((first.len(), first), (32, second));
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
    // `-c` too.
    let test = Test::new()
        .keyring(&service)
        .manifest("[secrets]\nNEW = { service = \"acme\", username = \"new\", generate = true }\n");
    let run = test.run(["-c", "sh -c 'printf %s \"$NEW\"'"]);
    run.success().stderr_has("with-secrets: generated NEW");
    assert_eq!(run.stdout().len(), 32);
}

/// A project with `MANIFEST` whose store is the file store, in its own
/// data folder (returned), with the passphrase in the environment.
fn file_store_project() -> (Test, std::path::PathBuf) {
    let test = Test::new().manifest(MANIFEST);
    let data = test.path().join("data");
    let test = test
        .env("XDG_DATA_HOME", &data)
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE);
    (test, data)
}

/// Makes the file store's file, holding another project's value.
fn make_file_store(test: &Test) {
    std::fs::write(
        test.path().join("other.toml"),
        "[secrets]\nOTHER = { service = \"o\", username = \"o\" }\n",
    )
    .unwrap();
    test.run_input("x", ["-m", "other.toml", "set", "OTHER"])
        .success();
}

/// Starts 8 runs of `test` at once, as `make -j8` would, each printing the
/// three values; checks that exactly one generated them, that all printed
/// the same, and returns what they printed.
fn eight_at_once(test: &Test) -> String {
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
    for (index, name) in NAMES.iter().enumerate() {
        test.run(["get", name])
            .success()
            .stdout_is(seen[0].split('|').nth(index).unwrap());
    }
    seen.swap_remove(0)
}

#[test]
fn eight_parallel_first_runs_all_use_the_one_value_stored() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(MANIFEST);
    let lock = test
        .path()
        .join("home/.local/share/with-secrets/generate.lock");
    assert!(!lock.exists());
    eight_at_once(&test);
    for username in ["session-key", "db-password", "url-token"] {
        assert_eq!(service.items("acme", username).len(), 1, "{username}");
    }
    // Again, for other items, with a lock file that holds a mark now.
    let mark = std::fs::read_to_string(&lock).unwrap();
    assert_eq!(mark.len(), 16, "{mark:?}");
    std::fs::write(
        test.path().join("secrets.toml"),
        MANIFEST.replace("acme", "acme-2"),
    )
    .unwrap();
    eight_at_once(&test);
    assert_ne!(std::fs::read_to_string(&lock).unwrap(), mark);
    for username in ["session-key", "db-password", "url-token"] {
        assert_eq!(service.items("acme-2", username).len(), 1, "{username}");
    }
}

#[test]
fn eight_parallel_first_runs_share_one_value_in_the_file_store_too() {
    let (test, _) = file_store_project();
    make_file_store(&test);
    let values = eight_at_once(&test);
    assert_eq!(values.split('|').count(), 3);
}

#[test]
fn a_run_waits_for_the_lock_no_longer_than_its_timeout() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(MANIFEST);
    let dir = test.path().join("home/.local/share/with-secrets");
    std::fs::create_dir_all(&dir).unwrap();
    let ready = test.path().join("ready");
    // Another holder of the lock, which never lets go until killed. One
    // process throughout (--no-fork, then exec), so that killing it leaves
    // no `sleep` behind, and none of the test's output open.
    let mut holder = std::process::Command::new("flock")
        .arg("--no-fork")
        .arg(dir.join("generate.lock"))
        .args(["sh", "-c", "touch \"$0\"; exec sleep 600"])
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("flock (util-linux)");
    let start = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "flock never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let run = test.run(["--timeout", "1", "env"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    run.expect_code(125)
        .stderr_has("waited 1 s for another with-secrets run that is generating values")
        .stderr_has("if a with-secrets is stuck, stop it, then run this again");
    assert_eq!(run.stdout(), "", "nothing printed");
    assert!(service.items("acme", "session-key").is_empty());
}

#[test]
fn with_no_folder_for_the_lock_a_run_says_so_and_generates() {
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(MANIFEST);
    let mut command = test.command(["--", "true"]);
    command.env_remove("HOME").stdin(Stdio::null());
    let output = wait(command.spawn().unwrap());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "warning: neither XDG_DATA_HOME nor HOME is set, so there is no folder for the lock"
        ),
        "{stderr}"
    );
    assert_eq!(service.items("acme", "session-key").len(), 1);
}

#[test]
fn set_of_a_generated_entry_leaves_a_new_mark() {
    // So that a run that looked before this `set` looks again, and keeps
    // the value set instead of generating over it.
    let service = SecretService::start();
    let test = Test::new().keyring(&service).manifest(MANIFEST);
    test.run(["--", "true"]).success();
    let lock = test
        .path()
        .join("home/.local/share/with-secrets/generate.lock");
    let mark = std::fs::read_to_string(&lock).unwrap();
    test.run_input("chosen", ["set", "SESSION_KEY"]).success();
    assert_ne!(std::fs::read_to_string(&lock).unwrap(), mark);
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
    // No terminal and no passphrase: `set` as it is could not make the
    // file store, and the line says what it needs.
    let needs = "missing: the file store is not made yet, and nothing here can give its new \
                 passphrase: run with-secrets set SESSION_KEY at a terminal, or with \
                 WITH_SECRETS_PASSPHRASE set";
    assert!(check.stdout().contains(needs), "{}", check.stdout());
    test.run_input("x", ["set", "SESSION_KEY"]).expect_code(125);
    // With the passphrase, check gives the plain line, which works as
    // printed.
    let with_passphrase = test.run_env(&[("WITH_SECRETS_PASSPHRASE", "a passphrase")], ["check"]);
    assert!(
        with_passphrase
            .stdout()
            .contains("missing: run with-secrets set SESSION_KEY"),
        "{}",
        with_passphrase.stdout()
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
fn a_file_store_that_exists_gets_the_generated_values() {
    let (test, data) = file_store_project();
    // No file yet: nothing is made, not even the file.
    test.run(["--", "true"]).expect_code(125);
    let file = data.join("with-secrets/secrets.age");
    assert!(!file.exists());
    // Once there is one, a run fills it.
    make_file_store(&test);
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
fn openbao_gets_the_generated_values_in_one_write_per_secret() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let server = Bao::dev_audited(&log);
    let test = server
        .client(Test::new().manifest(MANIFEST))
        .env("WITH_SECRETS_STORE", "vault");
    let values = seen(&test);
    // The lookup's read of secret/acme, then one write with its three new
    // keys: a PATCH, which finds no secret yet, so a read and a create
    // with check-and-set. Not one write per value.
    let writes = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["type"] == "request")
        .filter(|entry| entry["request"]["path"] == "secret/data/acme")
        .map(|entry| entry["request"]["operation"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(writes, ["read", "patch", "read", "create"]);
    assert_shape(&values);
    let out = server.ok(&["kv", "get", "-format=json", "secret/acme"]);
    let data: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(data["data"]["data"]["session-key"], values[0].as_str());
    assert_eq!(data["data"]["data"]["url-token"], values[2].as_str());
    assert_eq!(seen(&test), values);
}

#[test]
fn a_store_that_refuses_the_write_says_which_values_it_could_not_keep() {
    let server = Bao::dev();
    let token = server.token_with_policy(
        "read-only",
        "path \"secret/data/*\" { capabilities = [\"read\"] }\n",
    );
    let test = server
        .client(Test::new().manifest(MANIFEST))
        .env("WITH_SECRETS_STORE", "vault")
        .env("BAO_TOKEN", token);
    test.run(["--", "true"])
        .expect_code(125)
        .stderr_has(
            "with-secrets: vault: cannot store the value generated for SESSION_KEY, DB_PASSWORD, \
             URL_TOKEN: ",
        )
        .stderr_lacks("generated SESSION_KEY");
}
