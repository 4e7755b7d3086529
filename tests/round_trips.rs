//! A regression guard for speed that times nothing: the number of D-Bus
//! round trips, and of calls, that a run makes as the number of secrets grows.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{SecretService, Test, manifest_for};

/// Calls each with-secrets run sent to the Secret Service, by sender and
/// member; a property `Get`, by member and object path.
fn monitored(
    service: &SecretService,
    runs: impl FnOnce(),
) -> BTreeMap<String, BTreeMap<String, usize>> {
    let text = monitor_log(service, "type='method_call'", runs);
    let mut calls: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("method call ")) {
        let field = |name: &str| {
            line.split([' ', ';'])
                .find_map(|word| word.strip_prefix(name))
                .unwrap_or_default()
                .to_owned()
        };
        let mut member = field("member=");
        if member == "Get" {
            member = format!("Get {}", field("path="));
        }
        *calls
            .entry(field("sender="))
            .or_default()
            .entry(member)
            .or_default() += 1;
    }
    calls
}

/// Everything dbus-monitor saw matching `rule` while `runs` ran.
fn monitor_log(service: &SecretService, rule: &str, runs: impl FnOnce()) -> String {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut monitor = Command::new("dbus-monitor")
        .args(["--address", service.address(), rule])
        .stdout(Stdio::from(log.reopen().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-monitor (package dbus-bin)");
    // It is listening once it has given up its name to become a monitor.
    let start = Instant::now();
    while !std::fs::read_to_string(log.path())
        .unwrap()
        .contains("NameLost")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dbus-monitor never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    runs();
    // The bus passes messages on in the order it routes them, so once the
    // monitor shows a call made after every run ended, it has shown
    // everything the runs sent and received.
    let marker = format!("with-secrets.test.marker{}", std::process::id());
    let _ = service
        .connection()
        .with_proxy(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            Duration::from_secs(5),
        )
        .method_call::<(String,), _, _, _>("org.freedesktop.DBus", "GetNameOwner", (&marker,));
    let start = Instant::now();
    while !std::fs::read_to_string(log.path())
        .unwrap()
        .contains(&marker)
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "dbus-monitor never showed the marker"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    monitor.kill().unwrap();
    monitor.wait().unwrap();
    std::fs::read_to_string(log.path()).unwrap()
}

/// The lines of each reply to a `GetSecrets` call in `log`, by the call's
/// sender and serial: proof that the monitor saw the value pass.
fn get_secrets_replies(log: &str) -> Vec<&str> {
    let field = |line: &str, name: &str| {
        line.split([' ', ';'])
            .find_map(|word| word.strip_prefix(name))
            .map(str::to_owned)
    };
    let calls: Vec<(String, String)> = log
        .lines()
        .filter(|line| line.starts_with("method call ") && line.contains("member=GetSecrets"))
        .filter_map(|line| Some((field(line, "sender=")?, field(line, "serial=")?)))
        .collect();
    log.lines()
        .filter(|line| {
            line.starts_with("method return ")
                && calls.iter().any(|(sender, serial)| {
                    field(line, "destination=").as_ref() == Some(sender)
                        && field(line, "reply_serial=").as_ref() == Some(serial)
                })
        })
        .collect()
}

fn round_trips(run: &crate::support::Run) -> usize {
    run.stderr()
        .lines()
        .find_map(|line| line.strip_prefix("with-secrets: trace: "))
        .and_then(|rest| rest.strip_suffix(" round trips"))
        .expect("a debug build reports its round trips")
        .parse()
        .unwrap()
}

#[test]
fn a_run_with_20_secrets_waits_as_often_as_a_run_with_1() {
    let service = SecretService::start();
    for i in 1..=20 {
        service.store_foreign("bench", &format!("user-{i}"), "x", &format!("value-{i}"));
    }
    let manifest = |n: usize| {
        let entries: Vec<(String, String)> = (1..=n)
            .map(|i| (format!("S_{i}"), format!("user-{i}")))
            .collect();
        let refs: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|(name, user)| (name.as_str(), "bench", user.as_str()))
            .collect();
        manifest_for(&refs)
    };
    let one = Test::new()
        .keyring(&service)
        .manifest(&manifest(1))
        .env("WITH_SECRETS_TRACE_ROUND_TRIPS", "1");
    let twenty = Test::new()
        .keyring(&service)
        .manifest(&manifest(20))
        .env("WITH_SECRETS_TRACE_ROUND_TRIPS", "1");
    let mut trips = Vec::new();
    let calls = monitored(&service, || {
        for test in [&one, &twenty] {
            let run = test.run(["--", "sh", "-c", "printf %s \"$S_1\""]);
            run.success().stdout_is("value-1");
            trips.push(round_trips(&run));
        }
    });
    // Search (with the service's Collections property, asked in case some
    // key finds nothing), then fetch: two waits, whatever the number of
    // secrets. Every key found something, so no collection's Locked is asked.
    assert_eq!(trips, [2, 2]);
    let mut runs: Vec<_> = calls
        .into_values()
        .filter(|members| members.contains_key("OpenSession"))
        .collect();
    runs.sort_by_key(|members| members.get("SearchItems").copied());
    let expected = |n: usize| {
        BTreeMap::from([
            ("Hello".to_owned(), 1),
            ("OpenSession".to_owned(), 1),
            ("SearchItems".to_owned(), n),
            ("Get /org/freedesktop/secrets".to_owned(), 1),
            ("GetSecrets".to_owned(), 1),
        ])
    };
    assert_eq!(runs, [expected(1), expected(20)]);
}

#[test]
fn values_cross_the_bus_encrypted_unless_a_plain_session_is_asked_for() {
    const VALUE: &str = "bus-canary-3c9d";
    let service = SecretService::start();
    service.store_foreign("s", "a", "a", VALUE);
    let test = Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[("A", "s", "a")]));
    let run = |test: &Test| {
        test.run(["--", "sh", "-c", "printf %s \"$A\""])
            .success()
            .stdout_is(VALUE);
    };
    let default = monitor_log(&service, "", || run(&test));
    assert!(
        default.contains("dh-ietf1024-sha256-aes128-cbc-pkcs7"),
        "{default}"
    );
    // The check below means something only if the value went past the monitor.
    assert_eq!(get_secrets_replies(&default).len(), 1, "{default}");
    assert!(
        !default.contains(VALUE),
        "the value crossed the bus in clear"
    );
    // What the plain session exposes, as its documentation says: the value,
    // to anyone monitoring the bus.
    let plain = test.env("WITH_SECRETS_PLAIN_SESSION", "1");
    let log = monitor_log(&service, "", || run(&plain));
    assert_eq!(get_secrets_replies(&log).len(), 1, "{log}");
    assert!(log.contains("string \"plain\""), "{log}");
    assert!(log.contains(VALUE), "{log}");
    // Items written over a plain session read back over an encrypted one.
    plain.run_input("written-plain", ["set", "A"]).success();
    Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[("A", "s", "a")]))
        .run(["get", "A"])
        .success()
        .stdout_is("written-plain");
}

#[test]
fn a_profile_adds_no_round_trip() {
    let service = SecretService::start();
    for i in 1..=4 {
        service.store_foreign("acme", &format!("dev-{i}"), "x", "dev");
        service.store_foreign("acme", &format!("staging-{i}"), "x", "staging");
    }
    let manifest = "[secrets]\n\
        A = { service = \"acme\", username = \"dev-1\" }\n\
        B = { service = \"acme\", username = \"dev-2\" }\n\
        [profiles.staging.secrets]\n\
        A = { service = \"acme\", username = \"staging-1\" }\n\
        C = { service = \"acme\", username = \"staging-3\" }\n\
        D = { service = \"acme\", username = \"staging-4\" }\n";
    let test = Test::new()
        .keyring(&service)
        .manifest(manifest)
        .env("WITH_SECRETS_TRACE_ROUND_TRIPS", "1");
    let mut trips = Vec::new();
    let calls = monitored(&service, || {
        for flags in [&[][..], &["--profile", "staging"]] {
            let mut args = flags.to_vec();
            args.extend(["--", "sh", "-c", "printf %s \"$A\""]);
            let run = test.run(&args);
            run.success()
                .stdout_is(if flags.is_empty() { "dev" } else { "staging" });
            trips.push(round_trips(&run));
        }
    });
    assert_eq!(trips, [2, 2]);
    let get_secrets: Vec<usize> = calls
        .into_values()
        .filter_map(|members| members.get("GetSecrets").copied())
        .collect();
    assert_eq!(get_secrets, [1, 1], "one fetch each");
}

#[test]
fn a_run_that_generates_values_adds_one_round_trip_for_them_all() {
    let service = SecretService::start();
    service.store_foreign("acme", "kept", "x", "kept");
    let manifest = |names: &[&str]| {
        let mut text = "[secrets]\nKEPT = { service = \"acme\", username = \"kept\" }\n".to_owned();
        for name in names {
            text.push_str(&format!(
                "{name} = {{ service = \"acme\", username = \"{name}\", generate = true }}\n"
            ));
        }
        text
    };
    let one = Test::new()
        .keyring(&service)
        .manifest(&manifest(&["G1"]))
        .env("WITH_SECRETS_TRACE_ROUND_TRIPS", "1");
    let three = Test::new()
        .keyring(&service)
        .manifest(&manifest(&["G2", "G3", "G4"]))
        .env("WITH_SECRETS_TRACE_ROUND_TRIPS", "1");
    let mut trips = Vec::new();
    let calls = monitored(&service, || {
        // `check` looks up without generating: the same lookup as a run's.
        for (test, args) in [
            (&one, &["check"][..]),
            (&three, &["check"]),
            (&one, &["--", "true"]),
            (&three, &["--", "true"]),
            (&three, &["--", "true"]),
        ] {
            let run = test.run(args);
            run.success();
            trips.push(round_trips(&run));
        }
    });
    let looked_up = trips[0];
    assert_eq!(trips[1], looked_up, "{trips:?}");
    assert_eq!(
        trips[2..4],
        [looked_up + 1, looked_up + 1],
        "one more wait, for one value or three: {trips:?}"
    );
    assert_eq!(trips[4], 2, "a later run finds every value: {trips:?}");
    let mut created: Vec<usize> = calls
        .into_values()
        .filter_map(|members| members.get("CreateItem").copied())
        .collect();
    created.sort_unstable();
    assert_eq!(created, [1, 3]);
}
