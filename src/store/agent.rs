//! The `agent` store: the keyring of the machine a person sits at, reached
//! through `with-secrets agent`'s Unix socket (named by
//! `WITH_SECRETS_AGENT`), from a dev container or over `ssh -R`.
//!
//! It speaks the bridge's protocol ([`super::bridge::wire`]) over the
//! socket: `hello` and the request are written together and both answers
//! read back, so a run is one connection and one round trip, bounded by
//! `--timeout`. Every failure here is the store being there and failing
//! (the variable names it): an agent that is gone, a stale socket, an
//! entry it does not serve, or its store's own error; none lets the
//! environment stand in. Only an unset variable is no store at all.

use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::bridge::wire::{self, Lines, PROTOCOL, Request, Response, VERSION};
use super::{Class, Fault, Found, Key, Settings, Store, StoreError};
use crate::secret::Secret;
use crate::term::printable::first_line;

/// The variable that names the agent's socket.
pub(crate) const VARIABLE: &str = "WITH_SECRETS_AGENT";

/// What the agent said of itself in `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct About {
    pub(crate) version: String,
    /// The store it serves from, by name.
    pub(crate) store: String,
    /// The manifests whose entries it serves.
    pub(crate) serves: Vec<String>,
    /// Whether it lets runs store and delete values.
    pub(crate) writes: bool,
}

/// The agent, reached when first used.
pub(crate) struct Agent {
    socket: Option<PathBuf>,
    timeout: Duration,
    /// Whether the agent lets runs write, once it has said so.
    writes: Option<bool>,
}

impl Agent {
    /// Connects to nothing yet.
    pub(crate) fn open(settings: &Settings) -> Self {
        Self {
            socket: settings.agent.clone(),
            timeout: settings.timeout,
            writes: None,
        }
    }

    /// Sends `request` after `hello` on a new connection, and reads both
    /// answers: one round trip.
    fn call(&mut self, request: &Request) -> Result<Response, StoreError> {
        let socket = self.socket.as_deref().ok_or(Error::NotSet)?;
        let deadline = Instant::now() + self.timeout;
        let mut connection = Connection::open(socket, self.timeout, deadline)?;
        let hello = Request::Hello {
            protocol: PROTOCOL,
            version: VERSION.to_owned(),
        };
        let mut lines = wire::to_line(&hello);
        crate::secret::append_wiped(&mut lines, &wire::to_line(request));
        let about = connection.send(&lines)?;
        self.writes = Some(connection.check_hello(about)?.writes);
        let answer = connection.read_response()?;
        match answer.error {
            Some(message) => Err(connection.refusal_or_remote(message, answer.class.as_deref())),
            None => Ok(answer),
        }
    }
}

/// Says hello to the agent at `socket`, as `doctor` does: what it is and
/// what it serves.
pub(crate) fn probe(socket: &Path, timeout: Duration) -> Result<About, StoreError> {
    let deadline = Instant::now() + timeout;
    let mut connection = Connection::open(socket, timeout, deadline)?;
    let hello = Request::Hello {
        protocol: PROTOCOL,
        version: VERSION.to_owned(),
    };
    let answer = connection.send(&wire::to_line(&hello))?;
    connection.check_hello(answer)
}

/// The agent's line in `doctor`, when one is named or the runs use it:
/// where it is, and what it is and serves, or why it does not answer.
pub(crate) fn report(chosen: bool, settings: &Settings) -> Option<super::Report> {
    let Some(socket) = &settings.agent else {
        return chosen.then(|| super::Report::lines(vec![("agent:", first_line(&Error::NotSet))]));
    };
    let probed = probe(socket, settings.timeout);
    let line = match &probed {
        Ok(about) => format!(
            "{} answers: with-secrets {}, serving {} for the entries of {}{}",
            socket.display(),
            about.version,
            about.store,
            if about.serves.is_empty() {
                "no manifest".to_owned()
            } else {
                about.serves.join(", ")
            },
            if about.writes { "" } else { " (read-only)" }
        ),
        Err(err) => format!("FAILS: {}", first_line(err)),
    };
    Some(super::Report {
        lines: vec![("agent:", line)],
        usable: probed.map(drop),
    })
}

impl Store for Agent {
    fn name(&self) -> &'static str {
        "agent"
    }

    /// The socket: whatever agent listens there now serves the values.
    fn cache_identity(&self) -> Option<zeroize::Zeroizing<String>> {
        let socket = self.socket.as_deref()?;
        let mut identity = zeroize::Zeroizing::new(String::from("agent\0"));
        identity.push_str(&socket.to_string_lossy());
        Some(identity)
    }

    /// A read-only agent holds values, but none can be stored through it:
    /// nothing is generated into it.
    fn holds_values(&self) -> bool {
        self.writes.unwrap_or(true)
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        let answer = self.call(&wire::get_request(keys))?;
        wire::found_values(answer, keys.len()).map_err(|why| self.misread(&why))
    }

    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        self.call(&wire::set_request(key, label, value)).map(drop)
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        self.call(&wire::delete_request(key))?
            .deleted
            .ok_or_else(|| self.misread("its answer to a delete has no `deleted`"))
    }
}

impl Agent {
    fn misread(&self, what: &str) -> StoreError {
        Error::Broken {
            socket: self.socket.clone().unwrap_or_default(),
            reason: format!("its answer makes no sense ({what})"),
        }
        .into()
    }
}

/// One connection to the agent, every read and write by one deadline.
struct Connection {
    stream: UnixStream,
    socket: PathBuf,
    timeout: Duration,
    deadline: Instant,
    lines: Lines,
}

impl Connection {
    fn open(socket: &Path, timeout: Duration, deadline: Instant) -> Result<Self, StoreError> {
        let stream = connect(socket, deadline).map_err(|err| {
            let socket = socket.to_owned();
            match err.kind() {
                io::ErrorKind::NotFound => Error::NoAgent { socket },
                io::ErrorKind::ConnectionRefused
                    if std::fs::symlink_metadata(&socket).is_ok_and(|metadata| {
                        !std::os::unix::fs::FileTypeExt::is_socket(&metadata.file_type())
                    }) =>
                {
                    Error::Broken {
                        socket,
                        reason: "it is not a socket (check WITH_SECRETS_AGENT)".to_owned(),
                    }
                }
                io::ErrorKind::ConnectionRefused => Error::Stale { socket },
                io::ErrorKind::WouldBlock => Error::TimedOut {
                    socket,
                    after: timeout,
                },
                _ => Error::Broken {
                    socket,
                    reason: format!("cannot connect: {err}"),
                },
            }
        })?;
        Ok(Self {
            stream,
            socket: socket.to_owned(),
            timeout,
            deadline,
            lines: Lines::new(),
        })
    }

    /// What is left of the deadline, or the error that it has passed.
    fn left(&self) -> Result<Duration, StoreError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::TimedOut {
                socket: self.socket.clone(),
                after: self.timeout,
            }
            .into());
        }
        Ok(left)
    }

    fn io_error(&self, doing: &str, err: &io::Error) -> StoreError {
        match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::TimedOut {
                socket: self.socket.clone(),
                after: self.timeout,
            }
            .into(),
            _ => Error::Broken {
                socket: self.socket.clone(),
                reason: format!("cannot {doing}: {err}"),
            }
            .into(),
        }
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        while !bytes.is_empty() {
            let left = self.left()?;
            self.stream
                .set_write_timeout(Some(left))
                .map_err(|err| self.io_error("write to it", &err))?;
            match self.stream.write(bytes) {
                Ok(0) => {
                    return Err(self.io_error("write to it", &io::ErrorKind::WriteZero.into()));
                }
                Ok(written) => bytes = &bytes[written..],
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.io_error("write to it", &err)),
            }
        }
        Ok(())
    }

    /// Writes `bytes` and reads the first answer. An agent that refuses
    /// this peer answers at once and closes, perhaps before all of `bytes`
    /// was written: then the write fails, but its refusal is there to read,
    /// and says why.
    fn send(&mut self, bytes: &[u8]) -> Result<Response, StoreError> {
        let written = self.write_all(bytes);
        // A refusal, or another version's hello, says more than the failed
        // write does.
        let refused = |answer: &Response| {
            answer.error.is_some()
                || answer.protocol != Some(PROTOCOL)
                || answer.version.as_deref() != Some(VERSION)
        };
        match (written, self.read_response()) {
            (Ok(()), answer) => answer,
            (Err(_), Ok(answer)) if refused(&answer) => Ok(answer),
            (Err(err), _) => Err(err),
        }
    }

    fn read_response(&mut self) -> Result<Response, StoreError> {
        let line = loop {
            match self.lines.take() {
                Ok(Some(line)) => break line,
                Ok(None) => {}
                Err(too_long) => {
                    return Err(Error::Broken {
                        socket: self.socket.clone(),
                        reason: format!("it sent {too_long}"),
                    }
                    .into());
                }
            }
            let left = self.left()?;
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|err| self.io_error("read from it", &err))?;
            let mut chunk = Zeroizing::new([0u8; 8192]);
            match self.stream.read(&mut chunk[..]) {
                Ok(0) => {
                    return Err(Error::Broken {
                        socket: self.socket.clone(),
                        reason: "it closed the connection before answering".to_owned(),
                    }
                    .into());
                }
                Ok(read) => self.lines.push(&chunk[..read]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.io_error("read from it", &err)),
            }
        };
        wire::read_response(&line).map_err(|reason| {
            Error::Broken {
                socket: self.socket.clone(),
                reason,
            }
            .into()
        })
    }

    fn check_hello(&self, answer: Response) -> Result<About, StoreError> {
        if let Some(message) = answer.error {
            return Err(self.refusal_or_remote(message, answer.class.as_deref()));
        }
        let (Some(protocol), Some(version)) = (answer.protocol, answer.version) else {
            return Err(Error::Broken {
                socket: self.socket.clone(),
                reason: "it answered hello without its versions".to_owned(),
            }
            .into());
        };
        if protocol != PROTOCOL || version != VERSION {
            return Err(Error::Mismatch {
                socket: self.socket.clone(),
                theirs: format!("{version}, protocol {protocol}"),
            }
            .into());
        }
        Ok(About {
            version,
            store: answer.store.unwrap_or_default(),
            serves: answer.serves.unwrap_or_default(),
            writes: answer.writes.unwrap_or(false),
        })
    }

    /// The agent's error answer: a refusal of its own, or its store's
    /// error, with the class the agent gave it. Never absent: the store
    /// behind the agent is there, since the agent answered for it.
    fn refusal_or_remote(&self, message: String, class: Option<&str>) -> StoreError {
        let class = match class.and_then(Class::from_name) {
            Some(Class::Absent) | None => Class::Failed,
            Some(class) => class,
        };
        Error::Remote {
            socket: self.socket.clone(),
            message,
            class,
        }
        .into()
    }
}

/// Connects to `socket` by `deadline`. A blocking connect waits, unbounded,
/// while the agent's backlog is full; a non-blocking one says so at once
/// (`EAGAIN`), and is tried again until the deadline, then `WouldBlock`.
fn connect(socket: &Path, deadline: Instant) -> io::Result<UnixStream> {
    use std::os::fd::{FromRawFd as _, OwnedFd};
    use std::os::unix::ffi::OsStrExt as _;

    // SAFETY: sockaddr_un is plain data; zeroed is a valid empty address.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = socket.as_os_str().as_bytes();
    if path.len() >= address.sun_path.len() {
        return Err(io::Error::other(format!(
            "its path is longer than a socket's path may be ({} bytes)",
            address.sun_path.len() - 1
        )));
    }
    for (to, &from) in address.sun_path.iter_mut().zip(path) {
        *to = from as libc::c_char;
    }
    // SAFETY: socket() takes no pointers; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just made, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(true)?;
    // Closed in a command the run starts, as std's sockets are.
    // SAFETY: fcntl on our open descriptor, with plain integer arguments.
    unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    let length = std::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
    loop {
        // SAFETY: `address` is a valid sockaddr_un of `length` bytes.
        let connected = unsafe {
            libc::connect(
                stream.as_raw_fd(),
                (&raw const address).cast(),
                length as libc::socklen_t,
            )
        };
        if connected == 0 {
            break;
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock if Instant::now() < deadline => {
                let left = deadline.saturating_duration_since(Instant::now());
                std::thread::sleep(left.min(Duration::from_millis(10)));
            }
            _ => return Err(err),
        }
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Why the agent could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Error {
    /// `--store agent` without `WITH_SECRETS_AGENT`.
    NotSet,
    /// Nothing at the socket's path.
    NoAgent { socket: PathBuf },
    /// A socket with nobody listening: its agent died.
    Stale { socket: PathBuf },
    /// No answer by the deadline.
    TimedOut { socket: PathBuf, after: Duration },
    /// The connection failed, or the answer made no sense.
    Broken { socket: PathBuf, reason: String },
    /// The agent is another version of with-secrets.
    Mismatch { socket: PathBuf, theirs: String },
    /// The agent refused, or its store failed: its message, and the class
    /// it gave.
    Remote {
        socket: PathBuf,
        message: String,
        class: Class,
    },
}

impl Fault for Error {
    fn class(&self) -> Class {
        match self {
            Self::NotSet => Class::Absent,
            Self::TimedOut { .. } => Class::TimedOut,
            Self::Remote { class, .. } => *class,
            Self::NoAgent { .. }
            | Self::Stale { .. }
            | Self::Broken { .. }
            | Self::Mismatch { .. } => Class::Failed,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = "start one on the machine whose keyring you use (`with-secrets agent`), \
                     and set WITH_SECRETS_AGENT to the socket it prints (or the path it is \
                     forwarded or mounted to here)";
        match self {
            Self::NotSet => write!(
                f,
                "{VARIABLE} is not set, so there is no agent to ask\n  {start}"
            ),
            Self::NoAgent { socket } => write!(
                f,
                "no agent at {} ({VARIABLE}): nothing is there\n  {start}",
                socket.display()
            ),
            Self::Stale { socket } => write!(
                f,
                "no agent listens at {} ({VARIABLE}): the socket is left from one that \
                 stopped\n  {start}",
                socket.display()
            ),
            Self::TimedOut { socket, after } => write!(
                f,
                "the agent at {} did not answer within {} s\n  check the agent's terminal \
                 (its keyring may be waiting for an unlock), or give it longer with --timeout",
                socket.display(),
                after.as_secs_f32()
            ),
            Self::Broken { socket, reason } => {
                write!(f, "the agent at {} failed: {reason}", socket.display())
            }
            Self::Mismatch { socket, theirs } => write!(
                f,
                "the agent at {} is with-secrets {theirs}, but this is with-secrets \
                 {VERSION}, protocol {PROTOCOL}\n  run the same version on both sides",
                socket.display()
            ),
            Self::Remote {
                socket, message, ..
            } => write!(f, "the agent at {} says: {message}", socket.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unset_variable_means_absent() {
        let socket = || PathBuf::from("/run/with-secrets.sock");
        assert!(StoreError::from(Error::NotSet).means_absent());
        for err in [
            Error::NoAgent { socket: socket() },
            Error::Stale { socket: socket() },
            Error::TimedOut {
                socket: socket(),
                after: Duration::from_secs(1),
            },
            Error::Broken {
                socket: socket(),
                reason: "closed".into(),
            },
            Error::Mismatch {
                socket: socket(),
                theirs: "0.0.1, protocol 1".into(),
            },
            Error::Remote {
                socket: socket(),
                message: "refused".into(),
                class: Class::Denied,
            },
        ] {
            assert!(!StoreError::from(err.clone()).means_absent(), "{err:?}");
        }
    }

    #[test]
    fn the_far_sides_class_is_kept_but_absent_is_not() {
        let connection = |class: Option<&str>| {
            let stream = UnixStream::pair().expect("a socket pair").0;
            Connection {
                stream,
                socket: PathBuf::from("s"),
                timeout: Duration::from_secs(1),
                deadline: Instant::now() + Duration::from_secs(1),
                lines: Lines::new(),
            }
            .refusal_or_remote("m".into(), class)
        };
        assert_eq!(connection(Some("locked")).class(), Class::Locked);
        assert_eq!(connection(Some("denied")).class(), Class::Denied);
        // The agent answered, so the store behind it is there.
        assert_eq!(connection(Some("absent")).class(), Class::Failed);
        assert_eq!(connection(Some("nonsense")).class(), Class::Failed);
        assert_eq!(connection(None).class(), Class::Failed);
        for class in [
            Class::Absent,
            Class::Locked,
            Class::Denied,
            Class::TimedOut,
            Class::ReadOnly,
            Class::Failed,
        ] {
            assert_eq!(Class::from_name(class.name()), Some(class));
        }
    }
}
