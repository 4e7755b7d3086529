//! The test harness: a `Test` builder that runs the real binary in a temporary
//! project folder, with a stripped environment and, when asked, its own
//! private Secret Service.

pub mod agent;
pub mod bao;
pub mod container;
pub mod keyring;
pub mod sshd;
pub mod wine;

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use keyring::SecretService;
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_with-secrets");

/// No run may take longer; past this the test fails as a hang.
const HANG: Duration = Duration::from_secs(60);

/// A temporary project folder in which to run with-secrets.
pub struct Test {
    dir: TempDir,
    cwd: PathBuf,
    env: Vec<(OsString, OsString)>,
}

impl Test {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("with-secrets-test.")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("home")).expect("home");
        let cwd = dir.path().to_owned();
        let mut test = Self {
            env: Vec::new(),
            dir,
            cwd,
        };
        // The caller's environment is stripped; this is all a run sees.
        let home = test.path().join("home");
        test = test
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home);
        test
    }

    /// The project folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Points runs at `service`'s bus.
    pub fn keyring(self, service: &SecretService) -> Self {
        self.env("DBUS_SESSION_BUS_ADDRESS", service.address())
    }

    /// Writes `secrets.toml` in the project folder.
    pub fn manifest(self, text: &str) -> Self {
        self.file("secrets.toml", text)
    }

    pub fn file(self, path: &str, contents: impl AsRef<[u8]>) -> Self {
        let path = self.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(path, contents).expect("write fixture");
        self
    }

    /// Runs in `sub`, a folder below the project folder (created).
    pub fn cwd(mut self, sub: &str) -> Self {
        self.cwd = self.path().join(sub);
        std::fs::create_dir_all(&self.cwd).expect("cwd");
        self
    }

    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        let name = name.as_ref().to_owned();
        self.env.retain(|(n, _)| *n != name);
        self.env.push((name, value.as_ref().to_owned()));
        self
    }

    /// Starts with-secrets with `args` and `input` on standard input, without
    /// waiting for it: for tests that run several at once.
    pub fn spawn_input<I, S>(&self, args: I, input: &[u8]) -> std::process::Child
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn with-secrets");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input)
            .expect("write stdin");
        child
    }

    /// Runs with `input` on standard input.
    pub fn run_input<I, S>(&self, input: impl AsRef<[u8]>, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with(args, Some(input.as_ref()))
    }

    /// Runs `args` on a pseudo-terminal (through script(1)), typing `input` only
    /// once `prompt` has appeared, so the typing cannot race the echo switch.
    pub fn on_terminal(&self, args: &str, prompt: &str, input: &str) -> String {
        let command = format!("{} {args}", BIN);
        let mut child = self
            .script(&command)
            .spawn()
            .expect("script(1) from util-linux");
        let pid = child.id();
        let mut stdout = Reader::new(child.stdout.take().unwrap());
        let mut seen = if prompt.is_empty() {
            String::new()
        } else {
            stdout.until(prompt, pid)
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        seen.push_str(&stdout.rest(pid));
        let status = wait(child).status;
        assert!(status.success(), "{seen}");
        seen
    }

    /// Runs `args` on a pseudo-terminal and returns the transcript, whatever
    /// the exit status.
    pub fn on_terminal_status(&self, args: &str) -> String {
        let command = format!("{BIN} {args}; echo \"[exit $?]\"");
        let child = self
            .script(&command)
            .spawn()
            .expect("script(1) from util-linux");
        let output = wait(child);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// script(1) running the shell command `line` on a pseudo-terminal, in
    /// the project folder with the project's environment, stdin and stdout
    /// piped.
    pub fn script(&self, line: &str) -> Command {
        let mut script = Command::new("script");
        script
            .args(["-qec", line, "/dev/null"])
            .current_dir(self.path())
            .env_clear()
            .envs(self.envs())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        own_session_keyring(&mut script);
        script
    }

    /// Runs another program (make, sh, a recipe) in folder `cwd` below the
    /// project, with the project's environment; returns whether it succeeded
    /// and its stdout followed by its stderr.
    pub fn outside(&self, program: impl AsRef<OsStr>, args: &[&str], cwd: &str) -> (bool, String) {
        let program = program.as_ref();
        let mut command = Command::new(program);
        own_session_keyring(&mut command);
        let child = command
            .args(args)
            .current_dir(self.path().join(cwd))
            .env_clear()
            .envs(self.envs())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "{}: {err} (run ./scripts/test to install it)",
                    program.to_string_lossy()
                )
            });
        let output = wait(child);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// The environment every run gets.
    pub fn envs(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.env.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    /// The command, ready to run with `args`.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(BIN);
        command
            .args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.envs())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A session of its own, with no controlling terminal: a run is as
        // headless as in CI even when the suite is started from a terminal,
        // where with-secrets would otherwise ask there and wait for a person.
        // Tests that want a terminal use `script` and say so.
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        own_session_keyring(&mut command);
        command
    }

    /// What `-- sh -c 'printf …'` sees of each of `names`, joined by `|`;
    /// the run must succeed.
    pub fn seen(&self, names: &[&str]) -> String {
        self.seen_with(&[], names)
    }

    /// The same, with `flags` (such as `--store windows`) before the `--`.
    pub fn seen_with(&self, flags: &[&str], names: &[&str]) -> String {
        let script = names
            .iter()
            .map(|name| format!("\"${name}\""))
            .collect::<Vec<_>>()
            .join(" ");
        let format = vec!["%s"; names.len()].join("|");
        let printf = format!("printf '{format}' {script}");
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["--", "sh", "-c", &printf]);
        let run = self.run(&args);
        run.success();
        run.stdout()
    }

    /// Runs with-secrets with `args` and, for this run only, the variables
    /// `env` (an empty value is set, empty).
    pub fn run_env<I, S>(&self, env: &[(&str, &str)], args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(args);
        command.stdin(Stdio::null()).envs(env.iter().copied());
        Run::new(wait(command.spawn().expect("spawn with-secrets")))
    }

    /// Runs with-secrets with `args` and waits for it, failing on a hang.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with(args, None)
    }

    fn run_with<I, S>(&self, args: I, stdin: Option<&[u8]>) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(args);
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command.spawn().expect("spawn with-secrets");
        if let Some(input) = stdin {
            let mut stdin = child.stdin.take().expect("piped stdin");
            // with-secrets may exit before it reads, e.g. on a bad name.
            match stdin.write_all(input) {
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                    panic!("write stdin: {err}")
                }
                _ => {}
            }
        }
        Run::new(wait(child))
    }
}

/// Gives the process `command` starts an anonymous session keyring of its
/// own, joined before it runs: what with-secrets keeps for a login session
/// (the file store's key, the session cache) is then never read from or
/// written to the session keyring of whoever runs the tests, even one with
/// an unlock under way. Where the kernel keyring is blocked, there is
/// nothing to keep apart, and the call's failure is ignored.
pub fn own_session_keyring(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: keyctl is a system call, async-signal-safe; a null name asks
    // for an anonymous keyring, and nothing else is read or written.
    unsafe {
        command.pre_exec(|| {
            libc::syscall(
                libc::SYS_keyctl,
                libc::c_long::from(libc::KEYCTL_JOIN_SESSION_KEYRING),
                std::ptr::null::<libc::c_char>(),
            );
            Ok(())
        });
    }
}

/// Fails, saying why, where the suite is not run as root (CI runs it as
/// root; a test that needs it must not pass silently elsewhere).
#[track_caller]
pub fn needs_root(why: &str) {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(uid, 0, "this test needs root, as CI runs it: {why}");
}

/// Waits for `child`, reading its piped stdout and stderr meanwhile; fails
/// the test, after killing the child and its process group, if it has not
/// exited and closed both within `HANG` (a process it left behind may hold
/// them open).
pub fn wait(child: std::process::Child) -> Output {
    wait_for(child, HANG)
}

/// The same, with a deadline of `limit`.
pub fn wait_for(mut child: std::process::Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    let pid = child.id();
    let mut stdout = child.stdout.take().map(Reader::new);
    let mut stderr = child.stderr.take().map(Reader::new);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            kill_group(pid);
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let rest = |reader: &mut Option<Reader>| match reader {
        Some(reader) => reader.rest_by(deadline),
        None => Ok(Vec::new()),
    };
    let (out, err) = (rest(&mut stdout), rest(&mut stderr));
    match (status, out, err) {
        (Some(status), Ok(stdout), Ok(stderr)) => Output {
            status,
            stdout,
            stderr,
        },
        (status, out, err) => {
            kill_group(pid);
            let text = |bytes: Result<Vec<u8>, Vec<u8>>| {
                String::from_utf8_lossy(&bytes.unwrap_or_else(|partial| partial)).into_owned()
            };
            panic!(
                "process {pid} hung for {limit:?} ({}): stdout so far:\n{}\nstderr so far:\n{}",
                match status {
                    Some(status) => format!("it exited ({status}), but its output stayed open"),
                    None => "it never exited".to_owned(),
                },
                text(out),
                text(err)
            );
        }
    }
}

/// `Command::output` with a deadline (see `wait`): stdin closed, stdout and
/// stderr read.
pub trait BoundedOutput {
    fn bounded_output(&mut self) -> std::io::Result<Output>;
}

impl BoundedOutput for Command {
    fn bounded_output(&mut self) -> std::io::Result<Output> {
        let child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(wait(child))
    }
}

/// Kills process group `pid`: a child started in a session of its own (as
/// `Test::command` does) and whatever it left running. A `pid` that leads
/// no group is no group's ID, so nothing else can be hit; 0 (no process)
/// kills nothing.
pub fn kill_group(pid: u32) {
    if let Ok(pid @ 2..) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// A child's pipe, read on a thread of its own, so that every read has a
/// deadline.
pub struct Reader {
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Reader {
    pub fn new(mut from: impl std::io::Read + Send + 'static) -> Self {
        let (send, chunks) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        if send.send(buffer[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        Self {
            chunks,
            seen: Vec::new(),
        }
    }

    /// Reads until `needle` comes, and returns what came up to and including
    /// it (the rest is kept for the next call). Fails the test, after
    /// killing process group `pid` (see `kill_group`), past `HANG` or at
    /// the end of the stream.
    #[track_caller]
    pub fn until(&mut self, needle: &str, pid: u32) -> String {
        let deadline = Instant::now() + HANG;
        let needle = needle.as_bytes();
        loop {
            if let Some(at) = self.seen.windows(needle.len()).position(|w| w == needle) {
                let rest = self.seen.split_off(at + needle.len());
                let upto = std::mem::replace(&mut self.seen, rest);
                return String::from_utf8_lossy(&upto).into_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(err) => {
                    kill_group(pid);
                    panic!(
                        "waiting for {:?} ({}), read only: {:?}",
                        String::from_utf8_lossy(needle),
                        match err {
                            std::sync::mpsc::RecvTimeoutError::Timeout => "hung",
                            std::sync::mpsc::RecvTimeoutError::Disconnected => "end of stream",
                        },
                        String::from_utf8_lossy(&self.seen)
                    );
                }
            }
        }
    }

    /// Reads to the end of the stream and returns what was not yet returned;
    /// fails the test, after killing process group `pid`, past `HANG`.
    #[track_caller]
    pub fn rest(&mut self, pid: u32) -> String {
        match self.rest_by(Instant::now() + HANG) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(partial) => {
                kill_group(pid);
                panic!(
                    "the stream never ended within {HANG:?}; read: {:?}",
                    String::from_utf8_lossy(&partial)
                );
            }
        }
    }

    /// Everything up to the end of the stream, or, past `deadline`, `Err`
    /// with what came so far.
    fn rest_by(&mut self, deadline: Instant) -> Result<Vec<u8>, Vec<u8>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Ok(std::mem::take(&mut self.seen));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    return Err(std::mem::take(&mut self.seen));
                }
            }
        }
    }
}

/// Puts the signals a test sends (and SIGPIPE) at their default action and
/// unblocks every signal in `command`'s process, whatever the test process
/// inherited: under nohup SIGHUP is ignored, in a background job of a shell
/// without job control SIGINT and SIGQUIT are, and an ignored signal stays
/// ignored across exec. For tests that check how a process reacts to a
/// signal; a test of the "ignored stays ignored" rule sets that up itself.
pub fn default_signals(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2) and sigprocmask(2) are async-signal-safe, and
    // nothing else runs here.
    unsafe {
        command.pre_exec(|| {
            for signal in [
                libc::SIGHUP,
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGTERM,
                libc::SIGPIPE,
            ] {
                if libc::signal(signal, libc::SIG_DFL) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Run {
    pub output: Output,
}

impl Run {
    fn new(output: Output) -> Self {
        Self { output }
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub fn success(&self) -> &Self {
        self.expect_code(0)
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        let stderr = self.stderr();
        assert!(
            stderr.contains(needle),
            "stderr lacks {needle:?}:\n{stderr}"
        );
        self
    }

    #[track_caller]
    pub fn stderr_lacks(&self, needle: &str) -> &Self {
        let stderr = self.stderr();
        assert!(!stderr.contains(needle), "stderr has {needle:?}:\n{stderr}");
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    pub fn stdout_is(&self, expected: &str) -> &Self {
        assert_eq!(self.stdout(), expected, "stderr:\n{}", self.stderr());
        self
    }

    /// Asserts that `secret` appears nowhere in stdout or stderr.
    #[track_caller]
    pub fn never_shows(&self, secret: &str) -> &Self {
        assert!(
            !self.stdout().contains(secret) && !self.stderr().contains(secret),
            "a secret leaked:\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// A one-entry manifest for `NAME` at (`service`, `username`).
pub fn manifest_for(entries: &[(&str, &str, &str)]) -> String {
    let mut text = String::from("[secrets]\n");
    for (name, service, username) in entries {
        text.push_str(&format!(
            "{name} = {{ service = {service:?}, username = {username:?} }}\n"
        ));
    }
    text
}

/// The Python with `keyring`, `keyrings.alt`, `pycryptodome` and
/// `python-dotenv` that scripts/test installs in a venv.
pub fn python() -> PathBuf {
    let python = std::env::var_os("WITH_SECRETS_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python")
        });
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test, which makes the venv",
        python.display()
    );
    python
}

impl Test {
    /// Runs Python (`args`, e.g. `-c CODE`) in this project's environment.
    pub fn python(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(python())
            .args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.envs())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(stdin.as_bytes())
            .expect("python stdin");
        let output = wait(child);
        assert!(
            output.status.success(),
            "python {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Python's `keyring` CLI on its Secret Service backend.
    pub fn keyring_cli(&self, args: &[&str], stdin: &str) -> String {
        let mut full = vec![
            "-m",
            "keyring",
            "-b",
            "keyring.backends.SecretService.Keyring",
        ];
        full.extend_from_slice(args);
        String::from_utf8(self.python(&full, stdin).stdout).expect("utf-8")
    }
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_symlink() {
            continue;
        }
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            found.push(path);
        }
    }
    found
}
