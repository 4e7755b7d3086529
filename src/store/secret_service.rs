//! The freedesktop Secret Service (gnome-keyring, KeePassXC, oo7, KWallet), spoken
//! directly over one pipelined D-Bus connection.
//!
//! Why not a generic client: a run must cost about one exec plus one keyring
//! session, whatever the number of secrets. Clients that look entries up one at
//! a time pay two round trips per secret, one after the other. Here every call
//! of a batch is written before any reply is read: `Hello`, `OpenSession` and
//! one `SearchItems` per entry leave in a single write, and then one
//! `GetSecrets` fetches every item found. Every wait has a deadline, so a hung
//! daemon is an error, never a hang.
//!
//! Items are written with exactly the attributes Python's `keyring` uses,
//! `service`, `username` and `application = "Python keyring library"`:
//! `keyring set` replaces an existing item only when all three match, so any
//! other choice would leave a duplicate beside ours after the user's next
//! `keyring set`. Lookups match on `service` and `username` only, as Python's
//! do, so items written by any tool are found.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dbus::Message;
use dbus::arg::{PropMap, RefArg, Variant};
use dbus::channel::Channel;

use super::dh::{ALGORITHM, KeyPair, SessionKey};
use super::{Daemon, Found, Key, Person, Store, StoreError};
use crate::secret::Secret;

const BUS: &str = "org.freedesktop.DBus";
const SERVICE: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_IFACE: &str = "org.freedesktop.Secret.Service";
const ITEM_IFACE: &str = "org.freedesktop.Secret.Item";
const COLLECTION_IFACE: &str = "org.freedesktop.Secret.Collection";
const DEFAULT_COLLECTION: &str = "/org/freedesktop/secrets/aliases/default";
const NO_PROMPT: &str = "/";
const PROMPT_IFACE: &str = "org.freedesktop.Secret.Prompt";
const PROPERTIES_IFACE: &str = "org.freedesktop.DBus.Properties";
/// How long a person at a terminal gets to answer a prompt: longer than a
/// call may take, since a person, not a daemon, may be the one answering.
const PROMPT_WAIT: Duration = Duration::from_secs(120);
/// How long a prompt may take before the person at the terminal is told
/// that with-secrets waits for it.
const NOTICE_AFTER: Duration = Duration::from_millis(500);
/// How long finding the daemon's name for a message may take: it runs after
/// something already failed, perhaps after the whole timeout, so it gets a
/// budget of its own, and a short one.
const NAME_WAIT: Duration = Duration::from_millis(500);

/// The `application` attribute that Python's `keyring` writes and matches on.
pub(crate) const APPLICATION: &str = "Python keyring library";
/// The content type Python's `keyring` (via secretstorage) writes.
const CONTENT_TYPE: &str = "text/plain";

type ObjectPath = dbus::Path<'static>;
/// The Secret Service `Secret` struct: (session, parameters, value, content type).
type WireSecret = (ObjectPath, Vec<u8>, Vec<u8>, String);

/// A connection to the Secret Service with an encrypted session.
pub(crate) struct SecretService {
    channel: Channel,
    timeout: Duration,
    session: Session,
    /// Replies read but not yet taken, by serial.
    early: HashMap<u32, Message>,
    /// Prompt `Completed` signals that arrived while we waited for replies.
    completed: Vec<Message>,
    /// The unique bus name (":1.42") of the service, from its replies: the
    /// only sender whose `Completed` signals count.
    owner: Option<String>,
    /// How many times we waited for the service: the cost a run pays in
    /// latency, which must not grow with the number of secrets.
    round_trips: u32,
    /// Who may answer a prompt, and is told what we wait for.
    person: &'static dyn Person,
}

enum Session {
    /// `OpenSession` was sent; its reply has not been read yet. `None` for
    /// the plain algorithm, which exchanges no keys.
    Pending {
        serial: u32,
        keys: Option<KeyPair>,
    },
    Open {
        path: ObjectPath,
        cipher: Cipher,
    },
}

/// How values travel over the bus in an open session.
enum Cipher {
    /// AES-128-CBC with the key from the Diffie-Hellman exchange: the default.
    Dh(SessionKey),
    /// In the clear: only when `WITH_SECRETS_PLAIN_SESSION=1` asks for it.
    Plain,
}

impl Cipher {
    /// Returns (parameters, value) for the Secret Service `Secret` struct.
    fn encrypt(&self, value: &Secret) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        match self {
            Self::Dh(key) => key.encrypt(value).map_err(StoreError::Protocol),
            Self::Plain => Ok((Vec::new(), value.expose().to_vec())),
        }
    }

    fn decrypt(&self, parameters: &[u8], value: Vec<u8>) -> Result<Secret, StoreError> {
        match self {
            Self::Dh(key) => key
                .decrypt(parameters, &value)
                .map_err(StoreError::Protocol),
            Self::Plain => Ok(Secret::new(value)),
        }
    }
}

/// Whether the user chose the plain algorithm.
///
/// Measured against gnome-keyring, the DH exchange is about half of a run
/// (11.2 ms against 6.3 ms with 10 secrets, here): the daemon's side of it
/// runs before it answers anything else. The plain algorithm skips it, and
/// values then cross the session bus unencrypted. Who could read them there:
/// a process allowed to monitor the bus (on a standard session bus, processes
/// of the same user, and root), while the value passes. Those same processes
/// can read the command's environment in /proc/PID/environ anyway, so plain
/// adds exposure only where the bus is shared with other users or recorded
/// (dbus-monitor, Bustle); and our copy of the value then also passes
/// through libdbus's message buffers, which are freed without being wiped.
/// So it is an opt-in, never the default.
fn plain_session() -> bool {
    std::env::var_os(PLAIN_SESSION_VARIABLE).is_some_and(|value| value == "1")
}

/// `WITH_SECRETS_PLAIN_SESSION=1` opens a plain (unencrypted) session.
pub(crate) const PLAIN_SESSION_VARIABLE: &str = "WITH_SECRETS_PLAIN_SESSION";

impl SecretService {
    /// Connects to the session bus and sends `Hello` and `OpenSession` without
    /// waiting for either: their replies are read with the first batch.
    pub(crate) fn connect(
        timeout: Duration,
        person: &'static dyn Person,
    ) -> Result<Self, StoreError> {
        let address = session_bus_address()?;
        let channel = Channel::open_private(&address).map_err(|err| StoreError::Connect {
            address: address.clone(),
            reason: err.message().unwrap_or("unknown error").to_owned(),
        })?;
        let keys = if plain_session() {
            None
        } else {
            Some(KeyPair::generate().map_err(StoreError::Protocol)?)
        };
        // libdbus would send Hello itself in dbus_bus_register, but then wait
        // for the reply with its own 25 s timeout. We send it and move on.
        let hello = method(BUS, "/org/freedesktop/DBus", BUS, "Hello");
        let open = method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "OpenSession");
        let open = match &keys {
            Some(keys) => open.append2(ALGORITHM, Variant(keys.public.clone())),
            None => open.append2("plain", Variant("")),
        };
        send(&channel, hello)?;
        let serial = send(&channel, open)?;
        Ok(Self {
            channel,
            timeout,
            session: Session::Pending { serial, keys },
            early: HashMap::new(),
            completed: Vec::new(),
            owner: None,
            round_trips: 0,
            person,
        })
    }

    /// Waits for the replies to `serials`, in that order, all within one deadline.
    fn wait(&mut self, serials: &[u32]) -> Result<Vec<Message>, StoreError> {
        self.wait_for(serials, self.timeout)
    }

    /// `wait`, within `budget`.
    fn wait_for(&mut self, serials: &[u32], budget: Duration) -> Result<Vec<Message>, StoreError> {
        let deadline = Instant::now() + budget;
        let missing = |this: &Self| {
            serials
                .iter()
                .any(|serial| !this.early.contains_key(serial))
        };
        if missing(self) {
            self.round_trips += 1;
        }
        loop {
            self.pump(None)?;
            if !missing(self) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::TimedOut {
                    after: budget,
                    daemon: Daemon::Unknown,
                });
            }
            self.pump(Some(left))?;
        }
        Ok(serials
            .iter()
            .map(|serial| self.early.remove(serial).expect("every reply is in"))
            .collect())
    }

    /// The one message loop: reads for at most `wait` (with `None`, only
    /// sorts what was already read), then keeps each reply by its serial
    /// and each prompt's `Completed` signal for whoever waits for it.
    fn pump(&mut self, wait: Option<Duration>) -> Result<(), StoreError> {
        if let Some(wait) = wait {
            self.channel
                .read_write(Some(wait))
                .map_err(|()| StoreError::Protocol("the D-Bus connection was closed".into()))?;
        }
        while let Some(message) = self.channel.pop_message() {
            match message.get_reply_serial() {
                Some(serial) => {
                    self.note_sender(&message);
                    self.early.insert(serial, message);
                }
                None => self.keep_if_completed(message),
            }
        }
        Ok(())
    }

    /// Remembers who answers for the service. Every call goes either to the
    /// bus, whose replies come from `org.freedesktop.DBus`, or to the
    /// service, whose replies come from its unique name: so a reply from a
    /// unique name is the service's.
    fn note_sender(&mut self, reply: &Message) {
        if let Some(sender) = reply.sender()
            && sender.starts_with(':')
        {
            self.owner = Some(sender.to_string());
        }
    }

    /// Keeps a prompt's `Completed` signal; drops other signals (NameAcquired).
    fn keep_if_completed(&mut self, message: Message) {
        if message.interface().as_deref() == Some(PROMPT_IFACE)
            && message.member().as_deref() == Some("Completed")
        {
            self.completed.push(message);
        }
    }

    /// Sends every message, then waits for every reply.
    fn call_all(&mut self, messages: Vec<Message>) -> Result<Vec<Message>, StoreError> {
        let serials = messages
            .into_iter()
            .map(|message| send(&self.channel, message))
            .collect::<Result<Vec<_>, _>>()?;
        self.wait(&serials)
    }

    fn call(&mut self, message: Message) -> Result<Message, StoreError> {
        Ok(self.call_all(vec![message])?.remove(0))
    }

    /// The open session, waiting for the `OpenSession` reply if need be.
    fn session(&mut self) -> Result<(&ObjectPath, &Cipher), StoreError> {
        if let Session::Pending { serial, .. } = self.session {
            let mut reply = self.wait(&[serial])?.remove(0);
            let Session::Pending { keys, .. } = &self.session else {
                unreachable!("the session is still pending")
            };
            let (path, cipher) = match keys {
                Some(keys) => {
                    let (output, path): (Variant<Vec<u8>>, ObjectPath) = read(&mut reply)?;
                    let key = keys.derive(&output.0).map_err(StoreError::Protocol)?;
                    (path, Cipher::Dh(key))
                }
                None => {
                    let (_, path): (Variant<String>, ObjectPath) = read(&mut reply)?;
                    (path, Cipher::Plain)
                }
            };
            self.session = Session::Open { path, cipher };
        }
        match &self.session {
            Session::Open { path, cipher } => Ok((path, cipher)),
            Session::Pending { .. } => unreachable!("the session was opened above"),
        }
    }

    /// Every item path for each key: one `SearchItems` per key, pipelined.
    ///
    /// Locked items are unlocked. Some daemons (KeePassXC with "unlock before
    /// search" off, oo7-daemon) return nothing at all for a locked
    /// collection, rather than its items as locked ones, so nothing found
    /// means nothing only when every collection is unlocked, not just the
    /// default one: KeePassXC shows each open database as a collection of
    /// its own. The service's `Collections` property travels in the same
    /// write as the searches, so a run that finds everything pays nothing
    /// for it. Only when some key found nothing is each collection asked
    /// whether it is locked (one more round trip, all pipelined); a
    /// collection that cannot say counts as locked. Locked ones are
    /// unlocked (which may prompt) and the empty keys searched again; a
    /// collection that stays locked is a `Locked` error, never "missing".
    fn search(&mut self, keys: &[Key<'_>]) -> Result<Vec<Vec<ObjectPath>>, StoreError> {
        let collections = method(SERVICE, SERVICE_PATH, PROPERTIES_IFACE, "Get")
            .append2(SERVICE_IFACE, "Collections");
        let (mut results, locked_items, mut replies) = self.search_once(keys, vec![collections])?;
        let empty: Vec<usize> = (0..keys.len())
            .filter(|&index| results[index].is_empty())
            .collect();
        let locked_collections = if empty.is_empty() {
            Vec::new()
        } else {
            let (collections,): (Variant<Vec<ObjectPath>>,) = read(&mut replies[0])?;
            self.locked_among(collections.0)?
        };
        if locked_items.is_empty() && locked_collections.is_empty() {
            return Ok(results);
        }
        let mut objects = locked_items;
        objects.extend(locked_collections.iter().cloned());
        self.unlock(objects)?;
        if !locked_collections.is_empty() {
            // Searched again with each unlocked collection's `Locked` in the
            // same write: one locked again in between still hides its items.
            let again: Vec<Key<'_>> = empty.iter().map(|&index| keys[index]).collect();
            let asks = locked_collections.iter().map(locked_property).collect();
            let (found, _, mut replies) = self.search_once(&again, asks)?;
            for (&index, paths) in empty.iter().zip(found) {
                results[index] = paths;
            }
            let still_locked = replies.iter_mut().any(|reply| !is_unlocked(reply));
            if still_locked && empty.iter().any(|&index| results[index].is_empty()) {
                return Err(StoreError::Locked {
                    daemon: Daemon::Unknown,
                });
            }
        }
        Ok(results)
    }

    /// One pipelined batch of searches, plus the calls in `also`. Returns
    /// every key's paths (locked ones included), the locked paths, and the
    /// replies to `also`, unchecked.
    #[allow(clippy::type_complexity, reason = "three lists, each named above")]
    fn search_once(
        &mut self,
        keys: &[Key<'_>],
        also: Vec<Message>,
    ) -> Result<(Vec<Vec<ObjectPath>>, Vec<ObjectPath>, Vec<Message>), StoreError> {
        let mut messages: Vec<Message> = keys
            .iter()
            .map(|key| {
                let attributes =
                    HashMap::from([("service", key.service), ("username", key.username)]);
                method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "SearchItems").append1(attributes)
            })
            .collect();
        messages.extend(also);
        let mut replies = self.call_all(messages)?;
        let others = replies.split_off(keys.len());
        let mut results = Vec::with_capacity(keys.len());
        let mut locked = Vec::new();
        for mut reply in replies {
            let (mut unlocked, still_locked): (Vec<ObjectPath>, Vec<ObjectPath>) =
                read(&mut reply)?;
            unlocked.extend(still_locked.iter().cloned());
            locked.extend(still_locked);
            results.push(unlocked);
        }
        Ok((results, locked, others))
    }

    /// Which of `collections` are locked, or cannot say: their `Locked`
    /// properties, pipelined. A failed `Get` is not "unlocked", as that
    /// would let the environment stand in for what may be hidden there.
    fn locked_among(
        &mut self,
        collections: Vec<ObjectPath>,
    ) -> Result<Vec<ObjectPath>, StoreError> {
        let asks = collections.iter().map(locked_property).collect();
        let replies = self.call_all(asks)?;
        Ok(collections
            .into_iter()
            .zip(replies)
            .filter_map(|(collection, mut reply)| (!is_unlocked(&mut reply)).then_some(collection))
            .collect())
    }

    /// The path of the default collection, which `Unlock` needs: not every
    /// service resolves the alias path there.
    fn default_collection(&mut self) -> Result<ObjectPath, StoreError> {
        let mut reply = self
            .call(method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "ReadAlias").append1("default"))?;
        let (path,): (ObjectPath,) = read(&mut reply)?;
        if &*path == NO_PROMPT {
            return Err(StoreError::NoDefaultCollection {
                daemon: Daemon::Unknown,
            });
        }
        Ok(path)
    }

    /// Unlocks `objects`, through the service's prompt if it returns one.
    ///
    /// What counts is what the service says it unlocked: the list in its
    /// reply, plus the list in its prompt's `Completed` signal. A prompt
    /// that completes without being dismissed may still leave something
    /// locked (a person unlocked one database of two), and gnome-keyring
    /// then silently leaves locked items out of `GetSecrets`: so anything
    /// asked for and not in those lists is a `Locked` error. An item counts
    /// as unlocked when its collection is in them, as older KeePassXC
    /// answers with the collection for an item.
    fn unlock(&mut self, objects: Vec<ObjectPath>) -> Result<(), StoreError> {
        let ask = method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "Unlock").append1(objects.clone());
        let mut reply = self.call(ask)?;
        let (mut unlocked, prompt): (Vec<ObjectPath>, ObjectPath) = read(&mut reply)?;
        // An unlock prompt is a dialog that asks for a password, not a
        // confirmation that a setting could turn off: say so if it times out.
        let completed = self
            .complete(
                &prompt,
                StoreError::UnlockDismissed {
                    daemon: Daemon::Unknown,
                },
            )
            .map_err(|err| match err {
                StoreError::PromptTimedOut { daemon, after } => {
                    StoreError::UnlockTimedOut { daemon, after }
                }
                other => other,
            })?;
        unlocked.extend(completed);
        let covered = |object: &ObjectPath| {
            unlocked.iter().any(|done| {
                **done == **object
                    || object
                        .strip_prefix(&**done)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        };
        if objects.iter().all(covered) {
            Ok(())
        } else {
            Err(StoreError::Locked {
                daemon: Daemon::Unknown,
            })
        }
    }

    /// Runs `prompt`, which a call returned, and waits for its `Completed`
    /// signal; a dismissed prompt is the error `dismissed`. Returns the
    /// object paths in the signal's result (what an `Unlock` unlocked).
    ///
    /// A prompt does not always mean a person must answer: KeePassXC returns
    /// one for every CreateItem and Delete, and completes it in milliseconds
    /// with no dialog. So every prompt is run, with or without a terminal.
    /// Without one, it gets the call timeout, like any call: a prompt that
    /// needs a person then fails in bounded time, saying a dialog may be
    /// waiting, and never hangs CI. With a terminal, a person is there to
    /// answer a dialog and may be typing a password, so it gets
    /// `PROMPT_WAIT`.
    ///
    /// Only the service's own `Completed` counts: the match rule names its
    /// unique name as sender, and so does the check of each signal, as a
    /// signal sent to us directly bypasses match rules. Otherwise any
    /// process on the bus could answer "done" (or "dismissed") for it.
    fn complete(
        &mut self,
        prompt: &ObjectPath,
        dismissed: StoreError,
    ) -> Result<Vec<ObjectPath>, StoreError> {
        if &**prompt == NO_PROMPT {
            return Ok(Vec::new());
        }
        let owner = self
            .owner
            .clone()
            .ok_or_else(|| StoreError::Protocol("a prompt came from an unknown sender".into()))?;
        // Subscribe before asking, or a quick answer could be missed.
        let rule = format!(
            "type='signal',sender='{owner}',interface='{PROMPT_IFACE}',member='Completed',path='{}'",
            &**prompt
        );
        let subscribe = method(BUS, "/org/freedesktop/DBus", BUS, "AddMatch").append1(rule);
        let ask = method(SERVICE, prompt, PROMPT_IFACE, "Prompt").append1("");
        let serials = [send(&self.channel, subscribe)?, send(&self.channel, ask)?];
        let person = self.person.is_present();
        let wait = if person {
            PROMPT_WAIT.max(self.timeout)
        } else {
            self.timeout
        };
        let deadline = Instant::now() + wait;
        // A prompt that needs nobody completes at once; one that is still
        // open after a moment is a dialog, and the person at the terminal
        // is told what the wait is for, as sudo or ssh would.
        let mut notice_at = person.then(|| Instant::now() + NOTICE_AFTER);
        loop {
            // An error from AddMatch or Prompt ends the wait; their success
            // says nothing about the outcome.
            if let Some(mut reply) = self.early.remove(&serials[0]) {
                check(&mut reply)?;
            }
            if let Some(mut reply) = self.early.remove(&serials[1]) {
                prompt_ran(&mut reply, &owner, dismissed.clone())?;
            }
            if let Some(index) = self.completed.iter().position(|signal| {
                signal.path().is_some_and(|path| *path == **prompt)
                    && signal.sender().is_some_and(|sender| *sender == *owner)
            }) {
                let signal = self.completed.remove(index);
                let (was_dismissed, result) = signal.get2::<bool, Variant<Box<dyn RefArg>>>();
                let was_dismissed = was_dismissed.ok_or_else(|| {
                    StoreError::Protocol("a Completed signal without its dismissed flag".into())
                })?;
                return if was_dismissed {
                    Err(dismissed)
                } else {
                    Ok(result.map_or_else(Vec::new, |result| object_paths(&*result.0)))
                };
            }
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                return Err(StoreError::PromptTimedOut {
                    daemon: Daemon::Unknown,
                    after: wait,
                });
            }
            if notice_at.is_some_and(|at| now >= at) {
                notice_at = None;
                let daemon = self.daemon();
                self.person.tell(&format!(
                    "with-secrets: waiting up to {} s for {}'s prompt; answer it there, \
                     or press Ctrl+C",
                    wait.as_secs(),
                    daemon.name()
                ));
                continue;
            }
            let until = notice_at.map_or(left, |at| left.min(at.saturating_duration_since(now)));
            self.pump(Some(until))?;
        }
    }

    /// For each group of paths, the index of the most recently modified one.
    /// Only groups with more than one path cost a (pipelined) call.
    fn newest(&mut self, groups: &[Vec<ObjectPath>]) -> Result<Vec<usize>, StoreError> {
        let mut asks = Vec::new();
        let mut messages = Vec::new();
        for (group, paths) in groups.iter().enumerate() {
            if paths.len() > 1 {
                for (index, path) in paths.iter().enumerate() {
                    asks.push((group, index));
                    messages.push(
                        method(SERVICE, path, "org.freedesktop.DBus.Properties", "Get")
                            .append2(ITEM_IFACE, "Modified"),
                    );
                }
            }
        }
        let mut modified: Vec<Vec<u64>> = groups.iter().map(|paths| vec![0; paths.len()]).collect();
        for ((group, index), mut reply) in asks.into_iter().zip(self.call_all(messages)?) {
            let (seconds,): (Variant<u64>,) = read(&mut reply)?;
            modified[group][index] = seconds.0;
        }
        // Modified has whole seconds, so ties are common. They go to the
        // later path: gnome-keyring and KeePassXC number items upward, and
        // (length, text) orders ".../9" before ".../10".
        Ok(groups
            .iter()
            .zip(modified)
            .map(|(paths, modified)| {
                (0..paths.len())
                    .max_by_key(|&i| (modified[i], paths[i].len(), &*paths[i]))
                    .unwrap_or(0)
            })
            .collect())
    }

    fn wire_secret(&mut self, value: &Secret) -> Result<WireSecret, StoreError> {
        let (path, cipher) = self.session()?;
        let (parameters, value) = cipher.encrypt(value)?;
        Ok((path.clone(), parameters, value, CONTENT_TYPE.to_owned()))
    }
}

/// Debug builds only: `WITH_SECRETS_TRACE_ROUND_TRIPS=1` reports how many
/// times a run waited for the service, for the test that keeps that number
/// from growing with the number of secrets.
#[cfg(debug_assertions)]
impl Drop for SecretService {
    fn drop(&mut self) {
        if std::env::var_os("WITH_SECRETS_TRACE_ROUND_TRIPS").is_some() {
            eprintln!("with-secrets: trace: {} round trips", self.round_trips);
        }
    }
}

impl Store for SecretService {
    fn name(&self) -> &'static str {
        "secret-service"
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        let result = self.fetch(keys);
        self.named(result)
    }

    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        let result = self.store(key, label, value);
        self.named(result)
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        let result = self.remove(key);
        self.named(result)
    }

    fn create_all(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        let result = self.create_many(items);
        self.named(result)
    }
}

impl SecretService {
    fn fetch(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.search(keys)?;
        let newest = self.newest(&groups)?;
        let chosen: Vec<ObjectPath> = groups
            .iter()
            .zip(&newest)
            .filter_map(|(paths, &index)| paths.get(index).cloned())
            .collect();
        let mut secrets = if chosen.is_empty() {
            HashMap::new()
        } else {
            let session = self.session()?.0.clone();
            let mut reply = self.call(
                method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "GetSecrets").append2(chosen, session),
            )?;
            let (secrets,): (HashMap<ObjectPath, WireSecret>,) = read(&mut reply)?;
            secrets
        };
        let (_, cipher) = self.session()?;
        groups
            .iter()
            .zip(newest)
            .map(|(paths, index)| {
                let Some(path) = paths.get(index) else {
                    return Ok(None);
                };
                // Found, yet not fetched: gnome-keyring leaves locked items
                // out of GetSecrets without an error, so the item was locked
                // again since the search, or an unlock did not reach it. Not
                // "missing", or a stale variable would stand in for it.
                let Some((_, parameters, value, _)) = secrets.remove(path) else {
                    return Err(StoreError::Locked {
                        daemon: Daemon::Unknown,
                    });
                };
                let secret = cipher.decrypt(&parameters, value)?;
                Ok(Some(Found {
                    secret,
                    matches: paths.len(),
                }))
            })
            .collect()
    }

    fn store(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        let secret = self.wire_secret(value)?;
        let mut unlocked = false;
        loop {
            let found = self.search(&[key])?.remove(0);
            if !found.is_empty() {
                return self.update(&found, secret);
            }
            match self.create(key, label, secret.clone()) {
                // The collection was locked after all (its `Locked` property
                // said otherwise, or it was locked since): unlock it, which
                // may prompt, and start over, as libsecret does. Searching
                // again, as the item may have been hidden while locked.
                Err(StoreError::Locked { .. }) if !unlocked => {
                    unlocked = true;
                    let collection = self.default_collection()?;
                    self.unlock(vec![collection])?;
                }
                other => return other,
            }
        }
    }

    /// Every item created at once: one `CreateItem` each, all sent before
    /// any reply is read, so one round trip for them all. A locked
    /// collection sends them through `store` one by one, which unlocks it.
    fn create_many(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        let mut messages = Vec::with_capacity(items.len());
        for (key, label, value) in items {
            let secret = self.wire_secret(value)?;
            messages.push(create_item(*key, label, secret));
        }
        let mut locked = false;
        for mut reply in self.call_all(messages)? {
            match read::<(ObjectPath, ObjectPath)>(&mut reply) {
                Ok((_item, prompt)) => {
                    self.complete(&prompt, refused("storing the item"))?;
                }
                Err(StoreError::Locked { .. }) => locked = true,
                Err(err) => return Err(err),
            }
        }
        if locked {
            for (key, label, value) in items {
                self.store(*key, label, value)?;
            }
        }
        Ok(())
    }

    fn create(&mut self, key: Key<'_>, label: &str, secret: WireSecret) -> Result<(), StoreError> {
        let mut reply = self.call(create_item(key, label, secret))?;
        let (_item, prompt): (ObjectPath, ObjectPath) = read(&mut reply)?;
        self.complete(&prompt, refused("storing the item"))
            .map(drop)
    }

    /// Updates the newest of `found` in place, so an item Python or another
    /// tool created keeps its label, and removes any duplicates beside it.
    fn update(&mut self, found: &[ObjectPath], secret: WireSecret) -> Result<(), StoreError> {
        let keep = self.newest(&[found.to_vec()])?[0];
        let mut messages =
            vec![method(SERVICE, &found[keep], ITEM_IFACE, "SetSecret").append1(secret)];
        for (index, path) in found.iter().enumerate() {
            if index != keep {
                messages.push(method(SERVICE, path, ITEM_IFACE, "Delete"));
            }
        }
        let mut replies = self.call_all(messages)?.into_iter();
        let mut first = replies.next().expect("SetSecret was sent");
        check(&mut first)?;
        for mut reply in replies {
            let (prompt,): (ObjectPath,) = read(&mut reply)?;
            self.complete(&prompt, refused("removing a duplicate item"))?;
        }
        Ok(())
    }

    fn remove(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        let found = self.search(&[key])?.remove(0);
        let messages = found
            .iter()
            .map(|path| method(SERVICE, path, ITEM_IFACE, "Delete"))
            .collect();
        for mut reply in self.call_all(messages)? {
            let (prompt,): (ObjectPath,) = read(&mut reply)?;
            self.complete(&prompt, refused("deleting the item"))?;
        }
        Ok(found.len())
    }

    /// `result`, with the daemon named in an error whose advice depends on it.
    ///
    /// "No Secret Service" means no store here only until the service has
    /// answered: once it has, it was here, and a name with no owner now
    /// means it went away during the run (crashed, or was stopped), which
    /// is a failure, not a reason for anything to stand in for it.
    fn named<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        result.map_err(|err| {
            if err == StoreError::NoService && self.owner.is_some() {
                went_away("its name has no owner now")
            } else if err.names_daemon() {
                let daemon = self.daemon();
                err.for_daemon(daemon)
            } else {
                err
            }
        })
    }

    /// Which program owns the service, from its PID's `comm`. Asked only
    /// when a message needs it, so a run that works never pays for it; and
    /// within `NAME_WAIT`, so a hung bus delays the error only that much.
    fn daemon(&mut self) -> Daemon {
        let ask = method(
            BUS,
            "/org/freedesktop/DBus",
            BUS,
            "GetConnectionUnixProcessID",
        )
        .append1(SERVICE);
        let pid = send(&self.channel, ask)
            .and_then(|serial| self.wait_for(&[serial], NAME_WAIT.min(self.timeout)))
            .and_then(|mut replies| read::<(u32,)>(&mut replies[0]));
        match pid {
            Ok((pid,)) => program(pid).map_or(Daemon::Unknown, |name| Daemon::from_program(&name)),
            Err(_) => Daemon::Unknown,
        }
    }
}

/// The process name of `pid`, as the kernel keeps it.
fn program(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim().to_owned())
}

/// The error for a prompt, confirming `change`, that was dismissed.
fn refused(change: &str) -> StoreError {
    StoreError::Denied(format!(
        "the keyring's prompt to confirm {change} was dismissed"
    ))
}

/// The session bus address, without libdbus's fallbacks: its X11 autolaunch
/// could start a bus (and a prompt) on a machine that has none.
fn session_bus_address() -> Result<String, StoreError> {
    if let Some(address) = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|a| !a.is_empty()) {
        return address.into_string().map_err(|_| StoreError::Connect {
            address: "DBUS_SESSION_BUS_ADDRESS".into(),
            reason: "the address is not valid UTF-8".into(),
        });
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let socket = std::path::Path::new(&runtime).join("bus");
        if socket.exists()
            && let Some(socket) = socket.to_str()
        {
            return Ok(format!("unix:path={socket}"));
        }
    }
    Err(StoreError::NoSessionBus)
}

/// A `CreateItem` call for `key`, laid out as Python's keyring lays items
/// out. replace = true: two concurrent `set`s that both found nothing leave
/// one item, since the service replaces an identical one.
fn create_item(key: Key<'_>, label: &str, secret: WireSecret) -> Message {
    let attributes = HashMap::from([
        ("service".to_owned(), key.service.to_owned()),
        ("username".to_owned(), key.username.to_owned()),
        ("application".to_owned(), APPLICATION.to_owned()),
    ]);
    let mut properties = PropMap::new();
    properties.insert(
        format!("{ITEM_IFACE}.Label"),
        Variant(Box::new(label.to_owned()) as Box<dyn RefArg>),
    );
    properties.insert(
        format!("{ITEM_IFACE}.Attributes"),
        Variant(Box::new(attributes) as Box<dyn RefArg>),
    );
    method(SERVICE, DEFAULT_COLLECTION, COLLECTION_IFACE, "CreateItem")
        .append3(properties, secret, true)
}

fn send(channel: &Channel, message: Message) -> Result<u32, StoreError> {
    channel
        .send(message)
        .map_err(|()| StoreError::Protocol("the D-Bus connection is closed".into()))
}

fn method<'p>(
    destination: &str,
    path: impl Into<dbus::Path<'p>>,
    interface: &str,
    member: &str,
) -> Message {
    let path = path.into();
    Message::new_method_call(destination, path, interface, member)
        .expect("constant names and valid object paths")
}

/// Turns an error reply into a `StoreError`.
fn check(reply: &mut Message) -> Result<(), StoreError> {
    reply.as_result().map(|_| ()).map_err(|err| {
        let name = err.name().unwrap_or("");
        let message = err.message().unwrap_or("").to_owned();
        match name {
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner" => StoreError::NoService,
            // The bus knows a service file for the name but could not start
            // it (ServiceNotFound, ExecFailed, ChildExited...): no Secret
            // Service here, as surely as when there is no service file.
            spawn if spawn.starts_with("org.freedesktop.DBus.Error.Spawn.") => {
                StoreError::NoService
            }
            "org.freedesktop.Secret.Error.IsLocked" => StoreError::Locked {
                daemon: Daemon::Unknown,
            },
            "org.freedesktop.Secret.Error.NoSuchObject"
                if message.contains("collection") || message.is_empty() =>
            {
                StoreError::NoDefaultCollection {
                    daemon: Daemon::Unknown,
                }
            }
            "org.freedesktop.DBus.Error.AccessDenied" => StoreError::Denied(message),
            "org.freedesktop.DBus.Error.NoReply" | "org.freedesktop.DBus.Error.Timeout" => {
                StoreError::Protocol(format!("{name}: {message}"))
            }
            _ => StoreError::Protocol(format!("{name}: {message}")),
        }
    })
}

/// Checks the reply to a `Prompt` call. Its success says nothing about the
/// outcome, which comes with `Completed`; an error is one of two things.
/// Sent by the service itself, it failed to run the prompt: oo7-daemon
/// with no prompter to show it answers `org.freedesktop.zbus.Error`
/// ("CLI prompter failed"), and other daemons use other names, so the
/// sender decides, not the name. For the person, that prompt could not be
/// shown, which is what `dismissed` says. Sent by the bus, the service went
/// away while asked (no owner, no reply): a failure, never "no Secret
/// Service here", which would let the environment stand in.
fn prompt_ran(reply: &mut Message, owner: &str, dismissed: StoreError) -> Result<(), StoreError> {
    let from_service = reply.sender().is_some_and(|sender| *sender == *owner);
    let Err(err) = reply.as_result().map(drop) else {
        return Ok(());
    };
    let name = err.name().unwrap_or("");
    match name {
        "org.freedesktop.DBus.Error.AccessDenied" => check(reply),
        _ if from_service => Err(dismissed),
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner"
        | "org.freedesktop.DBus.Error.NoReply"
        | "org.freedesktop.DBus.Error.Disconnected" => Err(went_away(&format!(
            "{name}: {}",
            err.message().unwrap_or("")
        ))),
        _ => check(reply),
    }
}

/// The error for a Secret Service that answered earlier in this run and
/// is gone now; `detail` says how that showed.
fn went_away(detail: &str) -> StoreError {
    StoreError::Protocol(format!(
        "the Secret Service went away during the run ({detail})\n  \
         check that your keyring daemon is running (start or restart it), then run this again"
    ))
}

/// A collection's `Locked` property, to ask for.
fn locked_property(collection: &ObjectPath) -> Message {
    method(SERVICE, collection, PROPERTIES_IFACE, "Get").append2(COLLECTION_IFACE, "Locked")
}

/// Whether a `Locked` reply says unlocked. An error says nothing, and
/// nothing is not "unlocked".
fn is_unlocked(reply: &mut Message) -> bool {
    read::<(Variant<bool>,)>(reply).is_ok_and(|(locked,)| !locked.0)
}

/// The object paths in a prompt's result: an array of them for `Unlock`,
/// anything else (an item path, an empty string) for other prompts.
fn object_paths(result: &dyn RefArg) -> Vec<ObjectPath> {
    if &*result.signature() != "ao" {
        return Vec::new();
    }
    result
        .as_iter()
        .into_iter()
        .flatten()
        .filter_map(|path| {
            path.as_str()
                .and_then(|p| ObjectPath::new(p.to_owned()).ok())
        })
        .collect()
}

/// Checks a reply for an error, then reads its arguments.
fn read<T: dbus::arg::ReadAll>(reply: &mut Message) -> Result<T, StoreError> {
    check(reply)?;
    reply
        .read_all()
        .map_err(|err| StoreError::Protocol(err.message().unwrap_or("bad reply").to_owned()))
}

/// What `doctor` reports about the Secret Service. Each part is known only
/// if the ones before it worked.
pub(crate) struct Diagnosis {
    /// The session bus address, or why there is none.
    pub(crate) bus: Result<String, StoreError>,
    /// The PID and program name of the process that owns the service.
    pub(crate) service: Result<(u32, String), StoreError>,
    /// Which daemon that is, for advice.
    pub(crate) daemon: Daemon,
    /// Whether a session opens, for each algorithm: (name, outcome). A run
    /// needs the first one (the second with `WITH_SECRETS_PLAIN_SESSION=1`).
    pub(crate) sessions: Vec<(&'static str, Result<(), StoreError>)>,
    /// Whether the default collection is locked.
    pub(crate) locked: Result<bool, StoreError>,
}

/// Looks at the session bus and the Secret Service without changing anything.
///
/// It opens a real session with each algorithm, the way a run does, and
/// derives the DH key: a daemon that answers the bus but cannot open a
/// session (KWallet without its Secret Service, a daemon without DH) then
/// shows here, not only as a failed run.
pub(crate) fn diagnose(timeout: Duration, person: &'static dyn Person) -> Diagnosis {
    let not_checked = || StoreError::Protocol("not checked".into());
    let failed = |bus, err: StoreError| Diagnosis {
        bus,
        service: Err(err),
        daemon: Daemon::Unknown,
        sessions: Vec::new(),
        locked: Err(not_checked()),
    };
    let bus = session_bus_address();
    let Ok(address) = &bus else {
        return failed(bus, not_checked());
    };
    let address = address.clone();
    let channel = match Channel::open_private(&address) {
        Ok(channel) => channel,
        Err(err) => {
            let err = StoreError::Connect {
                address,
                reason: err.message().unwrap_or("unknown error").to_owned(),
            };
            return failed(Err(err), not_checked());
        }
    };
    let keys = match KeyPair::generate() {
        Ok(keys) => keys,
        Err(err) => return failed(Ok(address), StoreError::Protocol(err)),
    };
    let mut connection = SecretService {
        channel,
        timeout,
        session: Session::Pending {
            serial: 0,
            keys: None,
        },
        early: HashMap::new(),
        completed: Vec::new(),
        owner: None,
        round_trips: 0,
        person,
    };
    let asks = vec![
        method(BUS, "/org/freedesktop/DBus", BUS, "Hello"),
        method(
            BUS,
            "/org/freedesktop/DBus",
            BUS,
            "GetConnectionUnixProcessID",
        )
        .append1(SERVICE),
        method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "ReadAlias").append1("default"),
        method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "OpenSession")
            .append2(ALGORITHM, Variant(keys.public.clone())),
        method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "OpenSession").append2("plain", Variant("")),
    ];
    let replies = match connection.call_all(asks) {
        Ok(replies) => replies,
        Err(err) => {
            let bus = if err.means_absent() {
                Err(err.clone())
            } else {
                Ok(address)
            };
            return failed(bus, err);
        }
    };
    let [
        _hello,
        mut pid_reply,
        mut alias_reply,
        mut dh_reply,
        mut plain_reply,
    ] = <[Message; 5]>::try_from(replies).expect("five calls, five replies");
    let service = read::<(u32,)>(&mut pid_reply).map(|(pid,)| {
        let name = program(pid).unwrap_or_else(|| "unknown program".to_owned());
        (pid, name)
    });
    let daemon = service
        .as_ref()
        .map_or(Daemon::Unknown, |(_, name)| Daemon::from_program(name));
    let dh = read::<(Variant<Vec<u8>>, ObjectPath)>(&mut dh_reply)
        .and_then(|(output, _)| keys.derive(&output.0).map_err(StoreError::Protocol))
        .map(drop);
    let plain = read::<(Variant<Box<dyn RefArg>>, ObjectPath)>(&mut plain_reply).map(drop);
    let locked = read::<(ObjectPath,)>(&mut alias_reply).and_then(|(collection,)| {
        if &*collection == NO_PROMPT {
            return Err(StoreError::NoDefaultCollection {
                daemon: daemon.clone(),
            });
        }
        let mut reply = connection.call(
            method(SERVICE, collection, PROPERTIES_IFACE, "Get")
                .append2(COLLECTION_IFACE, "Locked"),
        )?;
        read::<(Variant<bool>,)>(&mut reply).map(|(locked,)| locked.0)
    });
    let name = |err: StoreError| err.for_daemon(daemon.clone());
    Diagnosis {
        bus: Ok(address),
        service,
        sessions: vec![
            (ALGORITHM, dh.map_err(name)),
            ("plain", plain.map_err(name)),
        ],
        locked: locked.map_err(name),
        daemon,
    }
}
