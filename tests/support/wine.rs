//! The Windows build of with-secrets under Wine: built once per test
//! process, run in one Wine prefix per test process, in a temporary folder.
//!
//! A prefix takes about 5 s to create here (`wineboot -i`), so the tests of
//! one process share one, with one `wineserver` kept running for them all;
//! each test uses service names of its own, so they stay independent and run
//! in parallel. The prefix's Credential Manager is the only keyring these
//! tests touch: it lives in the prefix's registry, in the temporary folder.
//!
//! Needs what scripts/install-deps and scripts/test install: the Rust target
//! `x86_64-pc-windows-gnu`, mingw-w64 (`x86_64-w64-mingw32-gcc`) and Wine.
//! Without them every test here fails, saying which is missing.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{BoundedOutput, Run, Test};

/// How long the prefix may take to be made; past this the set-up fails.
const BOOT: Duration = Duration::from_secs(120);

/// No run under Wine may take longer; past this the test fails as a hang.
const RUN: Duration = Duration::from_secs(60);

/// How long `wineserver` outlives its last client when this process dies
/// without cleaning up (killed); a normal exit stops it at once.
const LINGER_SECS: u32 = 60;

/// The shared Wine set-up of this test process.
pub struct Wine {
    root: PathBuf,
    prefix: PathBuf,
    exe: PathBuf,
    standin: PathBuf,
    impostor: PathBuf,
}

static WINE: OnceLock<Result<Wine, String>> = OnceLock::new();

/// The Wine set-up, made by the first test that asks for it. If that fails,
/// every test that asks fails with the same message, without trying again.
pub fn wine() -> &'static Wine {
    let set_up = WINE.get_or_init(|| {
        std::panic::catch_unwind(Wine::set_up).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_default()
        })
    });
    match set_up {
        Ok(wine) => wine,
        Err(message) => panic!("the Wine set-up failed: {message}"),
    }
}

impl Wine {
    fn set_up() -> Self {
        for (tool, package) in [
            ("wine", "wine and wine64"),
            ("wineserver", "wine and wine64"),
            ("x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64"),
        ] {
            assert!(
                which::which(tool).is_ok(),
                "{tool} is not on PATH: install the Debian package {package} \
                 (scripts/install-deps does)"
            );
        }
        let start = Instant::now();
        let exe = build_exe();
        eprintln!(
            "wine set-up: built with-secrets.exe in {:.1?}",
            start.elapsed()
        );
        let root = tempfile::Builder::new()
            .prefix("with-secrets-wine.")
            .tempdir()
            .expect("temp dir")
            .keep();
        let prefix = root.join("prefix");
        let wine = Self {
            standin: root.join("python-keyring-standin.exe"),
            impostor: root.join("bridge-impostor.exe"),
            root,
            prefix,
            exe,
        };
        // Stopped and removed when the test process exits (see `clean_up`).
        let _ = ROOT.set(wine.root.clone());
        // SAFETY: registers a plain extern "C" function.
        unsafe { libc::atexit(clean_up) };

        let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine");
        let dll = wine.root.join("bcryptprimitives.dll");
        mingw(&[
            OsStr::new("-shared"),
            sources.join("bcryptprimitives.c").as_os_str(),
            OsStr::new("-ladvapi32"),
            OsStr::new("-o"),
            dll.as_os_str(),
        ]);
        mingw(&[
            OsStr::new("-municode"),
            sources.join("python-keyring-standin.c").as_os_str(),
            OsStr::new("-ladvapi32"),
            OsStr::new("-o"),
            wine.standin.as_os_str(),
        ]);
        mingw(&[
            sources.join("bridge-impostor.c").as_os_str(),
            OsStr::new("-o"),
            wine.impostor.as_os_str(),
        ]);

        // One wineserver for every test of this process. It needs the
        // prefix's folder to exist; wineboot fills it.
        std::fs::create_dir(&wine.prefix).expect("prefix folder");
        // It forks into the background: its output is not waited for, as
        // the server would hold the pipes open.
        let server = wine
            .tool("wineserver")
            .arg(format!("-p{LINGER_SECS}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wineserver");
        let server = wait_for(server, BOOT, "wineserver");
        assert!(server.success(), "wineserver -p{LINGER_SECS}: {server}");
        // Its output goes to a file, not a pipe: the processes it starts
        // (services.exe and others) inherit it and live as long as the
        // wineserver, so a pipe would not close when wineboot is done.
        let log_path = wine.root.join("wineboot.log");
        let log = std::fs::File::create(&log_path).expect("wineboot.log");
        let boot = wine
            .tool("wineboot")
            .arg("-i")
            .stdout(log.try_clone().expect("wineboot.log"))
            .stderr(log)
            .spawn()
            .expect("start wineboot");
        let status = wait_for(boot, BOOT, "wineboot -i");
        assert!(
            status.success(),
            "wineboot -i: {status}\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        eprintln!("wine set-up: prefix ready after {:.1?}", start.elapsed());
        let system32 = wine.prefix.join("drive_c/windows/system32");
        assert!(system32.is_dir(), "wineboot made no {}", system32.display());
        // Test-only: Wine 8.0 lacks ProcessPrng, which Rust's std imports.
        std::fs::copy(&dll, system32.join("bcryptprimitives.dll")).expect("copy the DLL");

        let version = wine
            .tool("wine")
            .arg(&wine.exe)
            .arg("--version")
            .bounded_output()
            .expect("run with-secrets.exe");
        assert!(
            version.status.success(),
            "with-secrets.exe --version under Wine: {} (53 with no output: \
             bcryptprimitives.dll's ProcessPrng is missing)\n{}",
            version.status,
            String::from_utf8_lossy(&version.stderr)
        );
        wine
    }

    /// A Wine tool (`wine`, `wineserver`, `wineboot`) in this prefix, with
    /// nothing of the caller's environment but PATH.
    fn tool(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.root)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            // Command-line arguments are turned into UTF-16 from this locale.
            .env("LANG", "C.UTF-8")
            // No X server, no window: Wine needs neither here.
            .env("DISPLAY", "")
            .stdin(Stdio::null());
        command
    }

    /// Runs with-secrets.exe with `args` in `test`'s folder, with `test`'s
    /// environment.
    pub fn run<I, S>(&self, test: &Test, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_input(test, None, args)
    }

    /// The same, with `input` on standard input.
    pub fn run_input<I, S>(&self, test: &Test, input: Option<&[u8]>, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_env(test, input, &[], args)
    }

    /// The same, with the variables `env` set for this run only.
    pub fn run_env<I, S>(
        &self,
        test: &Test,
        input: Option<&[u8]>,
        env: &[(&str, &str)],
        args: I,
    ) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.tool("wine");
        command
            .arg(&self.exe)
            .args(args)
            .current_dir(&test.cwd)
            .envs(test.envs().filter(|(name, _)| *name != "HOME"))
            .envs(env.iter().copied())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!(
            "with-secrets.exe {:?}",
            command.get_args().skip(1).collect::<Vec<_>>()
        );
        let mut child = command.spawn().expect("spawn wine with-secrets.exe");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().expect("piped stdin");
            // with-secrets may exit before it reads, e.g. on a bad name.
            match stdin.write_all(input) {
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                    panic!("write stdin: {err}")
                }
                _ => {}
            }
        }
        Run::new(wait_output(child, &what))
    }

    /// The stand-in program as a command for the Windows build to run:
    /// its path on Wine's `Z:` drive.
    pub fn standin_command(&self) -> String {
        format!("Z:{}", self.standin.display()).replace('/', "\\")
    }

    /// Runs the stand-in for Python's keyring (tests/wine/python-keyring-standin.c).
    pub fn python(&self, args: &[&str]) -> Run {
        let child = self
            .tool("wine")
            .arg(&self.standin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wine python-keyring-standin.exe");
        Run::new(wait_output(child, &format!("the stand-in {args:?}")))
    }

    /// `test` set up as WSL would be, for the Linux build: its Windows
    /// helper is this Windows build under Wine, in this prefix.
    pub fn as_wsl(&self, test: Test) -> Test {
        let exe = self.exe.to_string_lossy();
        self.with_helper(test, &format!("wine {}", shell_words::quote(&exe)))
            .env("WSL_DISTRO_NAME", "Debian")
    }

    /// `test` with `command` as the Linux build's Windows helper, and Wine's
    /// environment for this prefix.
    pub fn with_helper(&self, test: Test, command: &str) -> Test {
        test.env("WITH_SECRETS_WINDOWS_HELPER", command)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("LANG", "C.UTF-8")
            .env("DISPLAY", "")
    }

    /// The stand-in for Python's keyring, for a command line of `wine`.
    pub fn standin(&self) -> &Path {
        &self.standin
    }

    /// The Windows build, for a helper command line.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// A helper command line that runs tests/wine/bridge-impostor.c with
    /// `args` under Wine.
    pub fn impostor(&self, args: &str) -> String {
        let path = self.impostor.to_string_lossy();
        format!("wine {} {args}", shell_words::quote(&path))
    }

    /// The value Python's `keyring get SERVICE USERNAME` gives, or `None`.
    pub fn python_get(&self, service: &str, username: &str) -> Option<String> {
        let run = self.python(&["get", service, username]);
        match run.code() {
            Some(0) => Some(run.stdout()),
            Some(1) => None,
            _ => panic!("stand-in get failed:\n{}", run.stderr()),
        }
    }

    /// Python's `keyring set SERVICE USERNAME VALUE`.
    pub fn python_set(&self, service: &str, username: &str, value: &str) {
        self.python(&["set", service, username, value]).success();
    }

    /// How many credentials `service` has, in any of the three layouts.
    pub fn count(&self, service: &str) -> usize {
        let run = self.python(&["count", service]);
        run.success();
        run.stdout().trim().parse().expect("a count")
    }
}

/// Builds the Windows binary, once per test process, into a target folder of
/// its own so that it never waits on the lock of the build running the tests
/// (scripts/test builds it there first, so this finds it fresh).
///
/// Fresh only if this build sees the environment that one saw: ring's build
/// script reruns when `CARGO_MANIFEST_DIR` or `CARGO_PKG_*` change, and
/// `cargo test` sets those (and more) for the test process. So they are
/// dropped here, leaving the environment `cargo test` was started with.
fn build_exe() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = manifest.join("target/wine");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        if set_by_cargo_test(&name.to_string_lossy()) {
            command.env_remove(&name);
        }
    }
    let output = command
        .current_dir(manifest)
        .args(BUILD)
        .arg(&target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cargo build --target x86_64-pc-windows-gnu");
    // A build from nothing takes minutes on a small machine; a hang is
    // still an error.
    let output = super::wait_for(output, Duration::from_secs(1800));
    assert!(
        output.status.success(),
        "cargo build --target x86_64-pc-windows-gnu failed (is the target \
         installed? rustup target add x86_64-pc-windows-gnu):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    target_dir.join("x86_64-pc-windows-gnu/debug/with-secrets.exe")
}

/// `cargo build` of the Windows binary, as scripts/test runs it, but for
/// the target folder, which follows.
pub const BUILD: [&str; 7] = [
    "build",
    "--locked",
    "--bin",
    "with-secrets",
    "--target",
    "x86_64-pc-windows-gnu",
    "--target-dir",
];

/// Whether `cargo test` sets the variable `name` for the tests it runs, as
/// its documentation lists them ("Environment variables Cargo sets for
/// crates", which tests get at run time too): none of them is in the
/// environment of a `cargo build` started from a shell.
fn set_by_cargo_test(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_EXE_")
        || [
            "CARGO",
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_MANIFEST_LINKS",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
            "OUT_DIR",
        ]
        .contains(&name)
}

fn mingw(args: &[&OsStr]) {
    let output = Command::new("x86_64-w64-mingw32-gcc")
        .args(args)
        .bounded_output()
        .expect("run x86_64-w64-mingw32-gcc");
    assert!(
        output.status.success(),
        "x86_64-w64-mingw32-gcc {args:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits for a run under Wine, reading its output meanwhile; fails naming
/// the command if it has not ended, its output closed, within `RUN` (a
/// hang, never a slow run: runs take < 1 s).
fn wait_output(child: std::process::Child, what: &str) -> std::process::Output {
    let finished =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| super::wait_for(child, RUN)));
    finished.unwrap_or_else(|hang| {
        eprintln!("{what} under Wine did not end within {RUN:?}");
        std::panic::resume_unwind(hang)
    })
}

/// Waits for `child` at most `limit`, killing it and failing past that.
fn wait_for(
    mut child: std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// At exit: stops this process's wineserver and removes its prefix.
extern "C" fn clean_up() {
    if let Some(root) = ROOT.get() {
        if let Ok(child) = Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", root.join("prefix"))
            .stdin(Stdio::null())
            .spawn()
        {
            // At exit a hang is no better: give it up after a while.
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut child = child;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = std::fs::remove_dir_all(root);
    }
}
