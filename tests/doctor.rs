//! `with-secrets doctor` in each situation it exists for.

use crate::support::{BoundedOutput, SecretService, Test, manifest_for};

const CANARY: &str = "doctor-canary-51f2";

fn project() -> Test {
    Test::new().manifest(&manifest_for(&[("A", "s", "a"), ("B", "s", "b")]))
}

fn doctor(test: &Test, args: &[&str]) -> String {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    doctor_args(test, &all)
}

/// `doctor` with the whole command line given.
fn doctor_args(test: &Test, args: &[&str]) -> String {
    let run = test.run(args);
    run.success().never_shows(CANARY);
    run.stdout()
}

#[test]
fn with_a_working_keyring_it_shows_the_daemon_and_every_entry() {
    let service = SecretService::start();
    service.store_foreign("s", "a", "a", CANARY);
    let out = doctor(&project().keyring(&service), &[]);
    assert!(
        out.contains("uses:           secret-service (auto: the platform's keyring answers)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("session bus:    {}", service.address())),
        "{out}"
    );
    assert!(
        out.contains("Secret Service: gnome-keyring-d (pid "),
        "{out}"
    );
    assert!(
        out.contains("keyring:        default collection unlocked"),
        "{out}"
    );
    assert!(out.contains("secrets.toml (2 entries)"), "{out}");
    assert!(
        out.contains("  A  s  a  found\n  B  s  b  missing: run with-secrets set B\n"),
        "{out}"
    );
    assert!(out.contains("WSL:            no"), "{out}");
}

#[test]
fn with_no_bus_it_says_so_and_that_auto_uses_the_file_store() {
    let out = doctor(&project().env("B", "from-env"), &[]);
    assert!(
        out.contains(
            "uses:           file (auto: secret-service is not here: no D-Bus session bus"
        ),
        "{out}"
    );
    assert!(
        out.contains("session bus:    no D-Bus session bus"),
        "{out}"
    );
    assert!(!out.contains("Secret Service:"), "{out}");
    assert!(out.contains("file store:     "), "{out}");
    assert!(out.contains("  B  s  b  from environment"), "{out}");
}

#[test]
fn with_a_bus_but_no_secret_service_it_says_so() {
    let bus = SecretService::bus_only();
    let out = doctor(&project().keyring(&bus), &[]);
    assert!(
        out.contains("Secret Service: no Secret Service on the session bus"),
        "{out}"
    );
    assert!(
        out.contains("uses:           file (auto: secret-service is not here: no Secret Service"),
        "{out}"
    );
}

#[test]
fn with_a_stopped_daemon_it_finishes_and_says_it_timed_out() {
    let service = SecretService::start();
    service.signal_keyring(libc::SIGSTOP);
    let run = project()
        .keyring(&service)
        .run(["--timeout", "0.3", "doctor"]);
    service.signal_keyring(libc::SIGCONT);
    let out = run.success().stdout();
    assert!(
        out.contains("Secret Service: no answer within 0.3 s"),
        "{out}"
    );
    assert!(
        out.contains("(secret-service: no answer within 0.3 s"),
        "{out}"
    );
}

#[test]
fn with_a_locked_keyring_it_says_so() {
    let service = SecretService::start();
    service.lock();
    let out = doctor(&project().keyring(&service), &[]);
    assert!(
        out.contains("keyring:        default collection LOCKED"),
        "{out}"
    );
}

#[test]
fn with_the_file_store_chosen_it_says_by_what() {
    let test = project()
        .env("WITH_SECRETS_STORE", "file")
        .env("XDG_DATA_HOME", "/nonexistent/data");
    let out = doctor(&test, &[]);
    assert!(
        out.contains("uses:           file (chosen by WITH_SECRETS_STORE)"),
        "{out}"
    );
    assert!(
        out.contains("file store:     /nonexistent/data/with-secrets/"),
        "{out}"
    );
    assert!(out.contains("(not created yet)"), "{out}");
    let out = doctor(&project(), &["--store", "file"]);
    assert!(
        out.contains("uses:           file (chosen by --store)"),
        "{out}"
    );
    let test = Test::new().manifest("store = \"file\"\n[secrets]\n");
    let out = doctor(&test, &[]);
    assert!(
        out.contains("uses:           file (chosen by the manifest's `store`)"),
        "{out}"
    );
    // --store overrides the variable, and gets the credit for it, before
    // or after the subcommand.
    let both = project().env("WITH_SECRETS_STORE", "keyutils");
    for out in [
        doctor(&both, &["--store", "file"]),
        doctor_args(&both, &["--store", "file", "doctor"]),
    ] {
        assert!(
            out.contains("uses:           file (chosen by --store)"),
            "{out}"
        );
    }
}

#[test]
fn without_a_manifest_it_still_reports_the_rest() {
    let out = doctor(&Test::new(), &[]);
    assert!(
        out.contains("manifest\n  no secrets.toml found in "),
        "{out}"
    );
    assert!(!out.contains("entries"), "{out}");
}

#[test]
fn keyutils_is_usable_inside_a_keyctl_session() {
    let test = project();
    let command = format!("{} doctor", crate::support::BIN);
    let output = std::process::Command::new("keyctl")
        .args(["session", "-", "sh", "-c", &command])
        .current_dir(test.path())
        .env_clear()
        .envs(test.envs())
        .bounded_output()
        .expect("keyctl (keyutils)");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("keyutils:       usable"), "{out}");
}

#[test]
fn keyrings_alt_files_are_listed_with_a_warning() {
    let test = project().env("XDG_DATA_HOME", "data");
    let test = test.file(
        "data/python_keyring/keyring_pass.cfg",
        "[s]\na = \n\taGVsbG8=\n\n",
    );
    let out = doctor(&test, &[]);
    assert!(out.contains("keyring_pass.cfg (1 entry, plain text: move them with `with-secrets import --from keyrings-alt`)"), "{out}");
}
