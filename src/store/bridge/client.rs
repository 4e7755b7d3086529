//! The Linux end of the bridge: starts the helper once, on the first call,
//! checks its versions, then sends each call as one request and waits for
//! its answer with the run's deadline.
//!
//! Why a process and a pipe, not a socket or a service: WSL interop already
//! runs Windows programs from Linux with their stdin and stdout as pipes, and
//! nothing else needs installing or keeping alive. One helper serves every
//! call of a run, since starting a Windows process over interop is what
//! costs (tens of milliseconds; seconds from a Linux working directory, see
//! microsoft/WSL#8472, so the helper starts in `/mnt/c` when there is one).
//!
//! Values only ever travel in the pipes, never on a command line or in the
//! helper's environment (which is ours, taken before any value was read).
//! Every read and write waits with poll(2) against the deadline; when it
//! passes, the helper's whole process group is killed, so a hung helper
//! (or a Wine or interop layer under it) never outlives the call. Once the
//! answers are in, the group is killed too, without waiting for the helper
//! to exit or to close its output: a process it left behind that still
//! holds the pipe would otherwise hold the run for the whole `--timeout`,
//! and outlive it.

use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::error::Error as BridgeError;
use super::wire::{self, Lines, PROTOCOL, Request, Response, VERSION};
use crate::secret::Secret;
use crate::store::{Found, Key, Settings, Store, StoreError};

/// The command that starts the helper, split into words as `-c` splits;
/// ` bridge` is added.
pub(crate) const HELPER_VARIABLE: &str = "WITH_SECRETS_WINDOWS_HELPER";

/// The helper's name on the Windows `PATH`, which WSL appends to ours.
const HELPER_PROGRAM: &str = "with-secrets.exe";

/// A working directory on the Windows side, if this WSL mounts one.
const WINDOWS_DIR: &str = "/mnt/c";

/// The `windows` store, from Linux.
pub(crate) struct Bridge {
    timeout: Duration,
    helper: Option<Helper>,
}

impl Bridge {
    /// Opens nothing yet: the helper starts with the first call.
    pub(crate) fn open(settings: &Settings) -> Self {
        Self {
            timeout: settings.timeout,
            helper: None,
        }
    }

    fn helper(&mut self, deadline: Instant) -> Result<&mut Helper, StoreError> {
        if self.helper.is_none() {
            self.helper = Some(Helper::start(self.timeout, deadline)?);
        }
        Ok(self.helper.as_mut().expect("just started"))
    }

    /// An answer that this side cannot take, for `why`: the helper's fault,
    /// not the store's behind it.
    fn misread(&self, why: &str) -> StoreError {
        StoreError::from(BridgeError::HelperFailed {
            command: self
                .helper
                .as_ref()
                .map_or_else(|| "?".to_owned(), |helper| helper.command.clone()),
            reason: why.to_owned(),
        })
    }

    /// Sends `request`, returns the answer; on any failure the helper is
    /// killed, so the next call (if any) starts afresh.
    fn call(&mut self, request: &Request) -> Result<Response, StoreError> {
        let deadline = Instant::now() + self.timeout;
        let timeout = self.timeout;
        let helper = self.helper(deadline)?;
        let result = helper.exchange(request, timeout, deadline);
        if result.is_err()
            && let Some(helper) = self.helper.take()
        {
            helper.kill();
        }
        let response = result?;
        match response.error {
            Some(message) => Err(StoreError::from(BridgeError::Remote { message })),
            None => Ok(response),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(helper) = self.helper.take() {
            helper.kill();
        }
    }
}

impl Store for Bridge {
    fn name(&self) -> &'static str {
        "windows"
    }

    /// The helper as it would be started (without looking it up on `PATH`,
    /// which on WSL means Windows folders and costs what the cache saves),
    /// and the Wine prefix where one is set: each Wine prefix has a
    /// Credential Manager of its own.
    fn cache_identity(&self) -> Option<Zeroizing<String>> {
        let mut identity = Zeroizing::new(String::from("windows\0"));
        match std::env::var_os(HELPER_VARIABLE).filter(|line| !line.is_empty()) {
            Some(line) => identity.push_str(&line.to_string_lossy()),
            None => identity.push_str(HELPER_PROGRAM),
        }
        identity.push('\0');
        if let Some(prefix) = std::env::var_os("WINEPREFIX") {
            identity.push_str(&prefix.to_string_lossy());
        }
        Some(identity)
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

/// Starts the helper and says hello, as `doctor` and `auto` do to learn
/// whether the Windows keyring answers; `Ok` is the helper's command and
/// version.
pub(crate) fn probe(timeout: Duration) -> Result<String, StoreError> {
    let helper = Helper::start(timeout, Instant::now() + timeout)?;
    let about = format!("{} (with-secrets {})", helper.command, helper.version);
    helper.kill();
    Ok(about)
}

/// A running helper.
struct Helper {
    child: Child,
    /// `None` once closed.
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// What has been read but not yet taken as a line.
    lines: Lines,
    /// The command, for messages.
    command: String,
    version: String,
}

impl Helper {
    /// Finds, starts and greets the helper.
    fn start(timeout: Duration, deadline: Instant) -> Result<Self, StoreError> {
        let (words, command) = helper_command()?;
        let mut process = Command::new(&words[0]);
        process
            .args(&words[1..])
            .arg("bridge")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so that killing it kills what it
            // started too (Wine, an interop shim, a wrapper's children).
            .process_group(0);
        if Path::new(WINDOWS_DIR).is_dir() {
            process.current_dir(WINDOWS_DIR);
        }
        let mut child = process.spawn().map_err(|err| spawn_error(&command, &err))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        set_nonblocking(stdin.as_raw_fd());
        let mut helper = Self {
            child,
            stdin: Some(stdin),
            stdout,
            lines: Lines::new(),
            command,
            version: String::new(),
        };
        let hello = Request::Hello {
            protocol: PROTOCOL,
            version: VERSION.to_owned(),
        };
        let answer = helper.exchange(&hello, timeout, deadline);
        let checked = answer.and_then(|answer| helper.check_hello(answer));
        match checked {
            Ok(version) => {
                helper.version = version;
                Ok(helper)
            }
            Err(err) => {
                helper.kill();
                Err(err)
            }
        }
    }

    fn check_hello(&self, answer: Response) -> Result<String, StoreError> {
        let (Some(protocol), Some(version)) = (answer.protocol, answer.version) else {
            return Err(StoreError::from(BridgeError::HelperFailed {
                command: self.command.clone(),
                reason: match answer.error {
                    Some(message) => message,
                    None => "it answered hello without its versions".into(),
                },
            }));
        };
        if protocol == PROTOCOL && version == VERSION {
            return Ok(version);
        }
        let helper_is_older = match protocol.cmp(&PROTOCOL) {
            std::cmp::Ordering::Equal => {
                wire::compare_versions(&version, VERSION) == std::cmp::Ordering::Less
            }
            order => order == std::cmp::Ordering::Less,
        };
        Err(StoreError::from(BridgeError::HelperMismatch {
            command: self.command.clone(),
            theirs: format!("{version}, protocol {protocol}").into(),
            update_helper: helper_is_older,
        }))
    }

    /// Writes `request` and reads one answer, both by `deadline`.
    fn exchange(
        &mut self,
        request: &Request,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<Response, StoreError> {
        let line = wire::to_line(request);
        self.write_all(&line, timeout, deadline)?;
        let answer = self.read_line(timeout, deadline)?;
        wire::read_response(&answer).map_err(|reason| {
            StoreError::from(BridgeError::HelperFailed {
                command: self.command.clone(),
                reason,
            })
        })
    }

    fn write_all(
        &mut self,
        mut bytes: &[u8],
        timeout: Duration,
        deadline: Instant,
    ) -> Result<(), StoreError> {
        let Some(fd) = self.stdin.as_ref().map(AsRawFd::as_raw_fd) else {
            return Err(self.gone("its input is closed"));
        };
        while !bytes.is_empty() {
            // SAFETY: `bytes` is valid for its length; `fd` is our open pipe.
            let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if written >= 0 {
                bytes = &bytes[written.unsigned_abs()..];
                continue;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                ErrorKind::Interrupted => {}
                ErrorKind::WouldBlock => self.wait_for(fd, libc::POLLOUT, timeout, deadline)?,
                _ => return Err(self.gone(&format!("cannot write to it: {err}"))),
            }
        }
        Ok(())
    }

    /// One line of the answer, without its `\n` (or `\r\n`).
    fn read_line(
        &mut self,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let fd = self.stdout.as_raw_fd();
        loop {
            match self.lines.take() {
                Ok(Some(line)) => return Ok(line),
                Ok(None) => {}
                Err(too_long) => {
                    return Err(StoreError::from(BridgeError::HelperFailed {
                        command: self.command.clone(),
                        reason: format!("it sent {too_long}"),
                    }));
                }
            }
            self.wait_for(fd, libc::POLLIN, timeout, deadline)?;
            let mut chunk = Zeroizing::new([0u8; 8192]);
            // SAFETY: `chunk` is valid for its length; `fd` is our open pipe.
            let read = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            match read {
                0 => return Err(self.gone("it exited without answering")),
                1.. => {
                    let read = read.unsigned_abs();
                    self.lines.push(&chunk[..read]);
                }
                _ => {
                    let err = io::Error::last_os_error();
                    if err.kind() != ErrorKind::Interrupted {
                        return Err(self.gone(&format!("cannot read from it: {err}")));
                    }
                }
            }
        }
    }

    /// Waits until `fd` is ready for `events`, or fails at `deadline`.
    fn wait_for(
        &mut self,
        fd: RawFd,
        events: libc::c_short,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<(), StoreError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::from(BridgeError::HelperTimedOut {
                    command: self.command.clone(),
                    after: timeout,
                }));
            }
            let mut poll = libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd.
            match unsafe { libc::poll(&raw mut poll, 1, ms) } {
                1.. => return Ok(()),
                0 => {}
                _ => {
                    let err = io::Error::last_os_error();
                    if err.kind() != ErrorKind::Interrupted {
                        return Err(self.gone(&format!("cannot wait for it: {err}")));
                    }
                }
            }
        }
    }

    /// The helper stopped talking: why, with its exit status when known.
    fn gone(&self, what: &str) -> StoreError {
        let status = match self.exit_status() {
            Some(status) => format!(" ({status})"),
            None => String::new(),
        };
        StoreError::from(BridgeError::HelperFailed {
            command: self.command.clone(),
            reason: format!("{what}{status}"),
        })
    }

    /// The helper's exit status if it has exited, without reaping it: until
    /// [`Helper::kill`] reaps it, its pid stays reserved, so the process
    /// group named by that pid is still the one made for it.
    fn exit_status(&self) -> Option<ExitStatus> {
        let pid = libc::id_t::try_from(self.child.id()).ok()?;
        // SAFETY: an all-zero siginfo_t is valid; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid siginfo_t; WNOWAIT leaves the child
        // unreaped.
        let done = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &raw mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` for a child that changed state
        // (si_pid is 0 where none did).
        if done != 0 || unsafe { info.si_pid() } == 0 {
            return None;
        }
        // SAFETY: as above.
        let status = unsafe { info.si_status() };
        Some(if info.si_code == libc::CLD_EXITED {
            ExitStatus::from_raw(status << 8)
        } else {
            ExitStatus::from_raw(status)
        })
    }

    /// Ends the helper, once its answers are in or when it failed: closes
    /// its input (what a helper still reading takes as the end), kills its
    /// process group and reaps it. The group is killed even when the helper
    /// has exited, for what it started may still run and hold our pipe; it
    /// is still the helper's group, since the helper is only reaped here.
    fn kill(mut self) {
        self.stdin = None;
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        if pid > 0 {
            // SAFETY: signals the process group we made for the helper.
            unsafe { libc::killpg(pid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

/// The helper's command line (without ` bridge`), and how to show it.
fn helper_command() -> Result<(Vec<String>, String), StoreError> {
    if let Some(line) = std::env::var_os(HELPER_VARIABLE).filter(|line| !line.is_empty()) {
        let line = line.to_string_lossy().into_owned();
        return match shell_words::split(&line) {
            Ok(words) if !words.is_empty() => Ok((words, line)),
            _ => Err(StoreError::from(BridgeError::HelperFailed {
                command: line,
                reason: format!("{HELPER_VARIABLE} is not a command line"),
            })),
        };
    }
    match which::which(HELPER_PROGRAM) {
        Ok(path) => {
            let path = path.to_string_lossy().into_owned();
            Ok((vec![path.clone()], path))
        }
        Err(_) => Err(StoreError::from(BridgeError::HelperMissing {
            reason: format!("{HELPER_PROGRAM} is not on PATH and {HELPER_VARIABLE} is not set"),
        })),
    }
}

/// Why the helper did not start. Not found is no helper here; a Windows
/// program that cannot be executed means WSL interop is off or broken.
fn spawn_error(command: &str, err: &io::Error) -> StoreError {
    if err.kind() == ErrorKind::NotFound {
        return StoreError::from(BridgeError::HelperMissing {
            reason: format!("{command} was not found"),
        });
    }
    let reason = if err.raw_os_error() == Some(libc::ENOEXEC) {
        format!(
            "cannot execute it ({err}): WSL interop, which runs Windows programs, is off or \
             broken; check /proc/sys/fs/binfmt_misc/WSLInterop, or run `wsl --shutdown` in \
             Windows and try again"
        )
    } else {
        format!("cannot start it: {err}")
    };
    StoreError::from(BridgeError::HelperFailed {
        command: command.to_owned(),
        reason,
    })
}

/// Makes writes to `fd` return `EAGAIN` instead of blocking, so a helper
/// that stops reading cannot hold us past the deadline.
fn set_nonblocking(fd: RawFd) {
    // SAFETY: plain fcntl on our own open pipe end.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}
