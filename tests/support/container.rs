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

use super::{BoundedOutput, HANG, Run, wait_for};

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

/// A real container runtime: Debian's podman, with storage of its own in a
/// temporary folder, running an image imported from a tarball (no registry
/// is needed) that holds only empty folders and Debian's usr-merge links;
/// the host's /usr is mounted read-only into each container, for its
/// programs. The socket goes in with `-v HOST:/run/with-secrets.sock`,
/// as README's `docker run` recipe does.
///
/// What it takes on a machine like CI's (cgroups v1 with a v2 hierarchy
/// beside them, root without CAP_SYS_RESOURCE): runc, as crun 1.8 stops at
/// "cgroups in hybrid mode not supported"; the cgroupfs manager (no
/// systemd); and limits no higher than ours, as podman's default
/// RLIMIT_NOFILE and RLIMIT_NPROC fail in crun's and runc's `setrlimit`
/// with "Operation not permitted".
pub struct Podman {
    dir: tempfile::TempDir,
    socket: Option<PathBuf>,
    volumes: Vec<(PathBuf, String)>,
    env: Vec<(OsString, OsString)>,
    options: Vec<OsString>,
}

/// The image every `Podman` imports into its own storage.
const IMAGE: &str = "localhost/with-secrets-test:latest";

impl Podman {
    /// Makes the storage and imports the image.
    pub fn start() -> Self {
        super::needs_root("podman runs rootful, with storage in a temp dir");
        assert!(
            Path::new("/usr/bin/podman").exists() && Path::new("/usr/sbin/runc").exists(),
            "podman or runc is missing: run ./scripts/test, which installs them"
        );
        let dir = tempfile::Builder::new()
            .prefix("with-secrets-podman.")
            .tempdir()
            .expect("temp dir");
        let rootfs = dir.path().join("rootfs");
        for folder in ["usr", "run", "tmp", "proc", "dev", "sys", "etc", "root"] {
            std::fs::create_dir_all(rootfs.join(folder)).expect("rootfs folder");
        }
        for link in ["bin", "sbin", "lib", "lib64"] {
            std::os::unix::fs::symlink(format!("usr/{link}"), rootfs.join(link))
                .expect("rootfs link");
        }
        let tarball = dir.path().join("rootfs.tar");
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .bounded_output()
            .expect("tar");
        assert!(tar.status.success(), "tar: {tar:?}");
        let podman = Self {
            dir,
            socket: None,
            volumes: vec![(PathBuf::from("/usr"), "/usr:ro".to_owned())],
            env: Vec::new(),
            options: Vec::new(),
        };
        let mut import = podman.podman();
        import.arg("import").arg("-q").arg(&tarball).arg(IMAGE);
        let output = import.bounded_output().expect("podman import");
        assert!(
            output.status.success(),
            "podman import: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        podman
    }

    /// Mounts the socket `host` at `SOCKET` inside.
    pub fn socket(mut self, host: &Path) -> Self {
        self.socket = Some(host.to_owned());
        self
    }

    /// Mounts `host` at `inside` (`PATH` or `PATH:ro`, as `-v` takes it).
    pub fn volume(mut self, host: &Path, inside: &str) -> Self {
        self.volumes.push((host.to_owned(), inside.to_owned()));
        self
    }

    /// Sets `name` inside (`-e`).
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((name.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Gives `podman run` these options as they are (`-v HOST:INSIDE`,
    /// `--mount type=bind,...`, `-e NAME=VALUE`, `-w DIR`), after the ones
    /// above: a recipe's own words.
    pub fn options<S: AsRef<OsStr>>(mut self, options: &[S]) -> Self {
        self.options
            .extend(options.iter().map(|option| option.as_ref().to_owned()));
        self
    }

    /// podman with this instance's storage and settings.
    fn podman(&self) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("runroot"))
            .arg("--tmpdir")
            .arg(dir.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--runtime", "runc", "--events-backend", "none"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// `podman run --rm` of `program` with `args`, ready to spawn: stdin
    /// closed, stdout and stderr piped, in a process group of its own.
    pub fn command<S: AsRef<OsStr>>(&self, program: impl AsRef<OsStr>, args: &[S]) -> Command {
        let mut command = self.podman();
        let (nofile, nproc) = limits();
        command
            .args(["run", "--rm", "--network", "none"])
            .arg("--ulimit")
            .arg(format!("nofile={nofile}:{nofile}"))
            .arg("--ulimit")
            .arg(format!("nproc={nproc}:{nproc}"));
        for (host, inside) in &self.volumes {
            command
                .arg("-v")
                .arg(format!("{}:{inside}", host.display()));
        }
        if let Some(socket) = &self.socket {
            command
                .arg("-v")
                .arg(format!("{}:{SOCKET}", socket.display()));
        }
        for (name, value) in &self.env {
            let mut pair = name.clone();
            pair.push("=");
            pair.push(value);
            command.arg("-e").arg(pair);
        }
        command.args(&self.options);
        command.arg(IMAGE).arg(program).args(args);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
    }

    /// Runs `program` with `args` in a container and waits for it, failing
    /// the test past `HANG`.
    pub fn run<S: AsRef<OsStr>>(&self, program: impl AsRef<OsStr>, args: &[S]) -> Run {
        let child = self.command(program, args).spawn().expect("podman run");
        Run::new(wait_for(child, HANG))
    }
}

/// RLIMIT_NOFILE and RLIMIT_NPROC for a container: our own hard limits,
/// the second at most 4096 (runc could not set it to ours here).
fn limits() -> (u64, u64) {
    let hard = |resource| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes only into `limit`.
        let ok = unsafe { libc::getrlimit(resource, &mut limit) } == 0;
        assert!(ok, "getrlimit: {}", std::io::Error::last_os_error());
        limit.rlim_max
    };
    (
        hard(libc::RLIMIT_NOFILE),
        hard(libc::RLIMIT_NPROC).min(4096),
    )
}
