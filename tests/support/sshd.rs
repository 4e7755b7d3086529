//! A real OpenSSH server per test: Debian's `/usr/sbin/sshd` in the
//! foreground (`-D -e`) on 127.0.0.1 on a port of its own, with a config,
//! a host key and an authorized client key of its own in a temporary
//! folder, killed when dropped. `Sshd::run` runs `ssh` against it, with
//! `-R REMOTE:LOCAL` Unix-socket forwards, the way a developer reaches a
//! remote machine: the tests run as root, so the "remote" user is root on
//! this same machine.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::bao::free_port;
use super::{BoundedOutput, HANG, Run, wait_for};

/// How long sshd may take to listen.
const READY: Duration = Duration::from_secs(30);

/// How long, in 0.05 s steps, the remote command waits for a forwarded
/// socket to appear (10 s).
const SOCKET_POLLS: u32 = 200;

/// The exit status of the remote command when a forwarded socket never
/// appeared.
pub const NO_SOCKET: i32 = 97;

/// A running sshd.
pub struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Sshd {
    /// Makes the keys and the config, starts sshd and waits until it
    /// listens (another port, up to 10 times, when a test took the port
    /// first).
    pub fn start() -> Self {
        super::needs_root("sshd logs in as root, the remote user");
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "{} is missing: run ./scripts/test, which installs openssh-server",
            sshd.display()
        );
        // sshd's privilege-separation folder; a service would make it.
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("with-secrets-sshd.")
            .tempdir()
            .expect("temp dir");
        keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("client_key"));
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        std::fs::create_dir(dir.path().join("home")).expect("client home");
        let port = free_port();
        let child = spawn(dir.path(), port);
        let mut server = Self { child, dir, port };
        for _ in 0..10 {
            if server.wait_ready() {
                let host = std::fs::read_to_string(server.dir().join("host_key.pub"))
                    .expect("host_key.pub");
                std::fs::write(
                    server.known_hosts(),
                    format!("[127.0.0.1]:{} {host}", server.port),
                )
                .expect("known_hosts");
                return server;
            }
            // Lost the port to another test: try another.
            let log = server.log();
            assert!(
                log.contains("Address already in use"),
                "sshd did not start:\n{log}"
            );
            server.port = free_port();
            server.child = spawn(server.dir(), server.port);
        }
        panic!("sshd found no free port in 10 tries");
    }

    /// Whether it logs that it listens before `READY`; `false` when it
    /// exited first.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + READY;
        let listening = format!("Server listening on 127.0.0.1 port {}", self.port);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.log().contains(&listening) {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "sshd was not listening within {READY:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The folder of its config, keys and log; free for a test's own files
    /// (sockets, for one: its path is short).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// `ssh` to root@127.0.0.1 on this server, ready to spawn: no prompt
    /// (BatchMode, its own known_hosts, strict host key checking), none
    /// of the caller's config, agent or keys (HOME is a folder of its own),
    /// each `(remote, local)` in `forwards` as `-R remote:local`, with
    /// ExitOnForwardFailure. The remote shell first waits, by a bounded
    /// poll, for each remote socket to appear (exiting `NO_SOCKET` if one
    /// never does), then runs `remote`, a shell command line, with root's
    /// login environment (see `clean_env`). stdin is closed, stdout and
    /// stderr piped.
    pub fn command(&self, forwards: &[(&Path, &Path)], remote: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(self.dir.path().join("client_key"))
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
            .args(["-o", "ExitOnForwardFailure=yes", "-o", "ConnectTimeout=30"])
            .args(["-o", "LogLevel=ERROR", "-T"])
            .arg("-p")
            .arg(self.port.to_string());
        let mut script = String::new();
        for (remote, local) in forwards {
            command
                .arg("-R")
                .arg(format!("{}:{}", remote.display(), local.display()));
            let remote = quote(&remote.to_string_lossy());
            script.push_str(&format!(
                "i=0; until [ -S {remote} ]; do i=$((i+1)); \
                 if [ $i -gt {SOCKET_POLLS} ]; then echo \"no forwarded socket \"{remote} >&2; exit {NO_SOCKET}; fi; \
                 sleep 0.05; done; "
            ));
        }
        script.push_str(remote);
        command
            .arg("root@127.0.0.1")
            .arg(script)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A process group of its own, which `wait_for` kills on a hang.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
    }

    /// Runs `remote` over ssh (see `command`) and waits for it, failing
    /// the test past `HANG`.
    pub fn run(&self, forwards: &[(&Path, &Path)], remote: &str) -> Run {
        self.run_for(forwards, remote, HANG)
    }

    /// The same, failing the test past `limit`.
    pub fn run_for(&self, forwards: &[(&Path, &Path)], remote: &str, limit: Duration) -> Run {
        let child = self.command(forwards, remote).spawn().expect("spawn ssh");
        Run::new(wait_for(child, limit))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts sshd in the foreground with a config in `dir` for `port`, its
/// log in `dir/sshd.log`.
fn spawn(dir: &Path, port: u16) -> Child {
    let config = dir.join("sshd_config");
    std::fs::write(&config, config_text(dir, port)).expect("sshd_config");
    let log = std::fs::File::create(dir.join("sshd.log")).expect("log");
    Command::new("/usr/sbin/sshd")
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start sshd")
}

/// sshd's config for a test in `dir`, listening on `port`.
fn config_text(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        "ListenAddress 127.0.0.1:{port}\n\
         HostKey {dir}/host_key\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         PidFile {dir}/sshd.pid\n\
         StrictModes no\n\
         UsePAM no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\n\
         AllowStreamLocalForwarding yes\n\
         StreamLocalBindUnlink yes\n\
         X11Forwarding no\n\
         PrintMotd no\n\
         LogLevel INFO\n"
    )
}

/// `ssh-keygen -t ed25519 -N ''` into `path` and `path.pub`.
fn keygen(path: &Path) {
    let output = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "with-secrets-test",
            "-f",
        ])
        .arg(path)
        .bounded_output()
        .expect("ssh-keygen (openssh-client; run ./scripts/test)");
    assert!(
        output.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `text` quoted for a POSIX shell.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The shell command line that runs `program` with `args` and only the
/// variables `env`: `env -i NAME=VALUE... PROGRAM ARGS...`, each word
/// quoted. The remote login shell otherwise hands it root's environment
/// (HOME=/root, what /root/.bashrc sets).
pub fn clean_env<S: AsRef<OsStr>>(env: &[(&str, &str)], program: &str, args: &[S]) -> String {
    let mut line = String::from("exec env -i");
    for (name, value) in env {
        line.push(' ');
        line.push_str(&quote(&format!("{name}={value}")));
    }
    line.push(' ');
    line.push_str(&quote(program));
    for arg in args {
        line.push(' ');
        line.push_str(&quote(&arg.as_ref().to_string_lossy()));
    }
    line
}
