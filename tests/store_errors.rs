//! Every way a keyring can fail gives a distinct message with the next step,
//! exit 125, and never a hang.

use crate::support::{SecretService, Test, manifest_for};

fn project(service: &SecretService) -> Test {
    Test::new()
        .keyring(service)
        .manifest(&manifest_for(&[("A", "s", "a")]))
        .env("WITH_SECRETS_STORE", "secret-service")
}

#[test]
fn a_locked_keyring_without_a_terminal_is_an_error_that_says_how_to_unlock_it() {
    // Its unlock prompt is run, as a daemon may complete one with no
    // person; gnome-keyring cannot show it here (no prompter on this bus),
    // so it reports it dismissed at once.
    let service = SecretService::start();
    service.store_foreign("s", "a", "a", "value");
    service.lock();
    project(&service)
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has(
            "secret-service: the keyring is locked, and gnome-keyring's unlock prompt was \
             dismissed or could not be shown",
        )
        .stderr_has("unlock it (e.g. in Seahorse")
        // A store that fails is an error of its own, not a list of entries.
        .stderr_lacks("fallback")
        .stderr_lacks("missing");
}

#[test]
fn a_locked_keyring_on_a_terminal_gets_a_prompt_and_its_outcome() {
    let service = SecretService::start();
    service.store_foreign("s", "a", "a", "value");
    service.lock();
    let transcript = project(&service).on_terminal_status("get A");
    assert!(
        transcript.contains("gnome-keyring's unlock prompt was dismissed or could not be shown"),
        "{transcript}"
    );
}

#[test]
fn a_locked_keyring_that_lacks_the_entry_is_locked_not_missing() {
    // Nothing found in a locked collection proves nothing: some daemons
    // hide a locked collection's items.
    let service = SecretService::start();
    service.lock();
    project(&service)
        .run(["check"])
        .expect_code(125)
        .stderr_has("secret-service: the keyring is locked")
        .stderr_lacks("missing: run");
}

#[test]
fn set_into_a_locked_keyring_says_it_is_locked() {
    let service = SecretService::start();
    service.lock();
    project(&service)
        .run_input("v", ["set", "A"])
        .expect_code(125)
        .stderr_has("the keyring is locked");
}

#[test]
fn access_denied_by_the_bus_is_named() {
    let service = SecretService::start_denied();
    project(&service)
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("secret-service: access denied:")
        .stderr_has("allow with-secrets in your keyring's access settings");
}

#[test]
fn a_stopped_keyring_daemon_times_out_with_a_message() {
    let service = SecretService::start();
    service.store_foreign("s", "a", "a", "value");
    service.signal_keyring(libc::SIGSTOP);
    let run = project(&service).run(["--timeout", "0.5", "--", "true"]);
    service.signal_keyring(libc::SIGCONT);
    run.expect_code(125)
        .stderr_has("secret-service: no answer within 0.5 s; gnome-keyring may be hung")
        .stderr_has("restart gnome-keyring-daemon");
}

#[test]
fn the_timeout_comes_from_the_environment_too() {
    let service = SecretService::start();
    service.signal_keyring(libc::SIGSTOP);
    let run = project(&service)
        .env("WITH_SECRETS_TIMEOUT", "300ms")
        .run(["check"]);
    service.signal_keyring(libc::SIGCONT);
    // check fails as a run does: with the store's error, exit 125.
    run.expect_code(125).stderr_has("no answer within 0.3 s");
}

#[test]
fn a_stopped_bus_times_out_too() {
    let service = SecretService::start();
    service.signal_bus(libc::SIGSTOP);
    let run = project(&service).run(["--timeout", "0.5", "get", "A"]);
    service.signal_bus(libc::SIGCONT);
    run.expect_code(125).stderr_has("no answer within 0.5 s");
}

#[test]
fn a_keyring_stopped_mid_run_is_bounded() {
    // Stop the daemon while with-secrets is already running and waiting on it.
    let service = SecretService::start();
    service.store_foreign("s", "a", "a", "value");
    let test = project(&service);
    let child = test
        .command(["--timeout", "2", "--", "sh", "-c", "printf %s \"$A\""])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    service.signal_keyring(libc::SIGSTOP);
    let output = crate::support::wait(child);
    service.signal_keyring(libc::SIGCONT);
    // Either the lookup finished before the stop, or it timed out: never a hang.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => assert_eq!(stdout, "value"),
        Some(125) => assert!(stderr.contains("no answer within 2 s"), "{stderr}"),
        other => panic!("{other:?}: {stderr}"),
    }
}

#[test]
fn a_bad_timeout_is_a_usage_error() {
    Test::new()
        .run(["--timeout", "soon", "check"])
        .expect_code(125)
        .stderr_has("`soon` is not a duration");
}

/// A stale `export A=...`: what a run must never print unless no Secret
/// Service is there at all.
const STALE: &str = "stale-exported-value";

#[test]
fn a_secret_service_the_bus_cannot_start_is_no_secret_service() {
    // The bus has a service file for the name, but what it names exits at
    // once (Spawn.ChildExited) or is not there (Spawn.ExecFailed): as with
    // no service file at all, nothing here answers as a Secret Service, so
    // the environment stands in, and without it the message says so.
    for exec in ["/bin/false", "/nonexistent/secret-service-daemon"] {
        let bus = SecretService::bus_activating(exec);
        project(&bus)
            .env("A", STALE)
            .run(["--", "sh", "-c", "printf %s \"$A\""])
            .success()
            .stdout_is(STALE);
        project(&bus)
            .run(["--", "true"])
            .expect_code(125)
            .stderr_has("secret-service: no Secret Service on the session bus")
            .stderr_lacks("unexpected answer");
    }
}

#[test]
fn env_against_a_locked_keyring_fails_and_prints_nothing() {
    let service = SecretService::start();
    service.store_foreign("s", "a", "a", "from-keyring");
    service.lock();
    let run = project(&service).env("A", STALE).run(["env"]);
    run.expect_code(125)
        .stderr_has("the keyring is locked")
        .never_shows(STALE)
        .never_shows("from-keyring");
    assert_eq!(run.stdout(), "", "env printed something");
}

#[test]
fn check_and_a_run_print_no_set_line_for_a_store_that_is_not_here() {
    // A vault store with no address, a Secret Service with no bus: `set`
    // could only fail, so no line says to run it.
    for (store, why) in [
        ("vault", "set BAO_ADDR"),
        ("secret-service", "no D-Bus session bus"),
    ] {
        let test = Test::new()
            .manifest(&manifest_for(&[("TOKEN", "acme", "ci")]))
            .env("WITH_SECRETS_STORE", store);
        let check = test.run(["check"]);
        check
            .expect_code(1)
            .stdout_is(&format!(
                "TOKEN  acme  ci  missing: not in the environment, and {store} is not here\n"
            ))
            .stderr_has(why)
            .stderr_lacks("set TOKEN");
        test.run(["--", "true"])
            .expect_code(125)
            .stderr_has(why)
            .stderr_has("no fallback in the environment: TOKEN")
            .stderr_lacks("set TOKEN");
        // What does work: the variable in the environment.
        test.env("TOKEN", "from the environment")
            .run(["check"])
            .success()
            .stdout_is("TOKEN  acme  ci  from environment\n");
    }
}
