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
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::Error;
use crate::manifest::Located;
use crate::manifest::Manifest;
use crate::store::bridge::wire::{self, Lines, Request, Response};
use crate::store::{self, StoreError, StoreKind};
use crate::term::printable::printable_path;

pub(crate) use self::policy::fuzz_lines;
use self::policy::{Policy, Screened, refusal};
use self::socket::{Place, block_stop_signals, current_uid, peer, spawn_stopper};

mod policy;
mod socket;

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
    // Its clients keep their own session cache, where they have one.
    let settings = store::Settings {
        agent: None,
        person: &PERSON,
        cache: false,
        ..config.store_settings(&served.vault)
    };
    // Blocked before anything is made and before any other thread starts,
    // so every thread inherits it and only the signal thread takes them.
    let signals = block_stop_signals();
    let place = Place::bind(socket)?;
    // The store is opened, and asked once for every entry served, while
    // the agent is still in the foreground: a passphrase or an unlock is
    // asked now, at its terminal, and never later from the background.
    let (jobs, queue) = mpsc::channel::<Job>();
    let (ready, opened) = mpsc::channel::<Result<(), StoreError>>();
    let warm_up: Vec<(String, String)> = served.keys.iter().cloned().collect();
    std::thread::spawn(move || serve_store(kind, &settings, &warm_up, &ready, &queue));
    match opened.recv() {
        Ok(Ok(())) => {}
        Ok(Err(err)) => log(&format!(
            "{} did not answer yet: {}; each request will ask it again",
            kind.name(),
            crate::term::printable::first_line(&err)
        )),
        Err(_) => {
            place.remove();
            return Err(Error::Agent {
                message: "the agent's store thread stopped before it was ready".to_owned(),
            });
        }
    }
    PERSON.stop_asking();
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
                // Out of descriptors, say: let connections end first.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        shared.wait_for_room();
        let shared = Arc::clone(&shared);
        let jobs = jobs.clone();
        std::thread::spawn(move || {
            // Left however the connection ends, a panic included.
            let _leave = Leave(&shared);
            shared.serve_connection(stream, &jobs);
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
        let manifests = if config.manifests.len() <= 1 {
            vec![config.manifest_as_written()?]
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
        // Every entry as a run sees it: [secrets] alone, and with each
        // profile applied (which also gives [secrets] entries the
        // profile's default service).
        let mut keys = HashSet::new();
        for manifest in &manifests {
            let mut views = vec![manifest.clone()];
            for profile in &manifest.profiles {
                views.push(manifest.clone().with_profile(&profile.name, "--profile")?.0);
            }
            for view in &views {
                for entry in &view.entries {
                    keys.insert((entry.service.clone(), entry.username.clone()));
                }
            }
        }
        let first = &manifests[0];
        // One agent serves one store: manifests that name different ones
        // (or different servers) would be looked up in the wrong place.
        if let Some(other) = manifests
            .iter()
            .find(|manifest| manifest.store != first.store || manifest.vault != first.vault)
        {
            return Err(Error::Agent {
                message: format!(
                    "{} and {} name different stores (or [vault] tables), and an agent serves \
                     one\n  start one agent for each (each with its own --socket)",
                    printable_path(&first.path),
                    printable_path(&other.path)
                ),
            });
        }
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

/// A request for the store thread, and where its answer goes.
struct Job {
    request: Request,
    answer: mpsc::Sender<Response>,
}

/// The store thread: opens the store when first asked, answers each job
/// in turn, and opens it afresh after an error (a daemon that restarted).
///
/// First it opens the store and looks up `warm_up` (every entry served), and
/// says on `ready` how that went: the agent waits for it in the foreground.
fn serve_store(
    kind: StoreKind,
    settings: &store::Settings,
    warm_up: &[(String, String)],
    ready: &mpsc::Sender<Result<(), StoreError>>,
    queue: &mpsc::Receiver<Job>,
) {
    let mut opened: Option<Box<dyn store::Store>> = None;
    let keys: Vec<store::Key<'_>> = warm_up
        .iter()
        .map(|(service, username)| store::Key { service, username })
        .collect();
    // Only where someone at the agent's terminal could answer now.
    let warmed = if PERSON.can_ask() {
        store::open(kind, settings)
            .and_then(|mut store| store.get_all(&keys).map(|_| store))
            .map(|store| {
                opened = Some(store);
            })
    } else {
        Ok(())
    };
    let _ = ready.send(warmed);
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
        // One deadline for the whole connection, reads and writes alike: a
        // peer that trickles its request, or never reads its answer, holds
        // its place no longer. A run sends hello and one request.
        let deadline = std::time::Instant::now() + IDLE;
        let mut lines = Lines::new();
        for _ in 0..REQUESTS {
            let line = match next_line(&mut stream, &mut lines, deadline) {
                Ok(Some(line)) => line,
                Ok(None) => return,
                Err(Ended::Io(err)) => {
                    log(&format!("{who}: closed: {err}"));
                    return;
                }
                Err(Ended::TooLong(too_long)) => {
                    log(&format!("{who}: closed: it sent {too_long}"));
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
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
            let written = left(deadline)
                .and_then(|left| stream.set_write_timeout(Some(left)))
                .and_then(|()| stream.write_all(&wire::to_line(&answer)));
            if let Err(err) = written {
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
            None => Response {
                error: Some("the agent's store thread has stopped".to_owned()),
                class: Some(store::Class::Failed.name().to_owned()),
                ..Response::default()
            },
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

/// One line on stderr: what the agent did, never a value.
fn log(message: &str) {
    use std::io::Write as _;
    // Never `eprintln!`, which panics where stderr is gone (a closed
    // terminal): the agent goes on, or stops, without its log.
    let _ = writeln!(std::io::stderr().lock(), "with-secrets agent: {message}");
}

/// How many requests one connection may make: hello and one more, all a
/// run sends.
const REQUESTS: usize = 2;

/// Why a connection's reading ended.
enum Ended {
    Io(std::io::Error),
    TooLong(wire::TooLong),
}

/// The next request line, `None` when the peer closed, read by `deadline`.
fn next_line(
    stream: &mut UnixStream,
    lines: &mut Lines,
    deadline: std::time::Instant,
) -> Result<Option<Zeroizing<Vec<u8>>>, Ended> {
    let mut chunk = Zeroizing::new([0u8; 8192]);
    loop {
        match lines.take() {
            Ok(Some(line)) => return Ok(Some(line)),
            Ok(None) => {}
            Err(too_long) => return Err(Ended::TooLong(too_long)),
        }
        let read = left(deadline)
            .and_then(|left| stream.set_read_timeout(Some(left)))
            .and_then(|()| stream.read(&mut chunk[..]));
        match read {
            Ok(0) => return Ok(None),
            Ok(read) => lines.push(&chunk[..read]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(Ended::Io(err)),
        }
    }
}

/// What is left of `deadline`, or a timed-out error once it has passed.
fn left(deadline: std::time::Instant) -> std::io::Result<Duration> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    Ok(left)
}

/// Gives a connection's place back when its thread ends, however it ends.
struct Leave<'a>(&'a Shared);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// Who the agent's store asks for a passphrase: the agent's terminal while
/// it starts in the foreground (`stop_asking` ends that), then nobody: the
/// variable, else an error that names it. A prompt from the background
/// would stop the whole agent (SIGTTOU).
struct AgentPerson {
    asking: std::sync::atomic::AtomicBool,
}

static PERSON: AgentPerson = AgentPerson {
    asking: std::sync::atomic::AtomicBool::new(true),
};

impl AgentPerson {
    fn stop_asking(&self) {
        self.asking.store(false, Ordering::SeqCst);
    }

    /// Whether the agent may prompt now: still starting, and in the
    /// foreground of its terminal (a prompt from the background would stop
    /// it until `fg`).
    fn can_ask(&self) -> bool {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        if !self.asking.load(Ordering::SeqCst) {
            return false;
        }
        let Ok(tty) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open("/dev/tty")
        else {
            return false;
        };
        // SAFETY: tcgetpgrp and getpgrp read process state; `tty` is open.
        unsafe { libc::tcgetpgrp(tty.as_raw_fd()) == libc::getpgrp() }
    }
}

impl store::Person for AgentPerson {
    fn secret(&self, ask: &store::Ask<'_>) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if self.can_ask() {
            crate::person::TERMINAL.secret(ask)
        } else {
            crate::person::NOBODY.secret(ask)
        }
    }

    fn is_present(&self) -> bool {
        self.can_ask()
    }

    fn tell(&self, message: &str) {
        log(message);
    }

    fn warn(&self, message: &str) {
        log(message);
    }
}
