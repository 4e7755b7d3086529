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
    // oo7-daemon has no prompter on this bus: its prompt fails at once.
    project(&service)
        .run(["--", "sh", "-c", "printf %s \"$A\""])
        .expect_code(125)
        .never_shows(VALUE)
        .stderr_has("secret-service: the keyring is locked, and oo7-daemon's unlock prompt")
        .stderr_lacks("missing")
        .stderr_lacks("not stored");
}

#[test]
fn keepassxc_unlock_prompt_nobody_answers_fails_at_the_timeout_saying_a_dialog_may_be_waiting() {
    let service = SecretService::start_keepassxc();
    lock_hiding(&service);
    // KeePassXC shows its unlock dialog on the Xvfb, where nobody answers.
    let run = project(&service).run(["--timeout", "1", "--", "sh", "-c", "printf %s \"$A\""]);
    run.expect_code(125)
        .never_shows(VALUE)
        .stderr_has(
            "secret-service: KeePassXC did not finish its prompt within 1 s: a dialog may be \
             waiting for an answer",
        )
        .stderr_has("answer it in KeePassXC")
        .stderr_lacks("missing");
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
        .stderr_has("KeePassXC did not finish its prompt within 2 s: a dialog may be waiting")
        .stderr_lacks("dismissed");
}

/// A tiny Secret Service, run by a thread of this test, for what no real
/// daemon here does on demand. It answers each call with what `answer`
/// returns (an UnknownMethod error for `None`), and records each call's
/// member.
struct Fake {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

type Answer = dyn FnMut(&str, &Message, usize) -> Option<Vec<Message>> + Send;

impl Fake {
    fn start(service: &SecretService, mut answer: Box<Answer>) -> Self {
        let address = service.address().to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let (ready, owned) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut channel = Channel::open_private(&address).expect("connect");
            channel.register().expect("register");
            let request = Message::new_method_call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "RequestName",
            )
            .unwrap()
            .append2("org.freedesktop.secrets", 4u32);
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
                    let replies = answer(&member, &call, seen).unwrap_or_else(|| {
                        vec![call.error(
                            &"org.freedesktop.DBus.Error.UnknownMethod".into(),
                            c"not in this fake",
                        )]
                    });
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

/// What every fake answers alike: a plain session, and the default alias.
fn common(member: &str, call: &Message) -> Option<Vec<Message>> {
    match member {
        "OpenSession" if call.read1::<&str>().ok() == Some("plain") => {
            Some(vec![call.method_return().append2(
                Variant(""),
                dbus::Path::from("/org/freedesktop/secrets/session/1"),
            )])
        }
        "ReadAlias" => Some(vec![
            call.method_return().append1(dbus::Path::from(COLLECTION)),
        ]),
        _ => None,
    }
}

#[test]
fn create_item_answering_is_locked_unlocks_the_collection_and_retries() {
    let bus = SecretService::bus_only();
    let prompt = "/org/freedesktop/secrets/prompt/1";
    let fake = Fake::start(
        &bus,
        Box::new(move |member, call, seen| {
            let no_items: (Vec<dbus::Path>, Vec<dbus::Path>) = (Vec::new(), Vec::new());
            Some(match member {
                "SearchItems" => vec![call.method_return().append2(no_items.0, no_items.1)],
                // Its Locked property says unlocked; CreateItem knows better.
                "Get" => vec![call.method_return().append1(Variant(false))],
                "CreateItem" if seen == 0 => vec![call.error(
                    &"org.freedesktop.Secret.Error.IsLocked".into(),
                    c"the collection is locked",
                )],
                "CreateItem" => vec![call.method_return().append2(
                    dbus::Path::from(format!("{COLLECTION}/1")),
                    dbus::Path::from("/"),
                )],
                // Unlocking needs a prompt, which completes with no person,
                // as KeePassXC's and oo7's can.
                "Unlock" => vec![
                    call.method_return()
                        .append2(Vec::<dbus::Path>::new(), dbus::Path::from(prompt)),
                ],
                "Prompt" => vec![
                    call.method_return(),
                    Message::new_signal(prompt, PROMPT_IFACE, "Completed")
                        .unwrap()
                        .append2(false, Variant(vec![dbus::Path::from(COLLECTION)])),
                ],
                _ => return common(member, call),
            })
        }),
    );
    project(&bus)
        .env("WITH_SECRETS_PLAIN_SESSION", "1")
        .run_input(VALUE, ["set", "A"])
        .success();
    assert_eq!(
        fake.calls(),
        [
            "OpenSession",
            "SearchItems",
            "Get",
            "CreateItem",
            "ReadAlias",
            "Unlock",
            "Prompt",
            "SearchItems",
            "Get",
            "CreateItem"
        ]
    );
}

#[test]
fn doctor_shows_a_daemon_that_cannot_open_an_encrypted_session() {
    let bus = SecretService::bus_only();
    let fake = Fake::start(
        &bus,
        Box::new(|member, call, _| match member {
            "OpenSession" if call.read1::<&str>().ok() != Some("plain") => Some(vec![call.error(
                &"org.freedesktop.DBus.Error.NotSupported".into(),
                c"no such algorithm",
            )]),
            "Get" => Some(vec![call.method_return().append1(Variant(false))]),
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
        .stderr_has("KeePassXC did not finish its prompt within 1 s: a dialog may be waiting");
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
