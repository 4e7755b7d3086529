//! The parts the agent's tests run on, proven without the agent: a Unix
//! socket on the host reached from inside a "container" (new mount and PID
//! namespaces, the socket bind-mounted at /run/with-secrets.sock) and from
//! the remote side of a real `ssh -R` to a real sshd.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::container::{self, Container, Podman};
use crate::support::sshd::{self, Sshd};

/// Debian's Python, the client on the far side of the socket.
const PYTHON: &str = "/usr/bin/python3";

/// Sends argv[2] to the Unix socket argv[1], closes its sending side and
/// prints what comes back until the server closes; 30 s at most.
const CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode())
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    got += chunk
sys.stdout.write(got.decode())
"#;

/// A Unix-socket server on a thread: each connection gets back what it
/// sent, once it closes its sending side. Stopped when dropped.
struct Echo {
    path: PathBuf,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Echo {
    fn start(path: &Path) -> Self {
        let listener = UnixListener::bind(path).expect("bind the echo socket");
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (served.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let timeout = Some(Duration::from_secs(30));
                let _ = stream.set_read_timeout(timeout);
                let _ = stream.set_write_timeout(timeout);
                let mut got = Vec::new();
                if stream.read_to_end(&mut got).is_ok() && stream.write_all(&got).is_ok() {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self {
            path: path.to_owned(),
            served,
            stop,
        }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees `stop`.
        let _ = UnixStream::connect(&self.path);
    }
}

#[test]
fn a_container_reaches_a_host_socket_at_run_with_secrets_sock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let echo = Echo::start(&dir.path().join("agent.sock"));
    let run = Container::new().socket(&echo.path).run(
        PYTHON,
        &["-c", CLIENT, container::SOCKET, "through-the-bind-mount"],
    );
    run.success().stdout_is("through-the-bind-mount");
    assert_eq!(echo.served(), 1);
}

/// Inside: PID 1, a /run with only the socket (and mount(8)'s own folder),
/// no session bus or runtime folder, another HOME; the host keeps its /run.
#[test]
fn a_container_sees_its_own_pids_run_and_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let echo = Echo::start(&dir.path().join("agent.sock"));
    let container = Container::new()
        .socket(&echo.path)
        .cwd(dir.path())
        .env("WITH_SECRETS_AGENT", container::SOCKET);
    let run = container.run(
        "sh",
        &[
            "-c",
            "echo $$; ls -A /run; echo ---; env | sort; test -S /run/with-secrets.sock",
        ],
    );
    run.success();
    let stdout = run.stdout();
    let (head, env) = stdout.split_once("---\n").expect("separator");
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("1"), "not PID 1 inside:\n{stdout}");
    let run_entries: Vec<&str> = lines.collect();
    assert!(
        run_entries.contains(&"with-secrets.sock")
            && run_entries
                .iter()
                .all(|entry| ["with-secrets.sock", "mount"].contains(entry)),
        "/run inside:\n{stdout}"
    );
    let names: Vec<&str> = env
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    for name in names
        .iter()
        .filter(|name| **name != "PWD" && **name != "SHLVL")
    {
        assert!(
            ["PATH", "HOME", "WITH_SECRETS_AGENT"].contains(name),
            "{name} leaked in:\n{env}"
        );
    }
    assert!(
        env.contains(&format!("HOME={}\n", container.home().display())),
        "{env}"
    );
    assert!(
        env.contains(&format!("PWD={}\n", dir.path().display())),
        "{env}"
    );
    assert!(
        env.contains("WITH_SECRETS_AGENT=/run/with-secrets.sock\n"),
        "{env}"
    );
}

#[test]
fn ssh_dash_r_forwards_a_local_socket_to_the_remote_side() {
    let sshd = Sshd::start();
    let echo = Echo::start(&sshd.dir().join("agent.sock"));
    let remote_dir = tempfile::tempdir().expect("remote temp dir");
    let remote = remote_dir.path().join("with-secrets.sock");
    let line = sshd::clean_env(
        &[("PATH", "/usr/bin:/bin")],
        PYTHON,
        &["-c", CLIENT, &remote.to_string_lossy(), "through-ssh"],
    );
    let run = sshd.run(&[(&remote, &echo.path)], &line);
    run.success().stdout_is("through-ssh");
    assert_eq!(echo.served(), 1);
    assert!(
        sshd.log().contains("Accepted publickey for root"),
        "{}",
        sshd.log()
    );
}

/// The remote command sees only what `clean_env` gives it, not root's
/// login environment.
#[test]
fn ssh_remote_command_runs_with_a_clean_environment() {
    let sshd = Sshd::start();
    let line = sshd::clean_env(
        &[("HOME", "/nonexistent"), ("A", "it's")],
        "/usr/bin/env",
        &[] as &[&str],
    );
    let run = sshd.run(&[], &line);
    run.success().stdout_is("HOME=/nonexistent\nA=it's\n");
}

/// A real runtime, as README's `docker run -v` recipe: podman mounts the
/// host socket at /run/with-secrets.sock, and a project folder.
#[test]
fn podman_run_reaches_a_host_socket_mounted_with_dash_v() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("marker"), "through-podman").expect("marker");
    let echo = Echo::start(&dir.path().join("agent.sock"));
    let podman = Podman::start()
        .volume(dir.path(), "/project:ro")
        .socket(&echo.path)
        .env("WITH_SECRETS_AGENT", container::SOCKET);
    let run = podman.run(
        "sh",
        &[
            "-c",
            "exec /usr/bin/python3 -c \"$0\" \"$WITH_SECRETS_AGENT\" \"$(cat /project/marker)\"",
            CLIENT,
        ],
    );
    run.success().stdout_is("through-podman");
    assert_eq!(echo.served(), 1);
}
