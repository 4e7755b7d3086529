//! What `doctor` shows about the bus and the Secret Service, found without
//! changing anything.

use std::collections::HashMap;
use std::time::Duration;

use dbus::Message;
use dbus::arg::{RefArg, Variant};
use dbus::channel::Channel;

use super::ServiceError;
use super::connection::{method, session_bus_address};
use super::daemon::program;
use super::dh::{ALGORITHM, KeyPair};
use super::reply::read;
use super::session::Session;
use super::{
    BUS, COLLECTION_IFACE, Daemon, NO_PROMPT, ObjectPath, PROPERTIES_IFACE, Person, SERVICE,
    SERVICE_IFACE, SERVICE_PATH, SecretService, StoreError,
};

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
    let not_checked = || StoreError::from(ServiceError::Protocol("not checked".into()));
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
            let err = StoreError::from(ServiceError::Connect {
                address,
                reason: err.message().unwrap_or("unknown error").to_owned(),
            });
            return failed(Err(err), not_checked());
        }
    };
    let keys = match KeyPair::generate() {
        Ok(keys) => keys,
        Err(err) => return failed(Ok(address), StoreError::from(ServiceError::Protocol(err))),
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
        .and_then(|(output, _)| {
            keys.derive(&output.0)
                .map_err(|reason| ServiceError::Protocol(reason).into())
        })
        .map(drop);
    let plain = read::<(Variant<Box<dyn RefArg>>, ObjectPath)>(&mut plain_reply).map(drop);
    let locked = read::<(ObjectPath,)>(&mut alias_reply).and_then(|(collection,)| {
        if &*collection == NO_PROMPT {
            return Err(StoreError::from(ServiceError::NoDefaultCollection {
                daemon: daemon.clone(),
            }));
        }
        let mut reply = connection.call(
            method(SERVICE, collection, PROPERTIES_IFACE, "Get")
                .append2(COLLECTION_IFACE, "Locked"),
        )?;
        read::<(Variant<bool>,)>(&mut reply).map(|(locked,)| locked.0)
    });
    let name = |err: StoreError| super::for_daemon(err, daemon.clone());
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
