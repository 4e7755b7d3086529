//! A command run as in a dev container, without a container runtime: new
//! mount and PID namespaces (`unshare --mount --pid --fork --mount-proc`,
//! as root), a private tmpfs on /run so nothing of the host's /run is
//! there (no session bus, no runtime folder), the agent's socket
//! bind-mounted at `/run/with-secrets.sock` as `docker run -v` would, a
//! HOME of its own, and an environment cleared but for PATH and what the
//! test sets. The host's other folders stay visible (the binary under
//! test, a test's project folder), as a dev container's bind mounts are.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{HANG, Run, wait_for};

/// Where the socket appears inside.
pub const SOCKET: &str = "/run/with-secrets.sock";

/// What runs inside before the command: `$1` is the socket to bind-mount
/// (or empty), the rest the command.
const SETUP: &str = r#"set -eu
mount -t tmpfs -o mode=0755 tmpfs /run
if [ -n "$1" ]; then
    : > /run/with-secrets.sock
    mount --bind "$1" /run/with-secrets.sock
fi
shift
exec "$@"
"#;

/// The container's settings; `run` or `command` to use them.
pub struct Container {
    socket: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    home: tempfile::TempDir,
}

impl Container {
    /// No socket, HOME a new empty folder, PATH the test's.
    pub fn new() -> Self {
        let home = tempfile::Builder::new()
            .prefix("with-secrets-container-home.")
            .tempdir()
            .expect("temp dir");
        let container = Self {
            socket: None,
            env: Vec::new(),
            cwd: None,
            home,
        };
        let home = container.home.path().to_owned();
        container
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
    }

    /// Bind-mounts the socket `host` at `SOCKET` inside.
    pub fn socket(mut self, host: &Path) -> Self {
        self.socket = Some(host.to_owned());
        self
    }

    /// Sets `name` inside (HOME and PATH too).
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        let name = name.as_ref().to_owned();
        self.env.retain(|(n, _)| *n != name);
        self.env.push((name, value.as_ref().to_owned()));
        self
    }

    /// Runs in `dir` (a host folder, seen inside at the same path).
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    /// The HOME made for it (unless `env` set another).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `program` with `args` inside, ready to spawn: stdin closed, stdout
    /// and stderr piped, in a process group of its own (which `wait_for`
    /// kills on a hang; `--kill-child` takes the namespace's processes
    /// down with unshare).
    pub fn command<S: AsRef<OsStr>>(&self, program: impl AsRef<OsStr>, args: &[S]) -> Command {
        super::needs_root("unshare makes mount and PID namespaces, and mounts");
        let mut command = Command::new("unshare");
        command
            .args([
                "--mount",
                "--propagation",
                "private",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "sh",
                "-c",
                SETUP,
                "container-setup",
            ])
            .arg(self.socket.as_deref().unwrap_or(Path::new("")))
            .arg(program)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
    }

    /// Runs `program` with `args` inside and waits for it, failing the
    /// test past `HANG`.
    pub fn run<S: AsRef<OsStr>>(&self, program: impl AsRef<OsStr>, args: &[S]) -> Run {
        self.run_for(program, args, HANG)
    }

    /// The same, failing the test past `limit`.
    pub fn run_for<S: AsRef<OsStr>>(
        &self,
        program: impl AsRef<OsStr>,
        args: &[S],
        limit: Duration,
    ) -> Run {
        let child = self
            .command(program, args)
            .spawn()
            .expect("unshare (util-linux; run ./scripts/test)");
        Run::new(wait_for(child, limit))
    }
}
