//! The session cache (`with-secrets unlock` for slow stores), in front of a
//! real OpenBao (`bao server -dev`, one per test, with an audit log where a
//! test counts the server's requests). Each test runs its steps in a
//! `keyctl session -` of its own inside a user namespace of its own (see
//! tests/keyutils.rs), so none touches the keyrings of the person running
//! them. The bridge's and the agent's cache tests are in tests/bridge.rs and
//! tests/agent.rs.

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};

use crate::keyutils::{
    Step, as_nobody, blocked, in_session, in_session_with, like_a_login, readable_by_all,
    run_in_mapped_session, shell, with_secrets,
};
use crate::support::Test;
use crate::support::bao::{Bao, bao};

/// A project whose store is `vault` on an audited server: A and B in the
/// secret `app`, C in `other`, and OPT (optional) in `app`; the server, its
/// audit log, and the test.
fn project() -> (Bao, PathBuf, Test, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let server = Bao::dev_audited(&log);
    server.ok(&[
        "kv",
        "put",
        "secret/app",
        "a=first A",
        "b=line one\nline 'two' $HOME",
        "opt=optional value",
    ]);
    server.ok(&["kv", "put", "secret/other", "c=first C"]);
    let test = server
        .client(Test::new().manifest(
            "[secrets]\n\
             A = { service = \"app\", username = \"a\" }\n\
             B = { service = \"app\", username = \"b\" }\n\
             C = { service = \"other\", username = \"c\" }\n\
             OPT = { service = \"app\", username = \"opt\", optional = true }\n",
        ))
        .env("WITH_SECRETS_STORE", "vault")
        .env("XDG_DATA_HOME", logs.path().join("data"))
        .env("BAO", bao())
        .env("LOG", &log);
    (server, log, test, logs)
}

/// A run that prints A, B, C and OPT, each in brackets.
fn print_all(flags: &str) -> Step {
    shell(&format!(
        "\"$BIN\" {flags} -- sh -c 'printf \"[%s]\" \"$A\" \"$B\" \"$C\" \"${{OPT-unset}}\"'"
    ))
}

const FIRST: &str = "[first A][line one\nline 'two' $HOME][first C][optional value]";

/// How many requests the server has logged so far.
fn count() -> Step {
    shell("grep -c '\"type\":\"request\"' \"$LOG\"")
}

/// A change to the server behind with-secrets' back, with the bao CLI.
fn behind_its_back(args: &str) -> Step {
    shell(&format!("\"$BAO\" {args} >/dev/null"))
}

fn number(run: &crate::support::Run) -> usize {
    run.stdout().trim().parse().expect("a count")
}

fn store_file(dir: &Path) -> PathBuf {
    dir.join("data/with-secrets/secrets.age")
}

#[test]
fn a_run_with_every_value_kept_asks_the_server_nothing() {
    let (_server, _log, test, dir) = project();
    let runs = in_session(
        &test,
        &[
            count(),
            print_all(""),
            count(),
            with_secrets(&["unlock", "--for", "1h"]),
            print_all("-v"),
            count(),
            print_all("-v"),
            count(),
            with_secrets(&["check"]),
            with_secrets(&["doctor"]),
            // Nothing kept is a value in plain text.
            shell(
                "for key in $(keyctl rlist @s) $(keyctl rlist @u); do keyctl pipe $key; done \
                 | grep -c -e 'first A' -e 'line one' -e 'first C'; true",
            ),
        ],
    );
    runs[1].success().stdout_is(FIRST);
    assert!(number(&runs[2]) > number(&runs[0]), "the first run asks");
    // No file store and no passphrase: the unlock asks nothing, makes nothing.
    runs[3]
        .success()
        .stderr_has("with-secrets: session cache on for 1 h, until ")
        .stderr_has("`with-secrets lock` ends it now");
    assert!(
        !runs[3].stderr().contains("unlocked "),
        "{}",
        runs[3].stderr()
    );
    assert!(!store_file(dir.path()).exists(), "unlock made a file store");
    runs[4]
        .success()
        .stdout_is(FIRST)
        .stderr_has("A from vault, B from vault");
    assert!(
        number(&runs[5]) > number(&runs[2]),
        "the run after unlock asks"
    );
    runs[6]
        .success()
        .stdout_is(FIRST)
        .stderr_has("session cache: all 4 values kept, so vault was not asked")
        .stderr_has("A from the session cache (read from vault ");
    assert_eq!(
        number(&runs[7]),
        number(&runs[5]),
        "a run with every value kept sent the server a request"
    );
    runs[8]
        .success()
        .stdout_has("found (in the session cache, read ");
    runs[9]
        .success()
        .stdout_has("  cache:          on until ")
        .stdout_has("found (in the session cache, read ");
    assert_eq!(
        runs[10].stdout(),
        "0\n",
        "a value is in a key in plain text"
    );
}

#[test]
fn a_value_changed_behind_its_back_is_served_until_lock_and_not_with_no_cache() {
    let (_server, _log, test, _dir) = project();
    let runs = in_session(
        &test,
        &[
            with_secrets(&["unlock"]),
            print_all(""),
            behind_its_back("kv patch secret/app a='changed A'"),
            print_all(""),
            print_all("--no-cache"),
            shell(
                "WITH_SECRETS_NO_CACHE=1 \"$BIN\" -- sh -c 'printf \"[%s]\" \"$A\"'; \
                 WITH_SECRETS_NO_CACHE=0 \"$BIN\" -- sh -c 'printf \"[%s]\" \"$A\"'",
            ),
            // Neither run above kept what it read.
            print_all(""),
            // Another login session has a session keyring of its own.
            shell("keyctl session - \"$BIN\" -v -- sh -c 'printf \"[%s]\" \"$A\"' 2>&1"),
            with_secrets(&["lock"]),
            print_all("-v"),
            with_secrets(&["doctor"]),
            with_secrets(&["lock"]),
        ],
    );
    runs[1].success().stdout_is(FIRST);
    let changed = FIRST.replace("first A", "changed A");
    runs[3].success().stdout_is(FIRST);
    runs[4].success().stdout_is(&changed);
    runs[5].success().stdout_is("[changed A][first A]");
    runs[6].success().stdout_is(FIRST);
    runs[7].success().stdout_has("[changed A]");
    assert!(
        !runs[7].stdout().contains("session cache"),
        "{}",
        runs[7].stdout()
    );
    runs[8].success().stderr_has(
        "with-secrets: ended the session cache: runs read every value from its store again",
    );
    runs[9]
        .success()
        .stdout_is(&changed)
        .stderr_has("A from vault");
    runs[10]
        .success()
        .stdout_has("  cache:          off: `with-secrets unlock` keeps ");
    runs[11].success().stderr_has(
        "the file store was not unlocked in this login session, and no session cache was on",
    );
}

#[test]
fn set_delete_and_import_through_with_secrets_update_what_is_kept() {
    let (_server, _log, test, dir) = project();
    // keyrings.alt's plain-text file, to import from (base64 of "imported").
    let keyrings_alt = dir.path().join("data/python_keyring");
    std::fs::create_dir_all(&keyrings_alt).unwrap();
    std::fs::write(
        keyrings_alt.join("keyring_pass.cfg"),
        "[other]\nc = \n\taW1wb3J0ZWQ=\n\n",
    )
    .unwrap();
    let runs = in_session(
        &test,
        &[
            with_secrets(&["unlock"]),
            print_all(""),
            with_secrets(&["set", "A"]).input("set A"),
            count(),
            print_all("-v"),
            count(),
            with_secrets(&["delete", "OPT"]),
            print_all("-v"),
            with_secrets(&["import", "--from", "keyrings-alt"]),
            count(),
            print_all("-v"),
            count(),
            // --no-cache: the write drops what it touches.
            shell("printf 'no cache A' | \"$BIN\" --no-cache set A"),
            print_all("-v"),
        ],
    );
    runs[1].success().stdout_is(FIRST);
    runs[2].success();
    runs[4]
        .success()
        .stdout_is(&FIRST.replace("first A", "set A"))
        .stderr_has("session cache: all 4 values kept");
    assert_eq!(number(&runs[5]), number(&runs[3]), "a request after set");
    runs[6].success();
    // OPT is gone from the server and from the cache: the run asks for it.
    runs[7]
        .success()
        .stdout_is("[set A][line one\nline 'two' $HOME][first C][unset]")
        .stderr_has("session cache: 3 of 4 values kept; asking vault for the rest")
        .stderr_has("OPT missing (optional)");
    runs[8].success().stdout_has("copied");
    runs[10]
        .success()
        .stdout_is("[set A][line one\nline 'two' $HOME][imported][unset]")
        .stderr_has("C from the session cache");
    // OPT is asked again (it is missing), nothing else.
    assert_eq!(
        number(&runs[11]) - number(&runs[9]),
        2,
        "the mount query and one read, for OPT"
    );
    runs[12].success();
    runs[13]
        .success()
        .stdout_is("[no cache A][line one\nline 'two' $HOME][imported][unset]")
        .stderr_has("A from vault");
}

#[test]
fn the_cache_ends_when_its_time_is_up() {
    let (_server, _log, test, _dir) = project();
    // Polls until a run sees the value changed behind the cache's back and
    // doctor says the cache is off, for at most 60 s, then prints the
    // attempts.
    let wait = "start=$(date +%s); tries=0; \
                until [ \"$(\"$BIN\" get A)\" = 'changed A' ] \
                      && \"$BIN\" doctor | grep -q 'cache:  *off'; do \
                  tries=$((tries + 1)); \
                  [ $(($(date +%s) - start)) -lt 60 ] || { echo 'still cached after 60 s'; exit 1; }; \
                done; echo \"cached for $tries runs\"; \"$BIN\" doctor | grep cache:";
    let runs = in_session(
        &test,
        &[
            with_secrets(&["unlock", "--for", "3s"]),
            print_all(""),
            behind_its_back("kv patch secret/app a='changed A'"),
            with_secrets(&["get", "A"]),
            shell(wait),
        ],
    );
    runs[0].success().stderr_has(" for 3 s, until ");
    runs[1].success().stdout_is(FIRST);
    runs[3].success().stdout_is("first A");
    runs[4].success().stdout_has("  cache:          off: ");
}

#[test]
fn a_store_error_is_never_hidden_by_a_partial_cache() {
    let (server, _log, test, _dir) = project();
    let token = server.token_with_policy(
        "app-reader",
        "path \"secret/data/*\" { capabilities = [\"read\"] }\n\
         path \"sys/internal/ui/mounts/*\" { capabilities = [\"read\"] }\n",
    );
    let only_a = test.path().join("only-a.toml");
    std::fs::write(
        &only_a,
        "[secrets]\nA = { service = \"app\", username = \"a\" }\n",
    )
    .unwrap();
    let root = server.token.clone();
    let test = test.env("BAO_TOKEN", &token).env("ROOT", &root);
    let runs = in_session(
        &test,
        &[
            with_secrets(&["unlock"]),
            with_secrets(&["-m", "only-a.toml", "get", "A"]),
            // The token is revoked: the server now refuses it.
            shell(&format!(
                "BAO_TOKEN=\"$ROOT\" \"$BAO\" token revoke {token} >/dev/null"
            )),
            // What is kept is still served: the cache does not ask.
            with_secrets(&["-m", "only-a.toml", "-v", "get", "A"]),
            // A run that needs a value not kept asks, and fails as it would
            // without a cache; the stale B in the environment does not
            // stand in.
            shell("B='stale B' C='stale C' \"$BIN\" -v -- sh -c 'printf \"[%s]\" \"$B\"'"),
            shell("B='stale B' C='stale C' \"$BIN\" check"),
            // Another token is another store: nothing kept is served to it.
            shell("BAO_TOKEN=\"$ROOT\" \"$BIN\" -m only-a.toml -v get A"),
        ],
    );
    runs[1].success().stdout_is("first A");
    runs[2].success();
    runs[3]
        .success()
        .stdout_is("first A")
        .stderr_has("session cache: all 1 value kept, so vault was not asked");
    runs[4]
        .expect_code(125)
        .stderr_has("session cache: 1 of 4 values kept; asking vault for the rest")
        .stderr_has("does not accept the token from BAO_TOKEN")
        .never_shows("stale B");
    runs[5]
        .expect_code(125)
        .stderr_has("does not accept the token from BAO_TOKEN")
        .never_shows("stale B");
    runs[6]
        .success()
        .stdout_is("first A")
        .stderr_has("A from vault");
}

#[test]
fn where_the_kernel_keyring_is_blocked_unlock_says_so_and_runs_read_the_store() {
    let (_server, _log, test, dir) = project();
    blocked(&test, libc::EPERM, "", &["unlock"])
        .expect_code(125)
        .stderr_has("the kernel keyring cannot be used here, so nothing can be unlocked")
        .stderr_has("runs read every value from its store as before");
    assert!(!store_file(dir.path()).exists(), "unlock made a file store");
    blocked(&test, libc::EPERM, "", &["get", "A"])
        .success()
        .stdout_is("first A");
}

#[test]
fn another_user_started_from_the_session_gets_nothing_from_the_cache() {
    let (_server, _log, test, _dir) = project();
    let tools = ["setpriv", "runuser", "su", "sudo"];
    let run_and_read = shell_words::quote(
        "\"$BIN\" -v get A; status=$?; for key in $(keyctl rlist @s); do \
         keyctl rdescribe $key | grep -q ';with-secrets:cache:' && \
         echo \"sealed=$(keyctl pipe $key | wc -c)\" >&2; done; exit $status",
    )
    .into_owned();
    let mut steps: Vec<Step> = vec![
        like_a_login(),
        readable_by_all(),
        with_secrets(&["unlock"]),
        print_all(""),
        behind_its_back("kv patch secret/app a='changed A'"),
        with_secrets(&["get", "A"]),
    ];
    for tool in tools {
        steps.push(as_nobody(tool, &format!("sh -c {run_and_read}")));
    }
    steps.push(shell(
        "ours() { for key in $(keyctl rlist $1); do \
           keyctl rdescribe $key | grep -q \";$2\" && echo $key; done; }; \
         pad=$(ours @u with-secrets:cache-key-pad:); \
         nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups \"$@\"; }; \
         echo \"pad=$(nobody keyctl pipe $pad | wc -c)\"; \
         echo \"own pad=$(keyctl pipe $pad | wc -c)\"",
    ));
    let runs = in_session_with(&test, &steps, run_in_mapped_session);
    runs[3].success().stdout_is(FIRST);
    // Root's own runs are served from the cache.
    runs[5].success().stdout_is("first A");
    for (tool, run) in tools.iter().zip(&runs[6..]) {
        assert_ne!(run.stdout(), "no sudo\n", "sudo is not installed");
        assert!(
            !run.stdout().contains("first A") && !run.stderr().contains("session cache:"),
            "{tool} was served from root's cache: {}{}",
            run.stdout(),
            run.stderr()
        );
        // Either it read the server itself, or it could not (sudo drops
        // the server's address): never the kept value.
        if run.code() == Some(0) {
            assert_eq!(run.stdout(), "changed A", "{tool}");
        }
        assert!(
            run.stderr().contains("sealed="),
            "{tool} did not keep the session keyring: {}",
            run.stderr()
        );
    }
    assert_eq!(
        runs[10].stdout(),
        "pad=0\nown pad=32\n",
        "{}",
        runs[10].stderr()
    );
}

#[test]
fn the_suites_runs_never_reach_the_session_keyring_of_whoever_runs_it() {
    let (_server, _log, test, _dir) = project();
    // Outside a session of the test's own making, as most tests run.
    test.run(["unlock", "--for", "1h"]).success();
    let doctor = test.run(["doctor"]);
    doctor.success();
    assert!(
        doctor.stdout().contains("  cache:          off: ")
            || doctor
                .stdout()
                .contains("  cache:          cannot be used here"),
        "{}",
        doctor.stdout()
    );
    // This process's own session keyring has no cache key of ours.
    let description = c"with-secrets:cache-key:1";
    // SAFETY: valid NUL-terminated strings, no destination keyring.
    let found = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::c_long::from(libc::KEYCTL_SEARCH),
            libc::c_long::from(libc::KEY_SPEC_SESSION_KEYRING),
            c"user".as_ptr(),
            description.as_ptr(),
            0 as libc::c_long,
        )
    };
    assert!(
        found < 0,
        "a run kept its cache key in the test's own session keyring"
    );
}

#[test]
fn the_local_keyring_and_the_file_store_are_never_cached() {
    let service = crate::support::SecretService::start();
    let test = Test::new()
        .manifest("[secrets]\nTOKEN = { service = \"cache-local\", username = \"ci\" }\n")
        .keyring(&service)
        .env("WITH_SECRETS_PASSPHRASE", "file store passphrase");
    let data = test.path().join("data");
    let test = test.env("XDG_DATA_HOME", &data);
    test.run_input("keyring ✓", ["set", "TOKEN"]).success();
    test.run_input("file ✓", ["--store", "file", "set", "TOKEN"])
        .success();
    let print = |store: &str| shell(&format!("\"$BIN\" -v --store {store} get TOKEN"));
    let runs = in_session(
        &test,
        &[
            with_secrets(&["unlock"]),
            print("secret-service"),
            print("file"),
            shell(
                "printf 'keyring changed' | \"$BIN\" --store secret-service --no-cache set TOKEN \
                 && \"$BIN\" -v --store secret-service get TOKEN",
            ),
            shell("for key in $(keyctl rlist @s); do keyctl rdescribe $key; done"),
        ],
    );
    runs[0].success().stderr_has("with-secrets: unlocked ");
    for (run, value) in [(&runs[1], "keyring ✓"), (&runs[2], "file ✓")] {
        run.success().stdout_is(value).stderr_lacks("session cache");
    }
    runs[3]
        .success()
        .stdout_is("keyring changed")
        .stderr_lacks("session cache");
    // The cache's key and the file store's, and no store's values.
    let kept = runs[4].stdout();
    assert!(kept.contains(";with-secrets:cache-key:1"), "{kept}");
    assert!(!kept.contains(";with-secrets:cache:"), "{kept}");
}

#[test]
fn keys_another_user_plants_in_the_session_are_never_trusted() {
    let (_server, _log, test, _dir) = project();
    // As nobody, from root's login session: a cache key of nobody's
    // choosing (32 bytes of `A`, its pad all zeros, an end far away), in
    // root's session keyring and in root's user keyring (which the login
    // links into the session keyring, so nobody may add to it), readable
    // by whoever possesses them.
    let plant = "s=$(keyctl id @s); u=$(keyctl id @u); \
         nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups \"$@\"; }; \
         a=$(printf 'A%.0s' $(seq 32)); \
         first=$(printf '%s\\000\\000\\000\\000\\377\\377\\377\\377' \"$a\" \
           | nobody keyctl padd user with-secrets:cache-key:1 $s) && \
         pad=$(head -c 32 /dev/zero \
           | nobody keyctl padd user with-secrets:cache-key-pad:1:$s $u) && \
         nobody keyctl setperm $first 0x3f3f0000 && nobody keyctl setperm $pad 0x3f3f0000 && \
         keyctl rdescribe $first && keyctl rdescribe $pad";
    let runs = in_session_with(
        &test,
        &[
            like_a_login(),
            shell(plant),
            with_secrets(&["doctor"]),
            print_all("-v"),
            print_all("-v"),
            with_secrets(&["lock"]),
            shell("keyctl rlist @s | xargs -n1 keyctl rdescribe | grep -c with-secrets; true"),
        ],
        run_in_mapped_session,
    );
    runs[1].success().stdout_has("user;65534;");
    runs[2].success().stdout_has("  cache:          off: ");
    for run in &runs[3..5] {
        run.success().stdout_is(FIRST).stderr_lacks("session cache");
    }
    // `lock` takes nobody's keys out of the session keyring too.
    runs[5].success();
    assert_eq!(runs[6].stdout(), "0\n", "{}", runs[6].stderr());
}

#[test]
fn a_write_with_another_token_drops_what_every_other_token_keeps() {
    let (server, _log, test, _dir) = project();
    let reader = server.token_with_policy(
        "app-reader",
        "path \"secret/data/*\" { capabilities = [\"read\"] }\n\
         path \"sys/internal/ui/mounts/*\" { capabilities = [\"read\"] }\n",
    );
    let test = test.env("READER", &reader);
    let as_reader = |line: &str| shell(&format!("BAO_TOKEN=\"$READER\" {line}"));
    let runs = in_session(
        &test,
        &[
            with_secrets(&["unlock"]),
            as_reader("\"$BIN\" get A"),
            as_reader("\"$BIN\" -v get A"),
            // The root token (the test's BAO_TOKEN) stores a new A.
            with_secrets(&["set", "A"]).input("set by root"),
            as_reader("\"$BIN\" -v get A"),
        ],
    );
    runs[1].success().stdout_is("first A");
    runs[2]
        .success()
        .stdout_is("first A")
        .stderr_has("from the session cache");
    runs[3].success();
    runs[4]
        .success()
        .stdout_is("set by root")
        .stderr_has("A from vault");
}
