//! A `with-secrets agent` for one test: started as a child in a session
//! (and process group) of its own with the host's environment (its HOME,
//! XDG folders and keyring), its socket learnt from the one line it prints,
//! its log on stderr readable with a deadline; SIGTERMed and reaped when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Reader, Run, Test, default_signals, kill_group};

/// How long an agent may take to print its line or end after a signal.
const READY: Duration = Duration::from_secs(60);

/// A running agent.
pub struct Agent {
    child: Option<Child>,
    pid: u32,
    /// The line it printed on stdout, newline included.
    pub line: String,
    /// The socket that line names.
    pub socket: PathBuf,
    stderr: Reader,
    /// The log read so far by `log_until`.
    log: String,
}

impl Agent {
    /// Runs `with-secrets ARGS` (ARGS include `agent` and its flags) in
    /// `host`'s folder with `host`'s environment, and waits for the line
    /// that names its socket.
    #[track_caller]
    pub fn start(host: &Test, args: &[&str]) -> Self {
        let mut command = host.command(args);
        command.stdin(Stdio::null());
        default_signals(&mut command);
        let mut child = command.spawn().expect("spawn with-secrets agent");
        let pid = child.id();
        let mut stdout = Reader::new(child.stdout.take().expect("piped stdout"));
        let stderr = Reader::new(child.stderr.take().expect("piped stderr"));
        let mut agent = Self {
            child: Some(child),
            pid,
            line: String::new(),
            socket: PathBuf::new(),
            stderr,
            log: String::new(),
        };
        agent.line = stdout.until("; export WITH_SECRETS_AGENT;\n", pid);
        let quoted = agent
            .line
            .strip_prefix("WITH_SECRETS_AGENT=")
            .and_then(|rest| rest.strip_suffix("; export WITH_SECRETS_AGENT;\n"))
            .unwrap_or_else(|| panic!("not the line to export: {:?}", agent.line));
        let words = shell_words::split(quoted).expect("a sh-quoted path");
        assert_eq!(words.len(), 1, "one path: {quoted:?}");
        agent.socket = PathBuf::from(&words[0]);
        agent
    }

    /// A client project elsewhere, as in a container: another HOME, no
    /// session bus or XDG_RUNTIME_DIR, only WITH_SECRETS_AGENT, and
    /// `manifest`.
    pub fn client(&self, manifest: &str) -> Test {
        Test::new()
            .manifest(manifest)
            .env("WITH_SECRETS_AGENT", &self.socket)
    }

    /// Reads the agent's log until `needle`; returns what came, up to and
    /// including it. Fails the test past the deadline.
    #[track_caller]
    pub fn log_until(&mut self, needle: &str) -> String {
        let upto = self.stderr.until(needle, self.pid);
        self.log.push_str(&upto);
        upto
    }

    /// Its process id, for a signal sent from a script.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to the agent.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid).expect("a pid");
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
    }

    /// SIGKILLs the agent (and its group) and reaps it: it has no chance to
    /// remove its socket.
    pub fn kill(&mut self) {
        kill_group(self.pid);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Sends `signal` and waits, with a deadline, for the agent to end and
    /// close its stderr; its status and its whole log (what `log_until`
    /// read, then the rest).
    #[track_caller]
    pub fn stop(mut self, signal: libc::c_int) -> Run {
        self.signal(signal);
        let mut child = self.child.take().expect("a running agent");
        let deadline = Instant::now() + READY;
        let status: ExitStatus = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                kill_group(self.pid);
                let _ = child.wait();
                panic!("the agent did not end within {READY:?} of signal {signal}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let rest = self.stderr.rest(self.pid);
        let mut log = std::mem::take(&mut self.log);
        log.push_str(&rest);
        Run {
            output: Output {
                status,
                stdout: self.line.clone().into_bytes(),
                stderr: log.into_bytes(),
            },
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.signal_quietly(libc::SIGTERM);
            let deadline = Instant::now() + READY;
            while matches!(child.try_wait(), Ok(None)) {
                if Instant::now() > deadline {
                    kill_group(self.pid);
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // A failing test shows what the agent said.
            if std::thread::panicking() {
                let rest = self.stderr.rest(self.pid);
                eprintln!("the agent's log:\n{}{rest}", self.log);
            }
        }
    }
}

impl Agent {
    fn signal_quietly(&self, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

/// The mode bits of `path` (without following a symlink).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}
