//! `with-secrets agent`: this machine's keyring, served on a Unix socket to
//! with-secrets in dev containers and over `ssh -R`, as ssh-agent serves
//! keys (the client is `store::agent`).
//!
//! It speaks the bridge's protocol (`store::bridge::wire`), one connection
//! per run. What it serves is explicit: the entries of the manifests it was
//! started with, read-only unless `--allow-writes`; anything else is refused
//! by name, with the way to allow it. Only its own user and root are
//! answered (the socket's peer credentials). Each request is logged on
//! stderr: the peer, the entries, how many were found; never a value.
//!
//! Threads: the main one accepts; each connection has one, which reads its
//! requests, checks them, and hands them to the one thread that owns the
//! store (a store is used from one thread, as everywhere else), which
//! answers in turn. A blocked signal thread removes the socket on SIGINT,
//! SIGTERM or SIGHUP, then ends the process.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::Error;
use crate::manifest::Located;
use crate::manifest::Manifest;
use crate::store::bridge::wire::{self, Lines, PROTOCOL, Request, Response, VERSION};
use crate::store::{self, StoreError, StoreKind};
use crate::term::printable::{printable, printable_path};

/// How long a connection may wait for a request before it is closed: a run
/// writes its request at once.
const IDLE: Duration = Duration::from_secs(30);

/// At most this many connections are served at once; more wait to be
/// accepted.
const CONNECTIONS: usize = 64;

pub(crate) fn run(
    config: &Config,
    socket: Option<&Path>,
    allow_writes: bool,
) -> Result<ExitCode, Error> {
    let served = Served::load(config)?;
    let kind = match config.store_without_manifest() {
        (kind, crate::config::StoreSource::Flag | crate::config::StoreSource::Variable) => kind,
        _ => served.store.unwrap_or_default(),
    };
    if kind == StoreKind::Agent {
        return Err(Error::Usage {
            message: "an agent cannot serve the agent store; name the store it serves with \
                      --store (e.g. --store secret-service), or leave it out for auto"
                .to_owned(),
        });
    }
    let settings = store::Settings {
        agent: None,
        ..config.store_settings(&served.vault)
    };
    let place = Place::bind(socket)?;
    // Blocked before any other thread starts, so every thread inherits it
    // and only the signal thread takes them.
    let signals = block_stop_signals();
    let stdout_line = format!(
        "WITH_SECRETS_AGENT={}; export WITH_SECRETS_AGENT;\n",
        shell_words::quote(&place.socket.to_string_lossy())
    );
    let mut stdout = std::io::stdout().lock();
    let printed = stdout
        .write_all(stdout_line.as_bytes())
        .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(source) = printed {
        // Nobody learns where it is: no agent, and nothing left behind.
        place.remove();
        return Err(Error::Stdout { source });
    }
    log(&format!(
        "listening on {} (pid {}), serving {} for the {} entr{} of {}{}",
        printable_path(&place.socket),
        std::process::id(),
        kind.name(),
        served.keys.len(),
        if served.keys.len() == 1 { "y" } else { "ies" },
        served.paths.join(", "),
        if allow_writes { "" } else { ", read-only" }
    ));
    spawn_stopper(signals, place.clone());

    let (jobs, queue) = mpsc::channel::<Job>();
    std::thread::spawn(move || serve_store(kind, &settings, &queue));
    let shared = Arc::new(Shared {
        policy: Policy {
            keys: served.keys,
            paths: served.paths,
            store: kind.name(),
            writes: allow_writes,
        },
        uid: current_uid(),
        active: (Mutex::new(0), Condvar::new()),
        next: AtomicUsize::new(0),
    });
    for stream in place.listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                log(&format!("accept failed: {err}"));
                continue;
            }
        };
        shared.wait_for_room();
        let shared = Arc::clone(&shared);
        let jobs = jobs.clone();
        std::thread::spawn(move || {
            shared.serve_connection(stream, &jobs);
            shared.leave();
        });
    }
    Ok(ExitCode::SUCCESS)
}

/// What the agent serves: the manifests, and every (service, username) of
/// their entries, profiles included.
struct Served {
    paths: Vec<String>,
    keys: HashSet<(String, String)>,
    store: Option<StoreKind>,
    vault: crate::manifest::VaultSettings,
}

impl Served {
    fn load(config: &Config) -> Result<Self, Error> {
        let manifests = if config.manifests.is_empty() {
            vec![config.project()?.manifest]
        } else {
            config
                .manifests
                .iter()
                .map(|path| {
                    Manifest::load(&Located {
                        path: path.clone(),
                        named_by: Some("--manifest"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut keys = HashSet::new();
        for manifest in &manifests {
            let profiles = manifest.profiles.iter().flat_map(|p| p.entries.iter());
            for entry in manifest.entries.iter().chain(profiles) {
                keys.insert((entry.service.clone(), entry.username.clone()));
            }
        }
        let first = &manifests[0];
        Ok(Self {
            paths: manifests
                .iter()
                .map(|manifest| {
                    let path = std::fs::canonicalize(&manifest.path)
                        .unwrap_or_else(|_| manifest.path.clone());
                    printable_path(&path)
                })
                .collect(),
            keys,
            store: first.store,
            vault: first.vault.clone(),
        })
    }
}

/// The socket, and the private folder made for it, if one was.
#[derive(Clone)]
struct Place {
    socket: PathBuf,
    folder: Option<PathBuf>,
    listener: Arc<UnixListener>,
}

impl Place {
    /// Listens at `socket`, or at `agent.sock` in a new private folder.
    /// A socket nobody listens on (its agent died) is replaced; one an
    /// agent answers on is left alone, and this is an error.
    fn bind(socket: Option<&Path>) -> Result<Self, Error> {
        let failed = |what: String| Error::Agent { message: what };
        let (socket, folder) = match socket {
            Some(path) => {
                // A folder that is not there yet is made private, so that a
                // fixed path (one a dev container mounts) needs no set-up.
                if let Some(parent) = path
                    .parent()
                    .filter(|parent| !parent.as_os_str().is_empty() && !parent.exists())
                {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)
                        .map_err(|err| {
                            failed(format!("cannot make {}: {err}", printable_path(parent)))
                        })?;
                }
                (path.to_owned(), None)
            }
            None => {
                let folder = private_folder().map_err(|err| {
                    failed(format!(
                        "cannot make a private folder for the socket: {err}"
                    ))
                })?;
                (folder.join("agent.sock"), Some(folder))
            }
        };
        if let Ok(metadata) = std::fs::symlink_metadata(&socket) {
            if !metadata.file_type().is_socket() {
                return Err(failed(format!(
                    "{} exists and is not a socket; nothing was changed\n  choose another \
                     path with --socket, or remove it",
                    printable_path(&socket)
                )));
            }
            match UnixStream::connect(&socket) {
                Ok(_) => {
                    return Err(failed(format!(
                        "an agent already listens on {}\n  use it (WITH_SECRETS_AGENT={}), or \
                         stop it first, or choose another path with --socket",
                        printable_path(&socket),
                        shell_words::quote(&printable_path(&socket))
                    )));
                }
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(&socket).map_err(|err| {
                        failed(format!(
                            "cannot remove the stale socket {}: {err}",
                            printable_path(&socket)
                        ))
                    })?;
                    log(&format!(
                        "removed {}, a socket nobody listened on",
                        printable_path(&socket)
                    ));
                }
                Err(err) => {
                    return Err(failed(format!(
                        "{} is a socket this process cannot use: {err}",
                        printable_path(&socket)
                    )));
                }
            }
        }
        // Made 0600 from the start: the umask covers the moment between
        // bind and chmod.
        // SAFETY: umask only sets the process's file mode mask.
        let old = unsafe { libc::umask(0o177) };
        let listener = UnixListener::bind(&socket);
        // SAFETY: as above, putting the mask back.
        unsafe { libc::umask(old) };
        let remove_folder = || {
            if let Some(folder) = &folder {
                let _ = std::fs::remove_dir(folder);
            }
        };
        let listener = listener.map_err(|err| {
            remove_folder();
            failed(format!(
                "cannot listen on {}: {err}",
                printable_path(&socket)
            ))
        })?;
        if let Err(err) = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        {
            let _ = std::fs::remove_file(&socket);
            remove_folder();
            return Err(failed(format!(
                "cannot make {} private: {err}",
                printable_path(&socket)
            )));
        }
        Ok(Self {
            socket,
            folder,
            listener: Arc::new(listener),
        })
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.socket);
        if let Some(folder) = &self.folder {
            let _ = std::fs::remove_dir(folder);
        }
    }
}

/// A new folder only this user can enter, under `$XDG_RUNTIME_DIR`, else
/// the temporary folder, as ssh-agent makes `/tmp/ssh-XXXXXX`.
fn private_folder() -> std::io::Result<PathBuf> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty() && Path::new(dir).is_dir())
        .map_or_else(std::env::temp_dir, PathBuf::from);
    let template = base.join("with-secrets-agent.XXXXXX");
    let mut bytes = std::ffi::CString::new(template.into_os_string().into_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?
        .into_bytes_with_nul();
    // SAFETY: `bytes` is a writable NUL-terminated template; mkdtemp fills
    // in its Xs and makes the folder 0700.
    let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(std::io::Error::last_os_error());
    }
    bytes.pop();
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

/// SIGINT, SIGTERM and SIGHUP, blocked in this thread (and so in every
/// thread started after), for the stopper to wait on.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, filled by sigemptyset/sigaddset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for a stop signal, then removes the socket and ends the process.
fn spawn_stopper(signals: libc::sigset_t, place: Place) {
    std::thread::spawn(move || {
        let mut signal: libc::c_int = 0;
        // SAFETY: `signals` is an initialised set, `signal` a valid out
        // parameter; the signals are blocked in every thread.
        let waited = unsafe { libc::sigwait(&signals, &mut signal) };
        place.remove();
        if waited == 0 {
            log(&format!("stopped by signal {signal}; removed the socket"));
        }
        std::process::exit(0);
    });
}

/// A request for the store thread, and where its answer goes.
struct Job {
    request: Request,
    answer: mpsc::Sender<Response>,
}

/// The store thread: opens the store when first asked, answers each job
/// in turn, and opens it afresh after an error (a daemon that restarted).
fn serve_store(kind: StoreKind, settings: &store::Settings, queue: &mpsc::Receiver<Job>) {
    let mut opened: Option<Box<dyn store::Store>> = None;
    for job in queue {
        let result = match &mut opened {
            Some(store) => Ok(store),
            None => store::open(kind, settings).map(|store| opened.insert(store)),
        }
        .and_then(|store| super::bridge::serve(job.request, store.as_mut()));
        let response = result.unwrap_or_else(|err| {
            opened = None;
            error_response(&err)
        });
        let _ = job.answer.send(response);
    }
}

/// A store's error as an answer: its message and class.
pub(crate) fn error_response(err: &StoreError) -> Response {
    Response {
        error: Some(err.to_string()),
        class: Some(err.class().name().to_owned()),
        ..Response::default()
    }
}

/// A refusal of the agent's own.
pub(crate) fn refusal(message: String) -> Response {
    Response {
        error: Some(format!("refused: {message}")),
        class: Some(store::Class::Denied.name().to_owned()),
        ..Response::default()
    }
}

/// What every connection thread shares.
struct Shared {
    policy: Policy,
    uid: u32,
    /// How many connections are being served, and a wake-up when one ends.
    active: (Mutex<usize>, Condvar),
    next: AtomicUsize,
}

impl Shared {
    fn wait_for_room(&self) {
        let (count, room) = &self.active;
        let mut count = count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *count >= CONNECTIONS {
            count = room
                .wait(count)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *count += 1;
    }

    fn leave(&self) {
        let (count, room) = &self.active;
        let mut count = count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *count -= 1;
        room.notify_one();
    }

    fn serve_connection(&self, mut stream: UnixStream, jobs: &mpsc::Sender<Job>) {
        let number = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let peer = match peer(&stream) {
            Ok(peer) => peer,
            Err(err) => {
                log(&format!(
                    "#{number}: cannot tell who connected ({err}); closed"
                ));
                return;
            }
        };
        let who = format!("#{number} {peer}");
        if peer.uid != self.uid && peer.uid != 0 {
            log(&format!("{who}: refused: not uid {} or root", self.uid));
            let _ = stream.write_all(&wire::to_line(&refusal(format!(
                "this agent answers only uid {} and root, and this is uid {}",
                self.uid, peer.uid
            ))));
            return;
        }
        let _ = stream.set_read_timeout(Some(IDLE));
        let mut lines = Lines::new();
        let mut chunk = Zeroizing::new([0u8; 8192]);
        loop {
            let line = match lines.take() {
                Ok(Some(line)) => line,
                Ok(None) => match stream.read(&mut chunk[..]) {
                    Ok(0) => return,
                    Ok(read) => {
                        lines.push(&chunk[..read]);
                        continue;
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(err) => {
                        log(&format!("{who}: closed: {err}"));
                        return;
                    }
                },
                Err(too_long) => {
                    log(&format!("{who}: closed: it sent {too_long}"));
                    let _ = stream.write_all(&wire::to_line(&refusal(format!(
                        "the request is {too_long}"
                    ))));
                    return;
                }
            };
            let answer = match wire::read_request(&line) {
                Ok(request) => self.answer(request, &who, jobs),
                Err(error) => {
                    log(&format!("{who}: {error}"));
                    Response {
                        error: Some(error),
                        class: Some(store::Class::Failed.name().to_owned()),
                        ..Response::default()
                    }
                }
            };
            drop(line);
            if let Err(err) = stream.write_all(&wire::to_line(&answer)) {
                log(&format!("{who}: closed: cannot answer: {err}"));
                return;
            }
        }
    }

    fn answer(&self, request: Request, who: &str, jobs: &mpsc::Sender<Job>) -> Response {
        let (request, named) = match self.policy.screen(request) {
            Screened::Answer {
                response,
                log: None,
            } => return response,
            Screened::Answer {
                response,
                log: Some(line),
            } => {
                log(&format!("{who}: {line}"));
                return response;
            }
            Screened::Store { request, named } => (request, named),
        };
        let (sender, receiver) = mpsc::channel();
        let sent = jobs.send(Job {
            request,
            answer: sender,
        });
        let answer = match sent.ok().and_then(|()| receiver.recv().ok()) {
            Some(answer) => answer,
            None => refusal("the agent's store thread has stopped".to_owned()),
        };
        let outcome = match (&answer.error, &answer.found, answer.deleted) {
            (Some(error), _, _) => format!("failed: {}", crate::term::printable::first_line(error)),
            (None, Some(found), _) => format!(
                "found {} of {}",
                found.iter().filter(|slot| slot.is_some()).count(),
                found.len()
            ),
            (None, None, Some(deleted)) => format!("deleted {deleted}"),
            (None, None, None) => "done".to_owned(),
        };
        log(&format!("{who}: {named}: {outcome}"));
        answer
    }
}

/// What the agent serves, and to whom it says so.
pub(crate) struct Policy {
    /// Every (service, username) of the manifests' entries.
    pub(crate) keys: HashSet<(String, String)>,
    /// The manifests, as the agent names them.
    pub(crate) paths: Vec<String>,
    /// The store it serves from, by name.
    pub(crate) store: &'static str,
    /// Whether runs may store and delete.
    pub(crate) writes: bool,
}

/// What the agent does with a request.
pub(crate) enum Screened {
    /// Answers it itself: hello, or a refusal (with its log line).
    Answer {
        response: Response,
        log: Option<String>,
    },
    /// Hands it to the store; `named` says what it asks, for the log.
    Store { request: Request, named: String },
}

impl Policy {
    /// Hello is answered here; a request for an entry the manifests do not
    /// name, or a write to a read-only agent, is refused by name; the rest
    /// goes to the store. Neither the answer nor the log line quotes a
    /// value.
    pub(crate) fn screen(&self, request: Request) -> Screened {
        let (what, keys): (&str, Vec<(&str, &str)>) = match &request {
            Request::Hello { .. } => {
                return Screened::Answer {
                    response: Response {
                        protocol: Some(PROTOCOL),
                        version: Some(VERSION.to_owned()),
                        store: Some(self.store.to_owned()),
                        serves: Some(self.paths.clone()),
                        writes: Some(self.writes),
                        ..Response::default()
                    },
                    log: None,
                };
            }
            Request::Get { keys } => (
                "get",
                keys.iter()
                    .map(|key| (key.service.as_str(), key.username.as_str()))
                    .collect(),
            ),
            Request::Set {
                service, username, ..
            } => ("set", vec![(service.as_str(), username.as_str())]),
            Request::Delete { service, username } => {
                ("delete", vec![(service.as_str(), username.as_str())])
            }
        };
        let named = format!(
            "{what} {}",
            keys.iter()
                .map(|(service, username)| format!(
                    "{} / {}",
                    printable(service),
                    printable(username)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let unserved: Vec<&(&str, &str)> = keys
            .iter()
            .filter(|(service, username)| {
                !self
                    .keys
                    .contains(&((*service).to_owned(), (*username).to_owned()))
            })
            .collect();
        if let Some((service, username)) = unserved.first() {
            return Screened::Answer {
                response: refusal(format!(
                    "the agent does not serve {} / {}{}: it serves only the entries of {}\n  on \
                     the agent's machine, add the manifest that names it: with-secrets agent -m \
                     PATH/TO/secrets.toml (one -m per manifest)",
                    printable(service),
                    printable(username),
                    match unserved.len() {
                        1 => String::new(),
                        n => format!(
                            " (nor {} other entr{})",
                            n - 1,
                            if n == 2 { "y" } else { "ies" }
                        ),
                    },
                    self.paths.join(", ")
                )),
                log: Some(format!("{named}: refused, not served")),
            };
        }
        if what != "get" && !self.writes {
            return Screened::Answer {
                response: refusal(
                    "the agent is read-only, so nothing was changed\n  on the agent's machine, \
                     restart it with --allow-writes to let runs store and delete through it"
                        .to_owned(),
                ),
                log: Some(format!("{named}: refused, read-only")),
            };
        }
        Screened::Store { request, named }
    }
}

/// For the fuzz target: `bytes` read as a connection is, each request
/// screened by an agent serving `fuzzing::SERVED`, read-only.
pub(crate) fn fuzz_lines(bytes: &[u8]) -> Vec<crate::fuzzing::AgentLine> {
    let (service, username) = crate::fuzzing::SERVED;
    let policy = Policy {
        keys: HashSet::from([(service.to_owned(), username.to_owned())]),
        paths: vec!["/project/secrets.toml".to_owned()],
        store: "file",
        writes: false,
    };
    let mut lines = Lines::new();
    lines.push(bytes);
    let mut out = Vec::new();
    while let Ok(Some(line)) = lines.take() {
        let mut read = crate::fuzzing::AgentLine {
            line: line.to_vec(),
            keys: Vec::new(),
            kind: "none",
            value: None,
            to_store: false,
            answer: None,
            log: None,
        };
        if let Ok(request) = wire::read_request(&line) {
            (read.kind, read.keys) = match &request {
                Request::Hello { .. } => ("hello", Vec::new()),
                Request::Get { keys } => (
                    "get",
                    keys.iter()
                        .map(|key| (key.service.clone(), key.username.clone()))
                        .collect(),
                ),
                Request::Set {
                    service, username, ..
                } => ("set", vec![(service.clone(), username.clone())]),
                Request::Delete { service, username } => {
                    ("delete", vec![(service.clone(), username.clone())])
                }
            };
            if let Request::Set { value, .. } = &request {
                read.value = serde_json::to_value(value)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_owned));
            }
            match policy.screen(request) {
                Screened::Answer { response, log } => {
                    read.answer = Some(wire::to_line(&response).to_vec());
                    read.log = log;
                }
                Screened::Store { named, .. } => {
                    read.to_store = true;
                    read.log = Some(named);
                }
            }
        }
        out.push(read);
    }
    out
}

/// Who is at the other end of a connection.
struct Peer {
    pid: Option<i32>,
    uid: u32,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid} uid {}", self.uid),
            None => write!(f, "uid {}", self.uid),
        }
    }
}

#[cfg(target_os = "linux")]
fn peer(stream: &UnixStream) -> std::io::Result<Peer> {
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `credentials` and `len` are valid out parameters of the size
    // SO_PEERCRED writes, on our open socket.
    let got = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut credentials).cast(),
            &mut len,
        )
    };
    if got != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Peer {
        pid: Some(credentials.pid),
        uid: credentials.uid,
    })
}

#[cfg(not(target_os = "linux"))]
fn peer(stream: &UnixStream) -> std::io::Result<Peer> {
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: valid out parameters, on our open socket.
    if unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Peer { pid: None, uid })
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// One line on stderr: what the agent did, never a value.
fn log(message: &str) {
    eprintln!("with-secrets agent: {message}");
}
