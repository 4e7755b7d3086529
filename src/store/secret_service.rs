//! The freedesktop Secret Service (gnome-keyring, KeePassXC, KWallet), spoken
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
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use dbus::Message;
use dbus::arg::{PropMap, RefArg, Variant};
use dbus::channel::Channel;

use super::dh::{ALGORITHM, KeyPair, SessionKey};
use super::{Found, Key, Store, StoreError};
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
/// How long a person gets to answer an unlock prompt: longer than a call may
/// take, since a person, not a daemon, is the one answering.
const PROMPT_WAIT: Duration = Duration::from_secs(120);

/// The `application` attribute that Python's `keyring` writes and matches on.
pub const APPLICATION: &str = "Python keyring library";
/// The content type Python's `keyring` (via secretstorage) writes.
const CONTENT_TYPE: &str = "text/plain";

type ObjectPath = dbus::Path<'static>;
/// The Secret Service `Secret` struct: (session, parameters, value, content type).
type WireSecret = (ObjectPath, Vec<u8>, Vec<u8>, String);

/// A connection to the Secret Service with an encrypted session.
pub struct SecretService {
    channel: Channel,
    timeout: Duration,
    session: Session,
    /// Replies that arrived while we waited for others, by serial.
    early: HashMap<u32, Message>,
    /// Prompt `Completed` signals that arrived while we waited for replies.
    completed: Vec<Message>,
    /// Whether a person is there to answer an unlock prompt.
    interactive: bool,
    /// How many times we waited for the service: the cost a run pays in
    /// latency, which must not grow with the number of secrets.
    round_trips: u32,
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
pub const PLAIN_SESSION_VARIABLE: &str = "WITH_SECRETS_PLAIN_SESSION";

impl SecretService {
    /// Connects to the session bus and sends `Hello` and `OpenSession` without
    /// waiting for either: their replies are read with the first batch.
    pub fn connect(timeout: Duration) -> Result<Self, StoreError> {
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
            interactive: std::io::stdin().is_terminal(),
            round_trips: 0,
        })
    }

    /// Waits for the replies to `serials`, in that order, all within one deadline.
    fn wait(&mut self, serials: &[u32]) -> Result<Vec<Message>, StoreError> {
        let deadline = Instant::now() + self.timeout;
        let mut replies: Vec<Option<Message>> = serials
            .iter()
            .map(|serial| self.early.remove(serial))
            .collect();
        if replies.iter().any(Option::is_none) {
            self.round_trips += 1;
        }
        while replies.iter().any(Option::is_none) {
            while let Some(message) = self.channel.pop_message() {
                let Some(serial) = message.get_reply_serial() else {
                    self.keep_if_completed(message);
                    continue;
                };
                match serials.iter().position(|s| *s == serial) {
                    Some(index) => replies[index] = Some(message),
                    None => {
                        self.early.insert(serial, message);
                    }
                }
            }
            if replies.iter().all(Option::is_some) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::TimedOut(self.timeout));
            }
            self.channel
                .read_write(Some(left))
                .map_err(|()| StoreError::Protocol("the D-Bus connection was closed".into()))?;
        }
        Ok(replies
            .into_iter()
            .map(|r| r.expect("every reply is in"))
            .collect())
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
    /// Locked items are unlocked, or the search fails with `Locked`.
    fn search(&mut self, keys: &[Key<'_>]) -> Result<Vec<Vec<ObjectPath>>, StoreError> {
        let searches = keys
            .iter()
            .map(|key| {
                let attributes =
                    HashMap::from([("service", key.service), ("username", key.username)]);
                method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "SearchItems").append1(attributes)
            })
            .collect();
        let mut results = Vec::with_capacity(keys.len());
        let mut locked = Vec::new();
        for mut reply in self.call_all(searches)? {
            let (mut unlocked, still_locked): (Vec<ObjectPath>, Vec<ObjectPath>) =
                read(&mut reply)?;
            unlocked.extend(still_locked.iter().cloned());
            locked.extend(still_locked);
            results.push(unlocked);
        }
        if !locked.is_empty() {
            self.unlock(locked)?;
        }
        Ok(results)
    }

    /// Unlocks `objects`, asking the person to if the service needs to.
    fn unlock(&mut self, objects: Vec<ObjectPath>) -> Result<(), StoreError> {
        let mut reply =
            self.call(method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "Unlock").append1(objects))?;
        let (_unlocked, prompt): (Vec<ObjectPath>, ObjectPath) = read(&mut reply)?;
        self.complete(&prompt)
    }

    /// Runs `prompt`, which a call returned because it needs a person (most
    /// often, to unlock the keyring), and waits for its outcome.
    ///
    /// Only with a terminal on standard input: in CI or a Makefile nobody is
    /// there to answer, and waiting for an answer that never comes is the hang
    /// this tool must never have. A person gets `PROMPT_WAIT`, not the call
    /// timeout, since typing a password takes longer than a daemon should.
    fn complete(&mut self, prompt: &ObjectPath) -> Result<(), StoreError> {
        if &**prompt == NO_PROMPT {
            return Ok(());
        }
        if !self.interactive {
            return Err(StoreError::Locked);
        }
        // Subscribe before asking, or a quick answer could be missed.
        let rule = format!(
            "type='signal',interface='{PROMPT_IFACE}',member='Completed',path='{}'",
            &**prompt
        );
        let subscribe = method(BUS, "/org/freedesktop/DBus", BUS, "AddMatch").append1(rule);
        let ask = method(SERVICE, prompt, PROMPT_IFACE, "Prompt").append1("");
        for mut reply in self.call_all(vec![subscribe, ask])? {
            check(&mut reply)?;
        }
        let wait = PROMPT_WAIT.max(self.timeout);
        let deadline = Instant::now() + wait;
        loop {
            if let Some(index) = self
                .completed
                .iter()
                .position(|signal| signal.path().is_some_and(|path| *path == **prompt))
            {
                let signal = self.completed.remove(index);
                let dismissed: bool = signal.read1().map_err(|err| {
                    StoreError::Protocol(format!("a bad Completed signal: {err}"))
                })?;
                return if dismissed {
                    Err(StoreError::UnlockDismissed)
                } else {
                    Ok(())
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::TimedOut(wait));
            }
            self.channel
                .read_write(Some(left))
                .map_err(|()| StoreError::Protocol("the D-Bus connection was closed".into()))?;
            while let Some(message) = self.channel.pop_message() {
                match message.get_reply_serial() {
                    Some(serial) => {
                        self.early.insert(serial, message);
                    }
                    None => self.keep_if_completed(message),
                }
            }
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
                // An item that vanished between search and fetch is missing.
                let Some((_, parameters, value, _)) = secrets.remove(path) else {
                    return Ok(None);
                };
                let secret = cipher.decrypt(&parameters, value)?;
                Ok(Some(Found {
                    secret,
                    matches: paths.len(),
                }))
            })
            .collect()
    }

    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        let secret = self.wire_secret(value)?;
        let found = self.search(&[key])?.remove(0);
        if found.is_empty() {
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
            // replace = true: two concurrent `set`s that both found nothing
            // leave one item, since the service replaces an identical one.
            let mut reply = self.call(
                method(SERVICE, DEFAULT_COLLECTION, COLLECTION_IFACE, "CreateItem")
                    .append3(properties, secret, true),
            )?;
            let (_item, prompt): (ObjectPath, ObjectPath) = read(&mut reply)?;
            return self.complete(&prompt);
        }
        // Update the newest item in place, so an item Python or another tool
        // created keeps its label, and remove any duplicates beside it.
        let keep = self.newest(std::slice::from_ref(&found))?[0];
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
            self.complete(&prompt)?;
        }
        Ok(())
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        let found = self.search(&[key])?.remove(0);
        let messages = found
            .iter()
            .map(|path| method(SERVICE, path, ITEM_IFACE, "Delete"))
            .collect();
        for mut reply in self.call_all(messages)? {
            let (prompt,): (ObjectPath,) = read(&mut reply)?;
            self.complete(&prompt)?;
        }
        Ok(found.len())
    }
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
            "org.freedesktop.Secret.Error.IsLocked" => StoreError::Locked,
            "org.freedesktop.Secret.Error.NoSuchObject"
                if message.contains("collection") || message.is_empty() =>
            {
                StoreError::NoDefaultCollection
            }
            "org.freedesktop.DBus.Error.AccessDenied" => StoreError::Denied(message),
            "org.freedesktop.DBus.Error.NoReply" | "org.freedesktop.DBus.Error.Timeout" => {
                StoreError::Protocol(format!("{name}: {message}"))
            }
            _ => StoreError::Protocol(format!("{name}: {message}")),
        }
    })
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
pub struct Diagnosis {
    /// The session bus address, or why there is none.
    pub bus: Result<String, StoreError>,
    /// The PID and program name of the process that owns the service.
    pub service: Result<(u32, String), StoreError>,
    /// Whether the default collection is locked.
    pub locked: Result<bool, StoreError>,
}

/// Looks at the session bus and the Secret Service without changing anything.
pub fn diagnose(timeout: Duration) -> Diagnosis {
    let not_checked = || StoreError::Protocol("not checked".into());
    let bus = session_bus_address();
    let Ok(address) = &bus else {
        return Diagnosis {
            bus,
            service: Err(not_checked()),
            locked: Err(not_checked()),
        };
    };
    let address = address.clone();
    let mut connection = match SecretService::connect(timeout) {
        Ok(connection) => connection,
        Err(err) => {
            return Diagnosis {
                bus: Err(err),
                service: Err(not_checked()),
                locked: Err(not_checked()),
            };
        }
    };
    let asks = vec![
        method(
            BUS,
            "/org/freedesktop/DBus",
            BUS,
            "GetConnectionUnixProcessID",
        )
        .append1(SERVICE),
        method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "ReadAlias").append1("default"),
    ];
    let mut replies = match connection.call_all(asks) {
        Ok(replies) => replies.into_iter(),
        Err(err) => {
            return Diagnosis {
                bus: if err.means_no_daemon() {
                    Err(err.clone())
                } else {
                    Ok(address)
                },
                service: Err(err.clone()),
                locked: Err(err),
            };
        }
    };
    let (mut pid_reply, mut alias_reply) = (replies.next(), replies.next());
    let service = pid_reply
        .as_mut()
        .ok_or_else(not_checked)
        .and_then(read::<(u32,)>)
        .map(|(pid,)| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|name| name.trim().to_owned())
                .unwrap_or_else(|_| "unknown program".to_owned());
            (pid, name)
        });
    let locked = alias_reply
        .as_mut()
        .ok_or_else(not_checked)
        .and_then(read::<(ObjectPath,)>)
        .and_then(|(collection,)| {
            if &*collection == NO_PROMPT {
                return Err(StoreError::NoDefaultCollection);
            }
            let mut reply = connection.call(
                method(
                    SERVICE,
                    collection,
                    "org.freedesktop.DBus.Properties",
                    "Get",
                )
                .append2(COLLECTION_IFACE, "Locked"),
            )?;
            read::<(Variant<bool>,)>(&mut reply).map(|(locked,)| locked.0)
        });
    Diagnosis {
        bus: Ok(address),
        service,
        locked,
    }
}
