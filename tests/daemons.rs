//! Secret Service daemons besides gnome-keyring: KeePassXC (headless, under
//! its own Xvfb) and oo7-daemon, each on a private bus, by the same rules.
//! Also what every daemon may do that gnome-keyring does not: a prompt for
//! every change, nothing found in a locked collection, `IsLocked` from
//! CreateItem, a session algorithm it cannot open.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dbus::Message;
use dbus::arg::Variant;
use dbus::channel::Channel;
use dbus::message::MessageType;

use crate::support::{SecretService, Test, manifest_for};

const VALUE: &str = "daemon-canary-7e21";
/// A stale `export A=...`: what a run must never print unless no Secret
/// Service is there at all.
const STALE: &str = "stale-exported-value";
const PROMPT_IFACE: &str = "org.freedesktop.Secret.Prompt";

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

/// Two items for one entry, as two tools that each made their own leave them.
fn duplicates_merge_into_one(service: &SecretService) {
    service.store_foreign_with("s", "a", "first", "one", &[("copy", "1")]);
    service.store_foreign_with("s", "a", "second", "two", &[("copy", "2")]);
    assert_eq!(service.items("s", "a").len(), 2);
    let test = project(service);
    test.run_input(VALUE, ["set", "A"])
        .success()
        .never_shows(VALUE);
    assert_eq!(service.items("s", "a").len(), 1);
    test.run(["get", "A"]).success().stdout_is(VALUE);
}

#[test]
fn keepassxc_set_merges_duplicates_and_exits_0() {
    duplicates_merge_into_one(&SecretService::start_keepassxc());
}

#[test]
fn oo7_set_merges_duplicates_and_exits_0() {
    duplicates_merge_into_one(&SecretService::start_oo7());
}

#[test]
fn gnome_keyring_set_merges_duplicates_and_exits_0() {
    duplicates_merge_into_one(&SecretService::start());
}

/// Locks `service`'s default collection with an item for A in it, and checks
/// that the daemon then hides the item from searches, as the tests below
/// need.
fn lock_hiding(service: &SecretService) {
    service.store_foreign("s", "a", "a", VALUE);
    service.lock();
    assert_eq!(service.default_locked(), Some(true));
    assert!(
        service.items("s", "a").is_empty(),
        "this daemon shows locked items; the test needs one that hides them"
    );
}

#[test]
fn oo7_locked_collection_that_finds_nothing_is_a_locked_error_not_missing() {
    let service = SecretService::start_oo7();
    lock_hiding(&service);
    // oo7-daemon has no prompter on this bus: its prompt fails at once
    // (org.freedesktop.zbus.Error: "CLI prompter failed"): "could not be shown".
    project(&service)
        .run(["--", "sh", "-c", "printf %s \"$A\""])
        .expect_code(125)
        .never_shows(VALUE)
        .stderr_has(
            "secret-service: the keyring is locked, and oo7-daemon's unlock prompt was \
             dismissed or could not be shown",
        )
        .stderr_lacks("missing")
        .stderr_lacks("not stored");
    // check fails the same way, with A in the environment too.
    let check = project(&service).env("A", STALE).run(["check"]);
    check
        .expect_code(125)
        .stderr_has("oo7-daemon's unlock prompt was dismissed")
        .never_shows(STALE)
        .never_shows(VALUE);
    assert!(!check.stdout().contains("missing"), "{}", check.stdout());
}

/// What every command says when KeePassXC's database is locked and its
/// unlock dialog gets no answer within `--timeout 1`.
const KEEPASSXC_LOCKED: &str = "secret-service: the KeePassXC database is locked, and \
     KeePassXC's unlock dialog got no answer within 1 s: it may still be waiting for the \
     password\n  unlock it (type its password in KeePassXC's unlock dialog, or unlock the \
     database in KeePassXC's window), then run this again (--timeout gives the dialog longer)\n";

#[test]
fn keepassxc_unlock_prompt_nobody_answers_fails_at_the_timeout_saying_the_database_is_locked() {
    let service = SecretService::start_keepassxc();
    lock_hiding(&service);
    // KeePassXC shows its unlock dialog on the Xvfb, where nobody answers.
    // A stale A in the environment never stands in for it.
    let test = project(&service).env("A", STALE);
    let run = test.run(["--timeout", "1", "--", "sh", "-c", "printf 'ran:%s' \"$A\""]);
    run.expect_code(125)
        .never_shows(VALUE)
        .never_shows(STALE)
        .stderr_has(KEEPASSXC_LOCKED)
        // The unlock dialog is no confirmation: no setting turns it off.
        .stderr_lacks("confirmations")
        .stderr_lacks("did not finish its prompt")
        .stderr_lacks("missing");
    assert!(!run.stdout().contains("ran:"), "{}", run.stdout());
    // check and get fail the same way.
    for args in [
        &["--timeout", "1", "check"][..],
        &["--timeout", "1", "get", "A"],
    ] {
        let run = test.run(args);
        run.expect_code(125)
            .stderr_has(KEEPASSXC_LOCKED)
            .stderr_lacks("confirmations")
            .never_shows(STALE)
            .never_shows(VALUE);
        assert!(!run.stdout().contains("missing"), "{}", run.stdout());
    }
    // The dialog it names was there: nobody answered it, so the database
    // is still locked.
    assert_eq!(service.default_locked(), Some(true));
}

#[test]
fn a_locked_collection_that_finds_nothing_never_falls_back_to_the_environment() {
    let service = SecretService::start_oo7();
    lock_hiding(&service);
    project(&service)
        .env("A", "from-the-environment")
        .run(["--", "sh", "-c", "printf %s \"$A\""])
        .expect_code(125)
        .stderr_has("the keyring is locked");
}

/// Watches `service`'s bus for the first `Prompt` call anyone makes, and
/// answers it with a forged `Completed` signal (dismissed) from this
/// connection: once to everyone, once to the caller directly, which no match
/// rule filters. Returns how many it sent.
fn forge_completed(service: &SecretService, until: Instant) -> std::thread::JoinHandle<usize> {
    let address = service.address().to_owned();
    let (ready, listening) = std::sync::mpsc::channel();
    let forger = std::thread::spawn(move || {
        let mut channel = Channel::open_private(&address).expect("connect");
        channel.register().expect("register");
        let watch = Message::new_method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
        )
        .unwrap()
        .append1(
            "type='method_call',interface='org.freedesktop.Secret.Prompt',member='Prompt',\
             eavesdrop='true'",
        );
        channel
            .send_with_reply_and_block(watch, Duration::from_secs(10))
            .expect("AddMatch");
        ready.send(()).unwrap();
        while Instant::now() < until {
            channel
                .read_write(Some(Duration::from_millis(50)))
                .expect("the bus is there");
            while let Some(call) = channel.pop_message() {
                if call.msg_type() != MessageType::MethodCall
                    || call.member().as_deref() != Some("Prompt")
                {
                    continue;
                }
                let path = call.path().unwrap().to_string();
                let caller = call.sender().unwrap().into_static();
                let forged = || {
                    Message::new_signal(path.clone(), PROMPT_IFACE, "Completed")
                        .unwrap()
                        .append2(true, Variant(""))
                };
                let mut direct = forged();
                direct.set_destination(Some(caller));
                channel.send(forged()).unwrap();
                channel.send(direct).unwrap();
                channel.flush();
                return 2;
            }
        }
        0
    });
    listening
        .recv_timeout(Duration::from_secs(20))
        .expect("the forger is listening");
    forger
}

#[test]
fn a_forged_completed_signal_from_another_connection_is_ignored() {
    let service = SecretService::start_keepassxc();
    lock_hiding(&service);
    let forger = forge_completed(&service, Instant::now() + Duration::from_secs(20));
    // KeePassXC's unlock dialog waits on the Xvfb; the forger says at once
    // that it was dismissed. Only KeePassXC may say so.
    let run = project(&service).run(["--timeout", "2", "get", "A"]);
    assert_eq!(forger.join().unwrap(), 2, "the forger saw no Prompt call");
    run.expect_code(125)
        .stderr_has(
            "the KeePassXC database is locked, and KeePassXC's unlock dialog got no answer \
             within 2 s",
        )
        .stderr_lacks("dismissed");
}

/// A tiny Secret Service, run by a thread of this test, for what no real
/// daemon here does on demand. It answers each call as `answer` says (an
/// UnknownMethod error for `None`), and records each call's member.
struct Fake {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

/// What the fake does with a call.
enum Act {
    /// Sends these: the reply, and any signals.
    Send(Vec<Message>),
    /// Gives up `org.freedesktop.secrets`, then sends these: the next call
    /// to the name finds no owner, as when a daemon quits mid-run.
    Leave(Vec<Message>),
    /// Disconnects from the bus without answering, as a daemon that crashes
    /// while asked.
    Hangup,
}

impl From<Vec<Message>> for Act {
    fn from(replies: Vec<Message>) -> Self {
        Self::Send(replies)
    }
}

type Answer = dyn FnMut(&str, &Message, usize) -> Option<Act> + Send;

impl Fake {
    fn start(service: &SecretService, mut answer: Box<Answer>) -> Self {
        let address = service.address().to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let (ready, owned) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut channel = Channel::open_private(&address).expect("connect");
            channel.register().expect("register");
            let bus_call = |member: &str| {
                Message::new_method_call(
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    member,
                )
                .unwrap()
            };
            let request = bus_call("RequestName").append2("org.freedesktop.secrets", 4u32);
            let reply = channel
                .send_with_reply_and_block(request, Duration::from_secs(10))
                .expect("RequestName");
            assert_eq!(reply.read1::<u32>().unwrap(), 1, "the fake owns the name");
            ready.send(()).unwrap();
            let mut calls: Vec<String> = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                channel
                    .read_write(Some(Duration::from_millis(20)))
                    .expect("the bus is there");
                while let Some(call) = channel.pop_message() {
                    if call.msg_type() != MessageType::MethodCall {
                        continue;
                    }
                    let member = call.member().unwrap().to_string();
                    let seen = calls.iter().filter(|m| **m == member).count();
                    calls.push(member.clone());
                    let replies = match answer(&member, &call, seen) {
                        Some(Act::Send(replies)) => replies,
                        Some(Act::Leave(replies)) => {
                            let release =
                                bus_call("ReleaseName").append1("org.freedesktop.secrets");
                            channel
                                .send_with_reply_and_block(release, Duration::from_secs(10))
                                .expect("ReleaseName");
                            replies
                        }
                        // Dropping the channel closes the connection.
                        Some(Act::Hangup) => return calls,
                        None => vec![call.error(
                            &"org.freedesktop.DBus.Error.UnknownMethod".into(),
                            c"not in this fake",
                        )],
                    };
                    for reply in replies {
                        channel.send(reply).unwrap();
                    }
                }
                channel.flush();
            }
            calls
        });
        owned
            .recv_timeout(Duration::from_secs(20))
            .expect("the fake service owns org.freedesktop.secrets");
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it; returns every call it got, by member, in order.
    fn calls(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

const COLLECTION: &str = "/org/freedesktop/secrets/collection/fake";
const ITEM: &str = "/org/freedesktop/secrets/collection/fake/1";
const PROMPT: &str = "/org/freedesktop/secrets/prompt/1";
const SESSION: &str = "/org/freedesktop/secrets/session/1";

/// What every fake answers alike, unless it answers otherwise: a plain
/// session, the default alias, one collection, unlocked.
fn common(member: &str, call: &Message) -> Option<Act> {
    let reply = match member {
        "OpenSession" if call.read1::<&str>().ok() == Some("plain") => call
            .method_return()
            .append2(Variant(""), dbus::Path::from(SESSION)),
        "ReadAlias" => call.method_return().append1(dbus::Path::from(COLLECTION)),
        "Get" => match call.read2::<&str, &str>().ok()? {
            (_, "Collections") => call
                .method_return()
                .append1(Variant(vec![dbus::Path::from(COLLECTION)])),
            (_, "Locked") => call.method_return().append1(Variant(false)),
            _ => return None,
        },
        _ => return None,
    };
    Some(Act::Send(vec![reply]))
}

/// The property a `Get` call asks for, and of which object.
fn property(call: &Message) -> (String, String) {
    let (_, name): (&str, &str) = call.read2().expect("Get(interface, name)");
    (call.path().unwrap().to_string(), name.to_owned())
}

/// A `SearchItems` reply: (unlocked, locked).
fn found(call: &Message, unlocked: &[&str], locked: &[&str]) -> Act {
    let paths = |list: &[&str]| -> Vec<dbus::Path<'static>> {
        list.iter()
            .map(|p| dbus::Path::from(p.to_string()))
            .collect()
    };
    vec![call.method_return().append2(paths(unlocked), paths(locked))].into()
}

/// A `GetSecrets` reply with `value` for each of `items`, as a plain
/// session carries it.
fn secrets(call: &Message, items: &[&str], value: &str) -> Act {
    let secrets: std::collections::HashMap<
        dbus::Path<'static>,
        (dbus::Path<'static>, Vec<u8>, Vec<u8>, String),
    > = items
        .iter()
        .map(|item| {
            (
                dbus::Path::from(item.to_string()),
                (
                    dbus::Path::from(SESSION),
                    Vec::new(),
                    value.as_bytes().to_vec(),
                    "text/plain".to_owned(),
                ),
            )
        })
        .collect();
    vec![call.method_return().append1(secrets)].into()
}

/// An `Unlock` reply that unlocked nothing at once and returns `PROMPT`.
fn unlock_with_prompt(call: &Message) -> Act {
    vec![
        call.method_return()
            .append2(Vec::<dbus::Path>::new(), dbus::Path::from(PROMPT)),
    ]
    .into()
}

/// A `Prompt` reply, and its `Completed` signal: not dismissed, and
/// `unlocked` as its result.
fn prompt_completes(call: &Message, unlocked: &[&str]) -> Act {
    let unlocked: Vec<dbus::Path<'static>> = unlocked
        .iter()
        .map(|p| dbus::Path::from(p.to_string()))
        .collect();
    vec![
        call.method_return(),
        Message::new_signal(PROMPT, PROMPT_IFACE, "Completed")
            .unwrap()
            .append2(false, Variant(unlocked)),
    ]
    .into()
}

/// A project on `bus` (a fake, over a plain session) whose entry A is also
/// in the environment, stale.
fn stale_project(bus: &SecretService) -> Test {
    project(bus)
        .env("WITH_SECRETS_PLAIN_SESSION", "1")
        .env("A", STALE)
}

/// Runs a command that prints A; asserts it never ran.
#[track_caller]
fn refused(test: &Test, message: &str) -> crate::support::Run {
    let run = test.run(["--", "sh", "-c", "printf 'ran:%s' \"$A\""]);
    run.expect_code(125)
        .stderr_has(message)
        .never_shows(STALE)
        .never_shows(VALUE);
    assert!(!run.stdout().contains("ran:"), "{}", run.stdout());
    run
}

#[test]
fn create_item_answering_is_locked_unlocks_the_collection_and_retries() {
    let bus = SecretService::bus_only();
    let fake = Fake::start(
        &bus,
        Box::new(move |member, call, seen| {
            let no_items: (Vec<dbus::Path>, Vec<dbus::Path>) = (Vec::new(), Vec::new());
            Some(match member {
                "SearchItems" => vec![call.method_return().append2(no_items.0, no_items.1)].into(),
                // Its Locked property says unlocked; CreateItem knows better.
                "CreateItem" if seen == 0 => vec![call.error(
                    &"org.freedesktop.Secret.Error.IsLocked".into(),
                    c"the collection is locked",
                )]
                .into(),
                "CreateItem" => vec![
                    call.method_return()
                        .append2(dbus::Path::from(ITEM), dbus::Path::from("/")),
                ]
                .into(),
                // Unlocking needs a prompt, which completes with no person,
                // as KeePassXC's and oo7's can.
                "Unlock" => unlock_with_prompt(call),
                "Prompt" => prompt_completes(call, &[COLLECTION]),
                _ => return common(member, call),
            })
        }),
    );
    project(&bus)
        .env("WITH_SECRETS_PLAIN_SESSION", "1")
        .run_input(VALUE, ["set", "A"])
        .success();
    // Nothing found: is any collection locked? (Get Collections, then its
    // Locked.) None is, so the item is created; CreateItem says otherwise.
    assert_eq!(
        fake.calls(),
        [
            "OpenSession",
            "SearchItems",
            "Get",
            "Get",
            "CreateItem",
            "ReadAlias",
            "Unlock",
            "Prompt",
            "SearchItems",
            "Get",
            "Get",
            "CreateItem"
        ]
    );
}

#[test]
fn an_item_found_but_left_out_of_get_secrets_is_locked_not_missing() {
    // gnome-keyring leaves a locked item out of GetSecrets, with no error:
    // here it was locked again between the search and the fetch.
    let bus = SecretService::bus_only();
    let fake = Fake::start(
        &bus,
        Box::new(|member, call, _| match member {
            "SearchItems" => Some(found(call, &[ITEM], &[])),
            "GetSecrets" => Some(secrets(call, &[], VALUE)),
            _ => common(member, call),
        }),
    );
    refused(&stale_project(&bus), "the keyring is locked").stderr_lacks("missing");
    assert!(fake.calls().contains(&"GetSecrets".to_owned()));
}

#[test]
fn an_unlock_that_leaves_the_item_locked_is_a_locked_error() {
    // The prompt completes, not dismissed, yet unlocks nothing (a person
    // unlocked another database): the item is still locked, whatever
    // GetSecrets would say.
    let bus = SecretService::bus_only();
    let fake = Fake::start(
        &bus,
        Box::new(|member, call, _| match member {
            "SearchItems" => Some(found(call, &[], &[ITEM])),
            "Unlock" => Some(unlock_with_prompt(call)),
            "Prompt" => Some(prompt_completes(call, &[])),
            "GetSecrets" => Some(secrets(call, &[ITEM], VALUE)),
            _ => common(member, call),
        }),
    );
    refused(&stale_project(&bus), "the keyring is locked");
    let calls = fake.calls();
    assert!(!calls.contains(&"GetSecrets".to_owned()), "{calls:?}");
}

/// Collections besides the default one, as KeePassXC shows each open
/// database: one locked, one that cannot say whether it is.
const LOCKED: &str = "/org/freedesktop/secrets/collection/second";
const UNKNOWN: &str = "/org/freedesktop/secrets/collection/third";

/// A fake with three collections: the default one, unlocked and empty;
/// `LOCKED`, which hides its items until unlocked, with A in it; `UNKNOWN`,
/// whose `Locked` fails. Its unlock prompt unlocks what `unlocks` returns,
/// or is dismissed for `None`.
fn three_collections(
    bus: &SecretService,
    unlocks: fn(&[String]) -> Option<Vec<&'static str>>,
) -> Fake {
    let mut unlocked: Vec<&'static str> = Vec::new();
    let mut asked: Vec<String> = Vec::new();
    Fake::start(
        bus,
        Box::new(move |member, call, _| {
            Some(match member {
                "Get" => match property(call) {
                    (_, name) if name == "Collections" => {
                        vec![call.method_return().append1(Variant(vec![
                            dbus::Path::from(COLLECTION),
                            dbus::Path::from(LOCKED),
                            dbus::Path::from(UNKNOWN),
                        ]))]
                        .into()
                    }
                    (path, _) if path == UNKNOWN => {
                        vec![call.error(&"org.freedesktop.DBus.Error.Failed".into(), c"cannot say")]
                            .into()
                    }
                    (path, _) => vec![
                        call.method_return()
                            .append1(Variant(path == LOCKED && !unlocked.contains(&LOCKED))),
                    ]
                    .into(),
                },
                "SearchItems" if unlocked.contains(&LOCKED) => {
                    found(call, &[&format!("{LOCKED}/1")], &[])
                }
                "SearchItems" => found(call, &[], &[]),
                "Unlock" => {
                    let objects: Vec<dbus::Path> = call.read1().expect("Unlock(objects)");
                    asked = objects.iter().map(|path| path.to_string()).collect();
                    unlock_with_prompt(call)
                }
                "Prompt" => match unlocks(&asked) {
                    Some(paths) => {
                        unlocked = paths;
                        prompt_completes(call, &unlocked)
                    }
                    None => vec![
                        call.method_return(),
                        Message::new_signal(PROMPT, PROMPT_IFACE, "Completed")
                            .unwrap()
                            .append2(true, Variant(Vec::<dbus::Path>::new())),
                    ]
                    .into(),
                },
                "GetSecrets" => secrets(call, &[&format!("{LOCKED}/1")], VALUE),
                _ => return common(member, call),
            })
        }),
    )
}

#[test]
fn a_second_locked_collection_that_finds_nothing_is_locked_not_missing() {
    // KeePassXC with a second database, locked, while the default one is
    // unlocked: its items are hidden, so "not found" proves nothing. The
    // collection whose Locked fails counts as locked too. The prompt for
    // both is dismissed.
    let bus = SecretService::bus_only();
    let fake = three_collections(&bus, |asked| {
        assert_eq!(asked, [LOCKED, UNKNOWN], "Unlock asks for exactly those");
        None
    });
    refused(&stale_project(&bus), "the keyring is locked").stderr_has("prompt was dismissed");
    assert_eq!(
        fake.calls(),
        [
            "OpenSession",
            "SearchItems",
            "Get",
            "Get",
            "Get",
            "Get",
            "Unlock",
            "Prompt"
        ]
    );
}

#[test]
fn a_collection_the_prompt_left_locked_is_a_locked_error() {
    // The person unlocked one of the two: the other may hide A.
    let bus = SecretService::bus_only();
    let _fake = three_collections(&bus, |_| Some(vec![LOCKED]));
    refused(&stale_project(&bus), "the keyring is locked").stderr_lacks("dismissed");
}

#[test]
fn once_every_collection_is_unlocked_the_entry_is_found_there() {
    let bus = SecretService::bus_only();
    let fake = three_collections(&bus, |_| Some(vec![LOCKED, UNKNOWN]));
    stale_project(&bus)
        .run(["--", "sh", "-c", "printf %s \"$A\""])
        .success()
        .stdout_is(VALUE);
    assert_eq!(
        fake.calls(),
        [
            "OpenSession",
            "SearchItems",
            "Get",
            "Get",
            "Get",
            "Get",
            "Unlock",
            "Prompt",
            "SearchItems",
            "Get",
            "Get",
            "GetSecrets"
        ]
    );
}

#[test]
fn with_every_collection_unlocked_nothing_found_is_missing_and_the_environment_stands_in() {
    let bus = SecretService::bus_only();
    let fake = Fake::start(
        &bus,
        Box::new(|member, call, _| match member {
            "SearchItems" => Some(found(call, &[], &[])),
            _ => common(member, call),
        }),
    );
    stale_project(&bus)
        .run(["--", "sh", "-c", "printf %s \"$A\""])
        .success()
        .stdout_is(STALE);
    assert_eq!(
        fake.calls(),
        ["OpenSession", "SearchItems", "Get", "Get"],
        "one more round trip, for the collections' Locked, and no unlock"
    );
}

/// A fake whose default collection is locked and hides A, and which goes
/// away: as it answers `Unlock` if `leave_at_unlock`, else when asked to
/// run its unlock prompt.
fn goes_away_at_the_prompt(bus: &SecretService, leave_at_unlock: bool) -> Fake {
    Fake::start(
        bus,
        Box::new(move |member, call, _| match member {
            "SearchItems" => Some(found(call, &[], &[])),
            "Get" if property(call).1 == "Locked" => {
                Some(vec![call.method_return().append1(Variant(true))].into())
            }
            // Quits once it has answered Unlock: the Prompt call that
            // follows finds no owner.
            "Unlock" if leave_at_unlock => match unlock_with_prompt(call) {
                Act::Send(replies) => Some(Act::Leave(replies)),
                other => Some(other),
            },
            "Unlock" => Some(unlock_with_prompt(call)),
            // Crashes while asked: the bus answers NoReply.
            "Prompt" => Some(Act::Hangup),
            _ => common(member, call),
        }),
    )
}

#[test]
fn a_service_that_quits_before_its_prompt_is_a_failure_not_absent() {
    let bus = SecretService::bus_only();
    let fake = goes_away_at_the_prompt(&bus, true);
    refused(
        &stale_project(&bus),
        "the Secret Service went away during the run",
    )
    .stderr_lacks("dismissed")
    .stderr_lacks("no Secret Service on the session bus");
    assert_eq!(fake.calls().last().map(String::as_str), Some("Unlock"));
}

#[test]
fn a_service_that_quits_between_search_and_fetch_is_a_failure_not_absent() {
    // It answered the searches, so it was here: its name having no owner
    // at GetSecrets is not "no Secret Service", whatever the bus says.
    let bus = SecretService::bus_only();
    let fake = Fake::start(
        &bus,
        Box::new(|member, call, _| match member {
            "SearchItems" => Some(found(call, &[ITEM], &[])),
            "Get" => match common(member, call) {
                Some(Act::Send(replies)) => Some(Act::Leave(replies)),
                other => other,
            },
            _ => common(member, call),
        }),
    );
    refused(
        &stale_project(&bus),
        "the Secret Service went away during the run",
    )
    .stderr_lacks("no Secret Service on the session bus");
    assert_eq!(fake.calls().last().map(String::as_str), Some("Get"));
}

#[test]
fn a_service_that_crashes_while_running_its_prompt_is_a_failure_not_dismissed() {
    let bus = SecretService::bus_only();
    let fake = goes_away_at_the_prompt(&bus, false);
    refused(
        &stale_project(&bus),
        "the Secret Service went away during the run",
    )
    .stderr_has("NoReply")
    .stderr_lacks("dismissed");
    assert_eq!(fake.calls().last().map(String::as_str), Some("Prompt"));
}

#[test]
fn doctor_shows_a_daemon_that_cannot_open_an_encrypted_session() {
    let bus = SecretService::bus_only();
    let fake = Fake::start(
        &bus,
        Box::new(|member, call, _| match member {
            "OpenSession" if call.read1::<&str>().ok() != Some("plain") => Some(
                vec![call.error(
                    &"org.freedesktop.DBus.Error.NotSupported".into(),
                    c"no such algorithm",
                )]
                .into(),
            ),
            _ => common(member, call),
        }),
    );
    let run = project(&bus).run(["doctor"]);
    let out = run.success().stdout();
    assert!(
        out.contains(
            "encryption:     dh-ietf1024-sha256-aes128-cbc-pkcs7 FAILS (runs use it): \
             unexpected answer: org.freedesktop.DBus.Error.NotSupported: no such algorithm"
        ),
        "{out}"
    );
    assert!(
        out.contains("plain session:  plain opens (only with WITH_SECRETS_PLAIN_SESSION=1)"),
        "{out}"
    );
    // The test process is the daemon here: an unknown one, named by its program.
    assert!(out.contains("; your keyring daemon (e2e-"), "{out}");
    // Both sessions, then the entries' lookup, which opens its own.
    let calls = fake.calls();
    assert_eq!(
        calls[..4].iter().filter(|m| *m == "OpenSession").count(),
        2,
        "{calls:?}"
    );
}

#[test]
fn doctor_names_keepassxc_and_oo7_and_opens_both_sessions() {
    for (service, program, daemon) in [
        (SecretService::start_keepassxc(), "keepassxc", "KeePassXC"),
        (SecretService::start_oo7(), "oo7-daemon", "oo7-daemon"),
    ] {
        let out = project(&service).run(["doctor"]).success().stdout();
        assert!(
            out.contains(&format!("Secret Service: {program} (pid ")),
            "{out}"
        );
        assert!(out.contains(&format!("; {daemon})")), "{out}");
        assert!(
            out.contains("encryption:     dh-ietf1024-sha256-aes128-cbc-pkcs7 opens (runs use it)"),
            "{out}"
        );
        assert!(out.contains("plain session:  plain opens"), "{out}");
        assert!(
            out.contains("keyring:        default collection unlocked"),
            "{out}"
        );
    }
}

#[test]
fn set_into_a_locked_collection_asks_to_unlock_it_and_says_why_it_could_not() {
    // A new entry: the search finds nothing in a collection that is locked,
    // so nothing proves the entry is new; it must be unlocked first.
    let oo7 = SecretService::start_oo7();
    oo7.lock();
    project(&oo7)
        .run_input(VALUE, ["set", "A"])
        .expect_code(125)
        .stderr_has("the keyring is locked, and oo7-daemon's unlock prompt was dismissed");
    let keepassxc = SecretService::start_keepassxc();
    keepassxc.lock();
    project(&keepassxc)
        .run_input(VALUE, ["--timeout", "1", "set", "A"])
        .expect_code(125)
        .stderr_has(KEEPASSXC_LOCKED)
        .stderr_lacks("confirmations");
    assert_eq!(keepassxc.default_locked(), Some(true));
}

#[test]
fn on_a_terminal_an_open_unlock_dialog_gets_two_minutes_and_the_person_is_told() {
    use std::io::Read;
    let service = SecretService::start_keepassxc();
    lock_hiding(&service);
    // KeePassXC shows its unlock dialog on the Xvfb. On a terminal a person
    // may be answering it, so --timeout 1 does not cut the wait short.
    let test = project(&service);
    let mut child = test
        .script(&format!("{} --timeout 1 -- true", crate::support::BIN))
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdout = child.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 256];
        while let Ok(n @ 1..) = stdout.read(&mut buffer) {
            if send.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let expected = "with-secrets: waiting up to 120 s for KeePassXC's prompt; answer it there, \
                    or press Ctrl+C";
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(expected) {
        let left = deadline.saturating_duration_since(Instant::now());
        match receive.recv_timeout(left) {
            Ok(bytes) => seen.extend_from_slice(&bytes),
            Err(_) => {
                let _ = child.kill();
                panic!("no notice of the wait:\n{}", String::from_utf8_lossy(&seen));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
