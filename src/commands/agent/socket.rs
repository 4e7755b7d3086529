//! Where the agent listens: the socket (and the private folder made for
//! it), what removes it on a stop signal, and who is at the other end of a
//! connection.

use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::log;
use crate::error::Error;
use crate::term::printable::printable_path;

/// The socket, and the private folder made for it, if one was.
#[derive(Clone)]
pub(super) struct Place {
    pub(super) socket: PathBuf,
    folder: Option<PathBuf>,
    pub(super) listener: Arc<UnixListener>,
}

impl Place {
    /// Listens at `socket`, or at `agent.sock` in a new private folder.
    /// A socket nobody listens on (its agent died) is replaced; one an
    /// agent answers on is left alone, and this is an error.
    pub(super) fn bind(socket: Option<&Path>) -> Result<Self, Error> {
        let failed = |what: String| Error::Agent { message: what };
        // The line it prints must name the very path it listens on.
        if socket.is_some_and(|path| path.to_str().is_none()) {
            return Err(failed(
                "the --socket path is not UTF-8, so the line to export could not name it\n  \
                 choose a path in UTF-8"
                    .to_owned(),
            ));
        }
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
                // Only our own: another user's socket is theirs to remove.
                Err(_) if std::os::unix::fs::MetadataExt::uid(&metadata) != current_uid() => {
                    return Err(failed(format!(
                        "{} is another user's socket; nothing was changed\n  choose another \
                         path with --socket",
                        printable_path(&socket)
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

    pub(super) fn remove(&self) {
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
pub(super) fn block_stop_signals() -> libc::sigset_t {
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
pub(super) fn spawn_stopper(signals: libc::sigset_t, place: Place) {
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

/// Who is at the other end of a connection.
pub(super) struct Peer {
    pid: Option<i32>,
    pub(super) uid: u32,
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
pub(super) fn peer(stream: &UnixStream) -> std::io::Result<Peer> {
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
pub(super) fn peer(stream: &UnixStream) -> std::io::Result<Peer> {
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: valid out parameters, on our open socket.
    if unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Peer { pid: None, uid })
}

pub(super) fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}
