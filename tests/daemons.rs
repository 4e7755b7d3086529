//! Secret Service daemons besides gnome-keyring: KeePassXC (headless, under
//! its own Xvfb) and oo7-daemon, each on a private bus, by the same rules.
//! Also what every daemon may do that gnome-keyring does not: a prompt for
//! every change, nothing found in a locked collection, `IsLocked` from
//! CreateItem, a session algorithm it cannot open.

use std::time::Instant;

use crate::support::{SecretService, Test, manifest_for};

const VALUE: &str = "daemon-canary-7e21";

fn project(service: &SecretService) -> Test {
    Test::new()
        .keyring(service)
        .manifest(&manifest_for(&[("A", "s", "a")]))
        .env("WITH_SECRETS_STORE", "secret-service")
}

/// set of a new entry, get, a run, check, delete, all without a terminal.
fn every_command_works_headless(service: &SecretService) {
    let test = project(service);
    test.run_input(VALUE, ["set", "A"]).success();
    assert_eq!(service.items("s", "a").len(), 1);
    test.run(["get", "A"]).success().stdout_is(VALUE);
    test.run(["--", "sh", "-c", "printf %s \"$A\""])
        .success()
        .stdout_is(VALUE);
    let check = test.run(["check"]);
    check.success().never_shows(VALUE);
    assert!(check.stdout().contains("found"), "{}", check.stdout());
    test.run_input("second", ["set", "A"]).success();
    assert_eq!(service.items("s", "a").len(), 1);
    test.run(["get", "A"]).success().stdout_is("second");
    test.run(["delete", "A"]).success();
    assert!(service.items("s", "a").is_empty());
    test.run(["get", "A"])
        .expect_code(125)
        .stderr_has("A is not stored in secret-service");
}

#[test]
fn keepassxc_set_get_run_check_delete_headless() {
    every_command_works_headless(&SecretService::start_keepassxc());
}

#[test]
fn oo7_set_get_run_check_delete_headless() {
    every_command_works_headless(&SecretService::start_oo7());
}
