//! The `vault` store against a real OpenBao (`bao server -dev`, one per
//! test; see tests/support/bao.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::bao::{Bao, Cluster};
use crate::support::{SecretService, Test, manifest_for};

/// A project whose store is `vault`, on `server`, with `manifest`.
fn project(server: &Bao, manifest: &str) -> Test {
    server
        .client(Test::new().manifest(manifest))
        .env("WITH_SECRETS_STORE", "vault")
}

/// `bao kv put secret/PATH key=value...`.
fn put(server: &Bao, path: &str, pairs: &[(&str, &str)]) {
    let mut args = vec!["kv".to_owned(), "put".to_owned(), format!("secret/{path}")];
    args.extend(pairs.iter().map(|(key, value)| format!("{key}={value}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    server.ok(&args);
}

/// The data of `secret/PATH` as `bao kv get -format=json` gives it.
fn data(server: &Bao, path: &str) -> serde_json::Value {
    let out = server.ok(&["kv", "get", "-format=json", &format!("secret/{path}")]);
    let parsed: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    parsed["data"]["data"].clone()
}

/// How many requests the audit log at `log` has logged whose path starts
/// with `prefix`.
fn requests(log: &std::path::Path, prefix: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["type"] == "request")
        .filter(|entry| {
            entry["request"]["path"]
                .as_str()
                .is_some_and(|path| path.starts_with(prefix))
        })
        .count()
}

#[test]
fn fifty_entries_in_five_paths_are_five_reads_and_the_mount_query_on_one_connection() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let server = Bao::dev_audited(&log);
    let mut manifest = String::from("[secrets]\n");
    let mut names = Vec::new();
    for path in 0..5 {
        let pairs: Vec<(String, String)> = (0..10)
            .map(|key| (format!("key{key}"), format!("value {path}.{key} ✓")))
            .collect();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        put(&server, &format!("team/app{path}"), &pairs);
        for key in 0..10 {
            let name = format!("V{path}_{key}");
            manifest.push_str(&format!(
                "{name} = {{ service = \"app{path}\", username = \"key{key}\" }}\n"
            ));
            names.push(name);
        }
    }
    // One more key in one secret that the manifest does not name.
    server.ok(&["kv", "patch", "secret/team/app0", "unnamed=not read"]);
    manifest = format!("[vault]\nprefix = \"team\"\n{manifest}");
    let test = project(&server, &manifest);
    let (reads, mounts, all) = (
        requests(&log, "secret/data/"),
        requests(&log, "sys/internal/ui/mounts/secret"),
        requests(&log, ""),
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let expected: Vec<String> = (0..5)
        .flat_map(|path| (0..10).map(move |key| format!("value {path}.{key} ✓")))
        .collect();
    assert_eq!(test.seen(&names), expected.join("|"));
    assert_eq!(
        requests(&log, "secret/data/") - reads,
        5,
        "one read per path"
    );
    assert_eq!(
        requests(&log, "sys/internal/ui/mounts/secret") - mounts,
        1,
        "and the mount's version"
    );
    assert_eq!(requests(&log, "") - all, 6, "and nothing else");
    // All on one connection: the server saw one client port.
    let ports: std::collections::BTreeSet<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["type"] == "request")
        .skip(all)
        .filter_map(|entry| entry["request"]["remote_port"].as_u64())
        .collect();
    assert_eq!(ports.len(), 1, "{ports:?}");
}

#[test]
fn set_changes_one_key_and_keeps_the_rest_and_delete_removes_one() {
    let server = Bao::dev();
    put(&server, "acme", &[("other", "kept"), ("token", "old")]);
    let test = project(
        &server,
        &manifest_for(&[("TOKEN", "acme", "token"), ("NEW", "fresh", "key")]),
    );
    test.run_input("new value ✓", ["set", "TOKEN"]).success();
    assert_eq!(
        data(&server, "acme"),
        serde_json::json!({ "other": "kept", "token": "new value ✓" })
    );
    // A secret that does not exist yet is made.
    test.run_input("made", ["set", "NEW"]).success();
    assert_eq!(data(&server, "fresh"), serde_json::json!({ "key": "made" }));
    test.run(["get", "TOKEN"])
        .success()
        .stdout_is("new value ✓");
    test.run(["delete", "TOKEN"]).success();
    assert_eq!(
        data(&server, "acme"),
        serde_json::json!({ "other": "kept" })
    );
    test.run(["delete", "TOKEN"])
        .success()
        .stderr_has("nothing to delete");
    test.run(["get", "TOKEN"]).expect_code(125);
}

/// A policy on `secret/data/*` with `capabilities`.
fn policy(capabilities: &str) -> String {
    format!(
        "path \"secret/data/*\" {{ capabilities = [{capabilities}] }}\n\
         path \"auth/token/lookup-self\" {{ capabilities = [\"read\"] }}\n"
    )
}

#[test]
fn eight_concurrent_sets_on_one_path_keep_all_eight_with_and_without_patch() {
    let server = Bao::dev();
    let with_patch = server.token_with_policy(
        "with-patch",
        &policy("\"create\", \"read\", \"update\", \"patch\""),
    );
    let without_patch =
        server.token_with_policy("without-patch", &policy("\"create\", \"read\", \"update\""));
    for (round, token) in [("patch", with_patch), ("cas", without_patch)] {
        let path = format!("shared-{round}");
        let entries: Vec<(String, String)> = (0..8)
            .map(|i| (format!("K{i}"), format!("key{i}")))
            .collect();
        let entries: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|(name, key)| (name.as_str(), path.as_str(), key.as_str()))
            .collect();
        let test = project(&server, &manifest_for(&entries)).env("BAO_TOKEN", &token);
        let children: Vec<_> = (0..8)
            .map(|i| {
                test.spawn_input(
                    ["set".to_owned(), format!("K{i}")],
                    format!("value {i}").as_bytes(),
                )
            })
            .collect();
        for child in children {
            let output = crate::support::wait(child);
            assert!(
                output.status.success(),
                "{round}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let expected: serde_json::Map<String, serde_json::Value> = (0..8)
            .map(|i| (format!("key{i}"), format!("value {i}").into()))
            .collect();
        assert_eq!(
            data(&server, &path),
            serde_json::Value::Object(expected),
            "{round}"
        );
    }
}

#[test]
fn import_fills_the_team_store_from_a_keyring_and_a_keyring_from_it() {
    let keyring = SecretService::start();
    let server = Bao::dev();
    let manifest = manifest_for(&[("A", "import", "a"), ("B", "import", "b")]);
    let test = server
        .client(Test::new().manifest(&manifest))
        .keyring(&keyring);
    test.run_input("from my keyring", ["--store", "secret-service", "set", "A"])
        .success();
    let run = test.run(["--store", "vault", "import", "--from", "secret-service"]);
    run.success();
    assert!(run.stdout().contains("copied     A"), "{}", run.stdout());
    assert_eq!(
        data(&server, "import"),
        serde_json::json!({ "a": "from my keyring" })
    );
    put(
        &server,
        "import",
        &[("a", "from my keyring"), ("b", "from the team")],
    );
    let run = test.run(["--store", "secret-service", "import", "--from", "openbao"]);
    run.success();
    test.run(["--store", "secret-service", "get", "B"])
        .success()
        .stdout_is("from the team");
}

#[test]
fn the_token_comes_from_the_variables_then_the_token_file() {
    let server = Bao::dev();
    put(&server, "acme", &[("token", "v")]);
    let manifest = manifest_for(&[("TOKEN", "acme", "token")]);
    let test = Test::new()
        .manifest(&manifest)
        .env("BAO_ADDR", &server.address)
        .env("WITH_SECRETS_STORE", "vault");
    // No token anywhere.
    test.run(["get", "TOKEN"])
        .expect_code(125)
        .stderr_has("no token for")
        .stderr_has("run `bao login` (or `vault login`)");
    // ~/.vault-token, as `bao login` writes it.
    let test = test.file("home/.vault-token", format!("{}\n", server.token));
    test.run(["get", "TOKEN"]).success().stdout_is("v");
    // VAULT_TOKEN before the file, BAO_TOKEN before VAULT_TOKEN.
    let test = test.env("VAULT_TOKEN", "bad-token");
    test.run(["get", "TOKEN"])
        .expect_code(125)
        .stderr_has("does not accept the token from VAULT_TOKEN");
    let test = test.env("BAO_TOKEN", &server.token);
    test.run(["get", "TOKEN"]).success().stdout_is("v");
}

#[test]
fn a_bad_token_and_a_refusing_policy_are_told_apart() {
    let server = Bao::dev();
    put(&server, "acme", &[("token", "v")]);
    let manifest = manifest_for(&[("TOKEN", "acme", "token")]);
    let with_token = |token: &str| {
        project(&server, &manifest)
            .env("TOKEN", "stale")
            .env("BAO_TOKEN", token)
    };
    with_token("not-a-token")
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("does not accept the token from BAO_TOKEN: it is not valid")
        .stderr_has("run `bao login`");
    let revoked = server.token_with_policy("all", &policy("\"read\""));
    server.ok(&["token", "revoke", &revoked]);
    with_token(&revoked)
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("it is not valid");
    // An expired token: one second to live, then the server forgets it.
    let expiring = server
        .ok(&["token", "create", "-field=token", "-ttl=1s", "-policy=all"])
        .trim()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.cli(&["token", "lookup", &expiring]).status.success() {
        assert!(Instant::now() < deadline, "the token never expired");
        std::thread::yield_now();
    }
    with_token(&expiring)
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("it is not valid (expired, revoked or mistyped)");
    let elsewhere = server.token_with_policy(
        "elsewhere",
        "path \"secret/data/other\" { capabilities = [\"read\"] }\n",
    );
    with_token(&elsewhere)
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("the token's policy refuses secret/acme on")
        .never_shows("stale");
}

#[test]
fn a_sealed_server_an_unknown_namespace_and_a_missing_mount_are_named() {
    let server = Bao::dev();
    put(&server, "acme", &[("token", "v")]);
    let test = project(&server, &manifest_for(&[("TOKEN", "acme", "token")]));
    project(&server, &manifest_for(&[("TOKEN", "acme", "token")]))
        .env("BAO_NAMESPACE", "nope")
        .run(["get", "TOKEN"])
        .expect_code(125)
        .stderr_has("has no namespace `nope`");
    let other_mount = project(
        &server,
        &format!(
            "[vault]\nmount = \"kv\"\n{}",
            manifest_for(&[("TOKEN", "acme", "token")])
        ),
    );
    other_mount
        .run(["get", "TOKEN"])
        .expect_code(125)
        .stderr_has("has no secrets engine at `kv`");
    server.ok(&["operator", "seal"]);
    test.run(["get", "TOKEN"])
        .expect_code(125)
        .stderr_has("is sealed");
}

#[test]
fn a_deleted_secret_is_missing_and_set_writes_it_again() {
    // Its latest version deleted: the server's 404 holds its metadata.
    let server = Bao::dev();
    put(&server, "acme", &[("token", "v")]);
    server.ok(&["kv", "delete", "secret/acme"]);
    let test = project(&server, &manifest_for(&[("TOKEN", "acme", "token")]));
    test.run(["--", "true"])
        .expect_code(125)
        .stderr_has("1 required secret is missing from vault");
    test.run_input("again", ["set", "TOKEN"]).success();
    test.run(["get", "TOKEN"]).success().stdout_is("again");
}

#[test]
fn a_missing_key_is_missing_with_the_usual_line() {
    let server = Bao::dev();
    put(&server, "acme", &[("token", "v")]);
    let test = project(
        &server,
        &manifest_for(&[("TOKEN", "acme", "token"), ("GONE", "acme", "gone")]),
    );
    test.run(["--", "true"])
        .expect_code(125)
        .stderr_has("1 required secret is missing from vault")
        .stderr_has("with-secrets set GONE");
}

#[test]
fn the_environment_stands_in_only_when_no_address_is_set() {
    let manifest = manifest_for(&[("TOKEN", "acme", "token")]);
    let ci = || {
        Test::new()
            .manifest(&manifest)
            .env("WITH_SECRETS_STORE", "vault")
            .env("TOKEN", "from ci")
    };
    ci().run(["--", "sh", "-c", "printf %s \"$TOKEN\""])
        .success()
        .stdout_is("from ci");
    // An address where nothing listens: an error, whatever TOKEN holds.
    let port = crate::support::bao::free_port();
    let down = ci()
        .env("BAO_ADDR", format!("http://127.0.0.1:{port}"))
        .env("BAO_TOKEN", "t");
    let run = down.run(["--", "sh", "-c", "printf %s \"$TOKEN\""]);
    run.expect_code(125)
        .stderr_has(&format!("nothing listens at http://127.0.0.1:{port}"))
        .never_shows("from ci");
}

#[test]
fn a_server_that_never_answers_is_an_error_at_the_deadline() {
    // Accepts connections, reads, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buffer = [0u8; 1024];
            let _ = stream.read(&mut buffer);
            held.push(stream);
        }
    });
    let test = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "acme", "token")]))
        .env("WITH_SECRETS_STORE", "vault")
        .env("BAO_ADDR", format!("http://127.0.0.1:{port}"))
        .env("BAO_TOKEN", "t")
        .env("TOKEN", "stale");
    let started = Instant::now();
    let run = test.run(["--timeout", "1", "--", "true"]);
    run.expect_code(125)
        .stderr_has(&format!(
            "http://127.0.0.1:{port} did not answer within 1 s"
        ))
        .never_shows("stale");
    assert!(started.elapsed() < Duration::from_secs(20), "it hung");
}

#[test]
fn tls_is_verified_against_the_ca_the_variables_name() {
    let server = Bao::dev_tls();
    put(&server, "acme", &[("token", "over tls")]);
    let test = project(&server, &manifest_for(&[("TOKEN", "acme", "token")]));
    test.run(["get", "TOKEN"]).success().stdout_is("over tls");
    // The system's roots do not know the dev server's CA.
    let no_ca = || {
        Test::new()
            .manifest(&manifest_for(&[("TOKEN", "acme", "token")]))
            .env("WITH_SECRETS_STORE", "vault")
            .env("BAO_ADDR", &server.address)
            .env("BAO_TOKEN", &server.token)
    };
    no_ca()
        .run(["get", "TOKEN"])
        .expect_code(125)
        .stderr_has("the TLS connection to")
        .stderr_has("set BAO_CACERT (or VAULT_CACERT)");
    // Another server's CA: refused too, naming the variable.
    let other = Bao::dev_tls();
    let other_ca = other.ca.clone().expect("a dev-tls CA");
    no_ca()
        .env("VAULT_CACERT", &other_ca)
        .run(["get", "TOKEN"])
        .expect_code(125)
        .stderr_has("the TLS connection to")
        .stderr_has("VAULT_CACERT=");
}

#[test]
fn the_manifest_names_the_mount_and_the_prefix() {
    let server = Bao::dev();
    server.ok(&["secrets", "enable", "-path=team-kv", "kv-v2"]);
    server.ok(&["kv", "put", "team-kv/apps/acme/api", "token=from the mount"]);
    let test = project(
        &server,
        &format!(
            "[vault]\nmount = \"/team-kv/\"\nprefix = \"apps/acme\"\n{}",
            manifest_for(&[("TOKEN", "api", "token")])
        ),
    );
    // Right after a mount is enabled the server may say "Waiting for the
    // primary to upgrade": retried.
    test.run(["get", "TOKEN"])
        .success()
        .stdout_is("from the mount");
    let bad = project(
        &server,
        "[vault]\nmount = \"team-kv\"\nsecret_path = \"x\"\n[secrets]\n",
    );
    bad.run(["check"])
        .expect_code(125)
        .stderr_has("secrets.toml:3:1: unknown key `secret_path` in [vault]");
}

#[test]
fn doctor_shows_the_server_token_source_seal_and_ha_state_never_the_token() {
    let server = Bao::dev();
    // In a namespace, where the server refuses sys/health: doctor asks it
    // of the root namespace.
    server.ok(&["namespace", "create", "team"]);
    let test =
        project(&server, &manifest_for(&[("TOKEN", "acme", "token")])).env("BAO_NAMESPACE", "team");
    let doctor = |expected: &[&str]| {
        let run = test.run(["doctor"]);
        run.never_shows(&server.token);
        let out = run.stdout();
        for line in expected {
            assert!(out.contains(line), "no {line:?} in:\n{out}");
        }
        out
    };
    doctor(&[
        "uses:           vault (chosen by WITH_SECRETS_STORE)",
        &format!("vault:          {} (namespace team)", server.address),
        "token:          from BAO_TOKEN: valid",
        "server:         unsealed, active node",
    ]);
    let run = test.run(["-v", "check"]);
    run.never_shows(&server.token).stderr_has(&format!(
        "vault at {}, namespace team (token from BAO_TOKEN)",
        server.address
    ));
    server.ok(&["operator", "seal"]);
    let out = doctor(&["server:         SEALED: unseal it (`bao operator unseal`)"]);
    assert!(!out.contains("unsealed"), "{out}");
}

#[test]
fn doctor_tells_a_state_only_from_a_health_answer() {
    // Every request answered with an error, in the server's JSON.
    let address = scripted(|_, stream| {
        let body = r#"{"errors":["operation unavailable in namespaces"]}"#;
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes());
        true
    });
    let run = on_scripted(&address, &manifest_for(&[("A", "acme", "token")])).run(["doctor"]);
    let out = run.stdout();
    assert!(
        out.contains(
            "server:         state unknown: the server answered 400 to sys/health: operation \
             unavailable in namespaces"
        ),
        "{out}"
    );
    assert!(!out.contains("unsealed"), "{out}");
}

#[test]
fn killing_the_active_node_never_runs_the_command_with_wrong_or_partial_values() {
    let mut cluster = Cluster::start();
    cluster.cli(0, &["kv", "put", "secret/ha", "a=alpha", "b=beta"]);
    let manifest = manifest_for(&[
        ("A", "ha", "a"),
        ("B", "ha", "b"),
        ("C", "ha-late", "c"),
        ("D", "ha-writes", "d"),
    ]);
    // Every run goes through node 1, a standby until the kill.
    let test = Test::new()
        .manifest(&manifest)
        .env("WITH_SECRETS_STORE", "vault")
        .env("BAO_ADDR", &cluster.nodes[1].address)
        .env("BAO_TOKEN", &cluster.token);
    let print = [
        "--timeout",
        "5",
        "--",
        "sh",
        "-c",
        "printf '[%s|%s|%s]' \"$A\" \"$B\" \"$C\"",
    ];
    test.run_input("w", ["set", "D"]).success();
    // A write through a standby is forwarded to the active node; the
    // standby answers reads itself, so it shows the write once it has
    // replicated it (OpenBao's eventual consistency, with standby reads on).
    test.run_input("late", ["set", "C"]).success();
    until_seen(&test, &print, "[alpha|beta|late]");
    // Written just before the kill, through the active node, and seen by
    // node 1, so that no answer of node 1 can be older than it.
    cluster.cli(0, &["kv", "patch", "secret/ha-late", "c=just before"]);
    until_seen(&test, &print, "[alpha|beta|just before]");
    cluster.nodes[0].kill();
    let killed = Instant::now();
    let mut outcomes: Vec<String> = Vec::new();
    let mut successes = 0;
    let mut leader_at = None;
    // Each write made during the election: its value, whether it said it
    // was stored, and what it said.
    let mut writes: Vec<(String, bool, String)> = Vec::new();
    loop {
        let run = test.run(print);
        match run.code() {
            Some(0) => {
                assert_eq!(run.stdout(), "[alpha|beta|just before]", "{outcomes:?}");
                successes += 1;
                outcomes.push(format!("{:.1?}: ok", killed.elapsed()));
            }
            Some(125) => {
                let stderr = run.stderr();
                assert!(stderr.starts_with("with-secrets: "), "{stderr}");
                assert_eq!(run.stdout(), "", "the command ran: {stderr}");
                outcomes.push(format!(
                    "{:.1?}: 125 {}",
                    killed.elapsed(),
                    stderr.lines().next().unwrap_or_default()
                ));
            }
            other => panic!("exit {other:?}: {}", run.stderr()),
        }
        // A write during the election: retried (307, 500) until a leader
        // takes it, or an error at the deadline; never half done.
        let value = format!("w{}", writes.len() + 1);
        let set = test.run_input(&value, ["--timeout", "5", "set", "D"]);
        let stderr = set.stderr();
        match set.code() {
            Some(0) => writes.push((value, true, format!("{:.1?}: ok", killed.elapsed()))),
            Some(125) => {
                assert!(stderr.starts_with("with-secrets: vault: "), "{stderr}");
                writes.push((
                    value,
                    false,
                    format!(
                        "{:.1?}: 125 {}",
                        killed.elapsed(),
                        stderr.lines().next().unwrap_or_default()
                    ),
                ));
            }
            other => panic!("set exit {other:?}: {stderr}"),
        }
        let leader = cluster.is_active(1) || cluster.is_active(2);
        if leader && leader_at.is_none() {
            leader_at = Some(killed.elapsed());
        }
        // Done once a leader is back, runs print the right values, and a
        // write went through after the kill.
        if successes >= 3 && leader && writes.last().is_some_and(|(_, stored, _)| *stored) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "no new leader, no good run or no write, 90 s after the kill: {outcomes:#?} {writes:#?}"
        );
    }
    // Writes work again through the survivor, once a leader is back.
    test.run_input("after", ["set", "C"]).success();
    until_seen(&test, &print, "[alpha|beta|after]");
    // Node 1 has seen C's write, made after every write of D: D is what the
    // last write that said "stored" wrote, or what a later one that gave
    // up may still have written; never an older value, never a lost write.
    let last_stored = writes.iter().rposition(|(_, stored, _)| *stored);
    let possible: Vec<&str> = match last_stored {
        Some(index) => writes[index..].iter().map(|(v, ..)| v.as_str()).collect(),
        None => std::iter::once("w")
            .chain(writes.iter().map(|(v, ..)| v.as_str()))
            .collect(),
    };
    let run = test.run(["--timeout", "30", "--", "sh", "-c", "printf %s \"$D\""]);
    run.success();
    assert!(
        possible.contains(&run.stdout().as_str()),
        "D is {:?}, not one of {possible:?}; writes: {writes:#?}",
        run.stdout()
    );
    let failed: Vec<&String> = outcomes.iter().filter(|o| o.contains(": 125 ")).collect();
    eprintln!(
        "after the kill: {} runs, {successes} with the right values, {} exited 125 {failed:#?}; \
         a new leader within {:.1?}",
        outcomes.len(),
        failed.len(),
        leader_at.unwrap_or_default()
    );
    let said: Vec<&String> = writes.iter().map(|(.., said)| said).collect();
    eprintln!("writes after the kill: {said:#?}");
}

/// Runs `args` until the command prints `expected`, for at most 30 s.
fn until_seen(test: &Test, args: &[&str], expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = test.run(args);
        if run.code() == Some(0) && run.stdout() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never printed {expected:?}; last: {:?} {}{}",
            run.code(),
            run.stdout(),
            run.stderr()
        );
    }
}

#[test]
fn a_large_value_comes_back_whole_beside_a_small_one() {
    // The server sends answers over 2 KiB in chunks; two paths make the
    // chunked answer one of a pipelined batch.
    let server = Bao::dev();
    // 40 KB: well over that, and under what a pipe holds, as the harness
    // reads the output once the run has ended.
    let big: String = (0..40_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let test = project(
        &server,
        &manifest_for(&[("BIG", "large", "value"), ("SMALL", "small", "value")]),
    );
    test.run_input(&big, ["set", "BIG"]).success();
    test.run_input("tiny", ["set", "SMALL"]).success();
    let seen = test.seen(&["BIG", "SMALL"]);
    assert_eq!(seen.len(), big.len() + "|tiny".len());
    assert_eq!(seen, format!("{big}|tiny"));
}

#[test]
fn the_address_comes_from_bao_addr_before_vault_addr() {
    let server = Bao::dev();
    put(&server, "acme", &[("token", "v")]);
    let test = || {
        Test::new()
            .manifest(&manifest_for(&[("TOKEN", "acme", "token")]))
            .env("WITH_SECRETS_STORE", "vault")
            .env("VAULT_TOKEN", &server.token)
    };
    test()
        .env("VAULT_ADDR", &server.address)
        .run(["get", "TOKEN"])
        .success()
        .stdout_is("v");
    let port = crate::support::bao::free_port();
    test()
        .env("VAULT_ADDR", &server.address)
        .env("BAO_ADDR", format!("http://127.0.0.1:{port}"))
        .run(["get", "TOKEN"])
        .expect_code(125)
        .stderr_has(&format!("nothing listens at http://127.0.0.1:{port}"));
}

/// A request as a scripted server reads it.
struct Asked {
    method: String,
    path: String,
}

/// Reads one request from `reader`; `None` once the client is gone.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Asked> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Asked { method, path })
}

/// A hostile or odd server on 127.0.0.1, scripted by `answer`: called with
/// each request read and the connection, it writes what it likes and says
/// whether to read the next request on the same connection. Returns the
/// address to set as BAO_ADDR.
fn scripted(answer: impl Fn(&Asked, &mut TcpStream) -> bool + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = Arc::clone(&answer);
            std::thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                // A client that stops writing ends this thread in time.
                let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                while let Some(asked) = read_request(&mut reader) {
                    if !answer(&asked, &mut writer) {
                        break;
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Writes a JSON answer with `status` and `body`, in one write (no wait for
/// an acknowledgement between pieces); `true`, to go on serving.
fn json_answer(stream: &mut TcpStream, status: &str, body: &str) -> bool {
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes());
    true
}

/// A KV v2 answer for a read of `path`: its key `key` holds the path's last
/// segment; or the mount's version, for the mounts query.
fn kv_answer(path: &str) -> String {
    if path.starts_with("/v1/sys/internal/ui/mounts/") {
        return r#"{"data":{"type":"kv","options":{"version":"2"},"path":"secret/"}}"#.to_owned();
    }
    let name = path.rsplit('/').next().unwrap_or_default();
    format!(r#"{{"data":{{"data":{{"key":"{name}"}},"metadata":{{"version":1}}}}}}"#)
}

/// A project on the scripted server at `address`, where TOKEN and OTHER are
/// stale in the environment.
fn on_scripted(address: &str, manifest: &str) -> Test {
    Test::new()
        .manifest(manifest)
        .env("WITH_SECRETS_STORE", "vault")
        .env("BAO_ADDR", address)
        .env("BAO_TOKEN", "t")
        .env("A", "stale")
        .env("B", "stale")
}

#[test]
fn a_server_that_answers_once_per_connection_is_read_one_request_per_connection() {
    let manifest = manifest_for(&[
        ("A", "one", "key"),
        ("B", "two", "key"),
        ("C", "three", "key"),
    ]);
    // HTTP/1.0: the answer ends the connection. Then HTTP/1.1 with
    // `Connection: close`, as a proxy may send.
    for (version, connection) in [("HTTP/1.0", ""), ("HTTP/1.1", "Connection: close\r\n")] {
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let address = scripted(move |asked, stream| {
            counted.fetch_add(1, Ordering::SeqCst);
            let body = kv_answer(&asked.path);
            let _ = write!(
                stream,
                "{version} 200 OK\r\nContent-Type: application/json\r\n{connection}\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            false
        });
        let test = on_scripted(&address, &manifest);
        let run = test.run([
            "--timeout",
            "20",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$A\" \"$B\" \"$C\"",
        ]);
        run.success().stdout_is("one|two|three");
        assert!(
            connections.load(Ordering::SeqCst) <= 4 + 1,
            "{version}: {} answers for three reads and the mount",
            connections.load(Ordering::SeqCst)
        );
    }
}

#[test]
fn a_404_that_is_not_the_servers_own_is_an_error_not_a_missing_secret() {
    // A wrong BAO_ADDR, behind a web server.
    let address = scripted(|_, stream| {
        let body = "<html><body>404 Not Found</body></html>";
        let _ = write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        true
    });
    let test = on_scripted(&address, &manifest_for(&[("A", "acme", "token")]));
    test.run(["--", "sh", "-c", "printf %s \"$A\""])
        .expect_code(125)
        .stderr_has(&format!(
            "{address} answered 404 for secret/acme, and not in the server's JSON"
        ))
        .stderr_has("is BAO_ADDR (or VAULT_ADDR) the server's API address?")
        .never_shows("stale");
}

#[test]
fn answers_larger_than_any_kv_answer_fail_at_once_by_name() {
    let manifest = manifest_for(&[("A", "acme", "token")]);
    let endless_chunks = |_: &Asked, stream: &mut TcpStream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
        while stream.write_all(chunk.as_bytes()).is_ok() {}
        false
    };
    let endless_body = |_: &Asked, stream: &mut TcpStream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n");
        let block = vec![b'x'; 64 * 1024];
        while stream.write_all(&block).is_ok() {}
        false
    };
    let huge_length = |_: &Asked, stream: &mut TcpStream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n{");
        true
    };
    let huge_head = |_: &Asked, stream: &mut TcpStream| {
        // Over 64 KiB of head, in one write, then the end of the head.
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Padding: {}\r\nContent-Length: 2\r\n\r\n{{}}",
            "p".repeat(80 * 1024)
        );
        let _ = stream.write_all(head.as_bytes());
        true
    };
    let overflowing_chunk = |_: &Asked, stream: &mut TcpStream| {
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab",
        );
        true
    };
    type Script = fn(&Asked, &mut TcpStream) -> bool;
    let cases: [(&str, Script, &str); 5] = [
        ("endless chunks", endless_chunks, "its body is over 2 MiB"),
        ("endless body", endless_body, "its body is over 2 MiB"),
        ("huge length", huge_length, "its body is over 2 MiB"),
        ("huge head", huge_head, "its head is over 64 KiB"),
        (
            "overflowing chunk",
            overflowing_chunk,
            "its body is over 2 MiB",
        ),
    ];
    for (name, script, said) in cases {
        let address = scripted(script);
        let run = on_scripted(&address, &manifest).run(["--timeout", "60", "--", "true"]);
        assert_eq!(run.code(), Some(125), "{name}: {}", run.stderr());
        run.stderr_has(&format!(
            "{address} sent an answer larger than any KV answer ({said})"
        ))
        .never_shows("stale");
    }
}

#[test]
fn check_and_set_conflicts_are_retried_with_backoff() {
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&writes);
    // No PATCH, and every check-and-set write loses.
    let address = scripted(move |asked, stream| {
        let (status, body) = match asked.method.as_str() {
            "PATCH" => ("405 Method Not Allowed", r#"{"errors":[]}"#.to_owned()),
            "POST" => {
                counted.fetch_add(1, Ordering::SeqCst);
                (
                    "400 Bad Request",
                    r#"{"errors":["check-and-set parameter did not match the current version"]}"#
                        .to_owned(),
                )
            }
            _ => ("200 OK", kv_answer(&asked.path)),
        };
        json_answer(stream, status, &body)
    });
    let test = on_scripted(&address, &manifest_for(&[("A", "acme", "token")]));
    test.run_input("new", ["--timeout", "2", "set", "A"])
        .expect_code(125)
        .stderr_has("secret/acme kept changing while this wrote to it");
    let writes = writes.load(Ordering::SeqCst);
    assert!((1..50).contains(&writes), "{writes} writes in 2 s");
}

#[test]
fn a_set_is_bounded_by_one_timeout_whatever_it_sends() {
    // Each answer comes 1.5 s after its request: the mount's version, then
    // the PATCH, would take 3 s, past a --timeout of 2 s for the whole set.
    let asked = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&asked);
    let address = scripted(move |asked, stream| {
        counted.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1500));
        let body = match asked.method.as_str() {
            "PATCH" => String::new(),
            _ => kv_answer(&asked.path),
        };
        let status = if body.is_empty() {
            "204 No Content"
        } else {
            "200 OK"
        };
        json_answer(stream, status, &body)
    });
    let test = on_scripted(&address, &manifest_for(&[("A", "acme", "token")]));
    test.run_input("new", ["--timeout", "2", "set", "A"])
        .expect_code(125)
        .stderr_has("did not answer within 2 s");
    // It gave up once its one deadline passed: the mount's version was
    // asked, and the PATCH (if sent at all) never answered in time.
    assert!(asked.load(Ordering::SeqCst) <= 2);
}

#[test]
fn a_kv_version_1_mount_is_refused_by_name_and_never_written() {
    let server = Bao::dev();
    server.ok(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    server.ok(&["kv", "put", "kv1/acme", "token=in version 1"]);
    let test = project(
        &server,
        &format!(
            "[vault]\nmount = \"kv1\"\n{}",
            manifest_for(&[("A", "acme", "token")])
        ),
    )
    .env("A", "stale");
    let refused = "the secrets engine at `kv1` is KV version 1, and with-secrets reads and \
                   writes KV version 2";
    test.run(["--", "sh", "-c", "printf %s \"$A\""])
        .expect_code(125)
        .stderr_has(refused)
        .stderr_has("`bao kv enable-versioning kv1`")
        .never_shows("stale");
    test.run_input("new", ["set", "A"])
        .expect_code(125)
        .stderr_has(refused);
    test.run(["delete", "A"])
        .expect_code(125)
        .stderr_has(refused);
    // Nothing was written under kv1/data/.
    let listed = server.cli(&["kv", "list", "-format=json", "kv1/"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(!listed.contains("data"), "{listed}");
    assert_eq!(
        server.ok(&["kv", "get", "-field=token", "kv1/acme"]).trim(),
        "in version 1"
    );
    // The fix line works as printed, and then the entry is read.
    server.ok(&["kv", "enable-versioning", "kv1"]);
    until_seen(
        &test,
        &["--", "sh", "-c", "printf %s \"$A\""],
        "in version 1",
    );
}

#[test]
fn a_token_that_may_write_a_kv1_mount_learns_its_version_and_writes_nothing() {
    // A policy on the mount's paths alone, none on `sys/`: the server still
    // answers the version query (for any token with a capability under the
    // mount), so the refusal does not rest on the root token's rights.
    let server = Bao::dev();
    server.ok(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    let writer = server.token_with_policy(
        "kv1-writer",
        "path \"kv1/*\" { capabilities = [\"create\", \"read\", \"update\", \"patch\"] }\n",
    );
    let test = project(
        &server,
        &format!(
            "[vault]\nmount = \"kv1\"\n{}",
            manifest_for(&[("A", "acme", "token")])
        ),
    )
    .env("BAO_TOKEN", &writer);
    test.run_input("new", ["set", "A"])
        .expect_code(125)
        .stderr_has("the secrets engine at `kv1` is KV version 1");
    let listed = server.cli(&["kv", "list", "-format=json", "kv1/"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !listed.contains("data"),
        "a write under kv1/data/: {listed}"
    );
}

#[test]
fn a_kv1_mount_behind_a_proxy_that_hides_its_version_is_neither_read_nor_written() {
    // A KV version 1 engine (a read of `data/…` is a secret not there, a
    // PATCH is not allowed, a POST would make a stray secret), behind a
    // proxy that answers `sys/` with a page of its own.
    let posted = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&posted);
    let address = scripted(move |asked, stream| {
        if asked.path.starts_with("/v1/sys/") {
            let body = "<html><body>403 Forbidden</body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            return true;
        }
        match asked.method.as_str() {
            "PATCH" => json_answer(stream, "405 Method Not Allowed", r#"{"errors":[]}"#),
            "POST" | "PUT" => {
                seen.fetch_add(1, Ordering::SeqCst);
                json_answer(stream, "204 No Content", "")
            }
            _ => json_answer(stream, "404 Not Found", r#"{"errors":[]}"#),
        }
    });
    let test = on_scripted(&address, &manifest_for(&[("A", "acme", "token")]));
    let unknown = "cannot learn the KV version of the secrets engine at `secret`: \
                   sys/internal/ui/mounts/secret answered 403, not with the server's JSON";
    test.run(["--", "sh", "-c", "printf %s \"$A\""])
        .expect_code(125)
        .stderr_has(unknown)
        .never_shows("stale");
    test.run_input("new", ["set", "A"])
        .expect_code(125)
        .stderr_has(unknown);
    test.run(["delete", "A"])
        .expect_code(125)
        .stderr_has(unknown);
    assert_eq!(
        posted.load(Ordering::SeqCst),
        0,
        "a write reached the engine"
    );
}

#[test]
fn an_https_address_on_a_plain_http_server_says_to_use_http() {
    let server = Bao::dev();
    put(&server, "acme", &[("token", "v")]);
    let plain = server.address.clone();
    let https = plain.replacen("http://", "https://", 1);
    let test = Test::new()
        .manifest(&manifest_for(&[("A", "acme", "token")]))
        .env("WITH_SECRETS_STORE", "vault")
        .env("VAULT_ADDR", &https)
        .env("BAO_TOKEN", &server.token);
    let run = test.run(["get", "A"]);
    run.expect_code(125)
        .stderr_has(&format!(
            "{https} speaks plain HTTP, not TLS\n  use plain HTTP: export VAULT_ADDR={plain}\n"
        ))
        .stderr_lacks("CACERT");
    // The line works as printed.
    test.env("VAULT_ADDR", &plain)
        .run(["get", "A"])
        .success()
        .stdout_is("v");
}

#[test]
fn the_token_variables_reach_the_command_as_env_would_pass_them_unless_dropped() {
    let server = Bao::dev();
    put(&server, "acme", &[("token", "v")]);
    let test = project(&server, &manifest_for(&[("A", "acme", "token")]))
        .env("VAULT_TOKEN", "the vault token");
    let show = "printf '%s|%s|%s' \"$A\" \"$BAO_TOKEN\" \"$VAULT_TOKEN\"";
    test.run(["--", "sh", "-c", show])
        .success()
        .stdout_is(&format!("v|{}|the vault token", server.token));
    // The README's way to keep it from the command.
    test.run([
        "--",
        "env",
        "-u",
        "BAO_TOKEN",
        "-u",
        "VAULT_TOKEN",
        "sh",
        "-c",
        show,
    ])
    .success()
    .stdout_is("v||");
}

#[test]
fn a_service_that_is_not_a_clean_path_is_refused_where_it_is_written_for_a_vault_run() {
    // Nothing listens: the manifest is refused before any request.
    let port = crate::support::bao::free_port();
    let vault_run = |manifest: &str| {
        Test::new()
            .manifest(manifest)
            .env("WITH_SECRETS_STORE", "vault")
            .env("BAO_ADDR", format!("http://127.0.0.1:{port}"))
            .env("BAO_TOKEN", "t")
            .env("A", "stale")
    };
    for bad in ["a//b", "./x", "x/", "/x", "x/.", "a/../b"] {
        let run = vault_run(&format!(
            "[vault]\nprefix = \"team\"\n{}",
            manifest_for(&[("OK", "fine/path", "k"), ("A", bad, "k")])
        ))
        .run(["--", "true"]);
        run.expect_code(125)
            .stderr_has(&format!(
                "secrets.toml:5:17: `service` must be a path such as `team/api` for the vault \
                 store (its secret is secret/team/{bad})"
            ))
            .stderr_lacks("nothing listens")
            .never_shows("stale");
    }
    // From [defaults], in a profile: located at that `service`.
    let manifest = "[defaults]\nservice = \"fine\"\n[secrets]\nA = { username = \"k\" }\n\
                    [profiles.ci.defaults]\nservice = \"ci//x\"\n";
    vault_run(manifest)
        .run(["get", "A"])
        .expect_code(125)
        .stderr_lacks("`service` must be a path");
    vault_run(manifest)
        .run(["--profile", "ci", "get", "A"])
        .expect_code(125)
        .stderr_has("secrets.toml:6:11: `service` must be a path");
    // As `import --from vault` reads from it.
    vault_run(&manifest_for(&[("A", "x/", "k")]))
        .run(["--store", "file", "import", "--from", "vault"])
        .expect_code(125)
        .stderr_has("secrets.toml:2:17: `service` must be a path");
    // A manifest that can be read only once (a pipe, `-m <(...)`): the
    // error points at the text that was read, never reads it again.
    let test = vault_run("");
    let fifo = test.path().join("once.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // Not joined: a run that never opened the pipe would leave it waiting.
    std::thread::spawn({
        let fifo = fifo.clone();
        move || std::fs::write(&fifo, manifest_for(&[("A", "a//b", "k")]))
    });
    test.run(["-m", &fifo.to_string_lossy(), "get", "A"])
        .expect_code(125)
        .stderr_has("once.toml:2:17: `service` must be a path")
        .stderr_has("2 | A = { service = \"a//b\", username = \"k\" }\n");
}
