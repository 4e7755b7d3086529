//! The bus connection: sending calls and waiting for replies within a
//! deadline (what the replies carry is read in `reply`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dbus::Message;
use dbus::arg::Variant;
use dbus::channel::Channel;

use super::ServiceError;
use super::dh::{ALGORITHM, KeyPair};
use super::session::{Session, plain_session};
use super::{BUS, PROMPT_IFACE, SERVICE, SERVICE_IFACE, SERVICE_PATH, SecretService};
use super::{Daemon, StoreError};
use crate::store::Settings;

impl SecretService {
    /// Connects to the session bus and sends `Hello` and `OpenSession` without
    /// waiting for either: their replies are read with the first batch.
    pub(crate) fn connect(settings: &Settings) -> Result<Self, StoreError> {
        let (timeout, person) = (settings.timeout, settings.person);
        let address = session_bus_address()?;
        let channel = Channel::open_private(&address).map_err(|err| {
            StoreError::from(ServiceError::Connect {
                address: address.clone(),
                reason: err.message().unwrap_or("unknown error").to_owned(),
            })
        })?;
        let keys = if plain_session() {
            None
        } else {
            Some(KeyPair::generate().map_err(ServiceError::Protocol)?)
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
    pub(super) fn wait(&mut self, serials: &[u32]) -> Result<Vec<Message>, StoreError> {
        self.wait_for(serials, self.timeout)
    }

    /// `wait`, within `budget`.
    pub(super) fn wait_for(
        &mut self,
        serials: &[u32],
        budget: Duration,
    ) -> Result<Vec<Message>, StoreError> {
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
                return Err(StoreError::from(ServiceError::TimedOut {
                    after: budget,
                    daemon: Daemon::Unknown,
                }));
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
    pub(super) fn pump(&mut self, wait: Option<Duration>) -> Result<(), StoreError> {
        if let Some(wait) = wait {
            self.channel.read_write(Some(wait)).map_err(|()| {
                StoreError::from(ServiceError::Protocol(
                    "the D-Bus connection was closed".into(),
                ))
            })?;
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
    pub(super) fn call_all(&mut self, messages: Vec<Message>) -> Result<Vec<Message>, StoreError> {
        let serials = messages
            .into_iter()
            .map(|message| send(&self.channel, message))
            .collect::<Result<Vec<_>, _>>()?;
        self.wait(&serials)
    }

    pub(super) fn call(&mut self, message: Message) -> Result<Message, StoreError> {
        Ok(self.call_all(vec![message])?.remove(0))
    }
}

/// The session bus address, without libdbus's fallbacks: its X11 autolaunch
/// could start a bus (and a prompt) on a machine that has none.
pub(super) fn session_bus_address() -> Result<String, StoreError> {
    if let Some(address) = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|a| !a.is_empty()) {
        return address.into_string().map_err(|_| {
            StoreError::from(ServiceError::Connect {
                address: "DBUS_SESSION_BUS_ADDRESS".into(),
                reason: "the address is not valid UTF-8".into(),
            })
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
    Err(StoreError::from(ServiceError::NoSessionBus))
}

pub(super) fn send(channel: &Channel, message: Message) -> Result<u32, StoreError> {
    channel.send(message).map_err(|()| {
        StoreError::from(ServiceError::Protocol(
            "the D-Bus connection is closed".into(),
        ))
    })
}

pub(super) fn method<'p>(
    destination: &str,
    path: impl Into<dbus::Path<'p>>,
    interface: &str,
    member: &str,
) -> Message {
    let path = path.into();
    Message::new_method_call(destination, path, interface, member)
        .expect("constant names and valid object paths")
}
