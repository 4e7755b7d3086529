//! The Windows build under Wine: the `windows` store against the Credential
//! Manager of a Wine prefix in a temporary folder, and sharing items with
//! Python's `keyring`, played by tests/wine/python-keyring-standin.c (a
//! stand-in that makes the advapi32 calls keyring's Windows backend makes).
//!
//! Every test uses a service of its own, so they share one prefix and still
//! run in parallel.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::wine::wine;
use crate::support::{Test, manifest_for};

/// A project whose entries are `(NAME, service, username)`.
fn project(entries: &[(&str, &str, &str)]) -> Test {
    Test::new().manifest(&manifest_for(entries))
}

fn set(test: &Test, name: &str, value: &str) {
    wine()
        .run_input(test, Some(value.as_bytes()), ["set", name])
        .success();
}

fn get(test: &Test, name: &str) -> String {
    let run = wine().run(test, ["get", name]);
    run.success();
    run.stdout()
}

#[test]
fn set_get_check_run_and_delete() {
    let test = project(&[("WIN_TOKEN", "win-basic", "alice")]);
    set(&test, "WIN_TOKEN", "s3cret-value");
    assert_eq!(get(&test, "WIN_TOKEN"), "s3cret-value");
    let check = wine().run(&test, ["check"]);
    check.success().never_shows("s3cret-value");
    assert!(check.stdout().contains("found"), "{}", check.stdout());

    // The command prints the variable itself: cmd.exe's `echo` under Wine
    // once hung in 33 runs.
    let standin = wine().standin_command();
    let run = wine().run(&test, ["--", standin.as_str(), "env", "WIN_TOKEN"]);
    run.success();
    assert_eq!(run.stdout(), "[s3cret-value]");

    wine().run(&test, ["delete", "WIN_TOKEN"]).success();
    assert_eq!(wine().count("win-basic"), 0);
    wine().run(&test, ["get", "WIN_TOKEN"]).expect_code(125);
    wine().run(&test, ["check"]).expect_code(1);
}

#[test]
fn the_commands_exit_code_passes_through() {
    let test = project(&[("WIN_EXIT", "win-exit", "alice")]);
    set(&test, "WIN_EXIT", "v");
    wine()
        .run(&test, ["--", "cmd", "/c", "exit", "7"])
        .expect_code(7);
}

#[test]
fn pythons_items_are_read_and_ours_are_read_by_python() {
    let test = project(&[("WIN_SHARED", "win-shared", "alice")]);
    let wine = wine();
    // Not ASCII, and of an even length in UTF-8: only UTF-16 reads it right.
    wine.python_set("win-shared", "alice", "héllo wörld €1");
    assert_eq!(get(&test, "WIN_SHARED"), "héllo wörld €1");
    set(&test, "WIN_SHARED", "ünïcode ✓ ours");
    assert_eq!(
        wine.python_get("win-shared", "alice").as_deref(),
        Some("ünïcode ✓ ours")
    );
}

#[test]
fn updates_alternating_the_two_tools_keep_the_latest_value() {
    let test = project(&[("WIN_ALT", "win-alt", "alice")]);
    let wine = wine();
    for round in 0..3 {
        let ours = format!("ours-{round}");
        set(&test, "WIN_ALT", &ours);
        assert_eq!(wine.python_get("win-alt", "alice"), Some(ours));
        assert_eq!(get(&test, "WIN_ALT"), format!("ours-{round}"));
        // Our set leaves one item: SERVICE, owned by alice.
        assert_eq!(wine.count("win-alt"), 1);

        let theirs = format!("theirs-{round}");
        wine.python_set("win-alt", "alice", &theirs);
        assert_eq!(get(&test, "WIN_ALT"), theirs);
        assert_eq!(wine.python_get("win-alt", "alice"), Some(theirs));
        // Python's set copies the old value to alice@SERVICE, shadowed.
        assert_eq!(wine.count("win-alt"), 2);
    }
    // Our delete removes Python's shadowed copy too...
    wine.run(&test, ["delete", "WIN_ALT"]).success();
    assert_eq!(wine.count("win-alt"), 0);
    assert_eq!(wine.python_get("win-alt", "alice"), None);
    // ...and Python's delete removes ours.
    set(&test, "WIN_ALT", "last");
    wine.python(&["delete", "win-alt", "alice"]).success();
    assert_eq!(wine.count("win-alt"), 0);
    wine.run(&test, ["get", "WIN_ALT"]).expect_code(125);
}

/// Sets its flag when dropped: on a panic too, so threads that wait on it
/// end.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The stand-in's `count`, which the tests above rely on, stays right while
/// other processes write and delete their own credentials in the prefix, as
/// the tests running beside it do. (Through Wine's CredEnumerateW it crashed
/// or answered 0 now and then.)
#[test]
fn the_standins_count_holds_while_other_processes_write() {
    let wine = wine();
    wine.python_set("win-count", "alice", "one");
    let stop = AtomicBool::new(false);
    let counts: Vec<usize> = std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        for writer in 0..2 {
            let stop = &stop;
            scope.spawn(move || {
                let mut round = 0;
                while !stop.load(Ordering::SeqCst) {
                    round += 1;
                    let service = format!("win-count-churn-{writer}-{}", round % 5);
                    // Their outcome does not matter here, only the churn.
                    for args in [
                        ["set", &service, "bob", "value"].as_slice(),
                        &["set", &service, "carol", "value"],
                        &["delete", &service, "bob"],
                        &["delete", &service, "carol"],
                    ] {
                        wine.python(args);
                    }
                }
            });
        }
        (0..20).map(|_| wine.count("win-count")).collect()
    });
    assert!(counts.iter().all(|&count| count == 1), "{counts:?}");
}

#[test]
fn a_second_username_of_a_service_is_found_by_both_tools() {
    let test = project(&[("WIN_A", "win-two", "alice"), ("WIN_B", "win-two", "bob")]);
    let wine = wine();
    set(&test, "WIN_A", "alice-1");
    set(&test, "WIN_B", "bob-1");
    // bob now owns SERVICE; alice was moved to alice@SERVICE.
    assert_eq!(wine.count("win-two"), 2);
    assert_eq!(
        wine.python_get("win-two", "alice").as_deref(),
        Some("alice-1")
    );
    assert_eq!(wine.python_get("win-two", "bob").as_deref(), Some("bob-1"));
    wine.python_set("win-two", "alice", "alice-2");
    assert_eq!(get(&test, "WIN_A"), "alice-2");
    assert_eq!(get(&test, "WIN_B"), "bob-1");
    set(&test, "WIN_B", "bob-2");
    assert_eq!(
        wine.python_get("win-two", "alice").as_deref(),
        Some("alice-2")
    );
    assert_eq!(wine.python_get("win-two", "bob").as_deref(), Some("bob-2"));
    assert_eq!(wine.count("win-two"), 2);

    wine.run(&test, ["delete", "WIN_B"]).success();
    assert_eq!(wine.python_get("win-two", "bob"), None);
    assert_eq!(get(&test, "WIN_A"), "alice-2");
    assert_eq!(wine.count("win-two"), 1);
}

#[test]
fn an_item_of_an_earlier_version_is_read_then_moved_by_set() {
    let test = project(&[("WIN_OLD", "win-old", "alice")]);
    let wine = wine();
    // As keyring-core's Windows store wrote it: USERNAME.SERVICE, raw UTF-8.
    wine.python(&["raw", "alice.win-old", "alice", "old-välue"])
        .success();
    assert_eq!(get(&test, "WIN_OLD"), "old-välue");
    wine.run(&test, ["check"]).success();
    // Python's lookup does not see it...
    assert_eq!(wine.python_get("win-old", "alice"), None);

    set(&test, "WIN_OLD", "new-välue");
    // ...and after `set` it sees the new value, and the old item is gone.
    assert_eq!(
        wine.python_get("win-old", "alice").as_deref(),
        Some("new-välue")
    );
    assert_eq!(wine.count("win-old"), 1);
    assert_eq!(get(&test, "WIN_OLD"), "new-välue");
}

#[test]
fn a_value_the_credential_manager_cannot_hold_is_refused_by_name() {
    let test = project(&[("WIN_LONG", "win-long", "alice")]);
    let wine = wine();
    // 1,280 UTF-16 units fit in the 2,560-byte blob...
    set(&test, "WIN_LONG", &"x".repeat(1280));
    assert_eq!(get(&test, "WIN_LONG").len(), 1280);
    // ...1,281 do not, nor do 641 characters outside the BMP (1,282 units).
    for value in ["y".repeat(1281), "😀".repeat(641)] {
        wine.run_input(&test, Some(value.as_bytes()), ["set", "WIN_LONG"])
            .expect_code(125)
            .stderr_has("cannot store WIN_LONG")
            .stderr_has("at most 1280");
    }
    wine.run_input(&test, Some(&[0xff, 0xfe, b'a']), ["set", "WIN_LONG"])
        .expect_code(125)
        .stderr_has("cannot store WIN_LONG")
        .stderr_has("not UTF-8");
    // Nothing was changed by the refused ones.
    assert_eq!(get(&test, "WIN_LONG"), "x".repeat(1280));
}

#[test]
fn doctor_reports_no_container_and_no_wsl() {
    let test = project(&[("WIN_DOC", "win-doctor", "alice")]);
    let run = wine().run(&test, ["doctor"]);
    run.success();
    let out = run.stdout();
    assert!(
        out.contains("uses:           windows (auto: the platform's keyring answers)"),
        "{out}"
    );
    // The test machine may well be a container (/.dockerenv): a Windows
    // build must not look there.
    assert!(out.contains("container:      no"), "{out}");
    assert!(out.contains("WSL:            no"), "{out}");
}
