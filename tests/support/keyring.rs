//! A private Secret Service for one test: its own `dbus-daemon` and an
//! unlocked `gnome-keyring-daemon` (or KeePassXC under its own Xvfb, or
//! oo7-daemon), in a temporary directory with its own HOME, so tests never
//! touch the keyring of whoever runs them and run in parallel.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The password of every test keyring.
const PASSWORD: &str = "with-secrets-test";

/// How long a daemon may take to come up before the test fails.
const START: Duration = Duration::from_secs(30);

/// A running session bus, and the Secret Service on it unless started bare.
pub struct SecretService {
    dir: TempDir,
    address: String,
    dbus_pid: libc::pid_t,
    keyring_pid: Option<libc::pid_t>,
    /// Processes we spawned (KeePassXC, oo7-daemon, Xvfb): killed and
    /// reaped on drop, the daemon before its display.
    children: Vec<Child>,
}

impl SecretService {
    /// A bus with an unlocked gnome-keyring on it.
    pub fn start() -> Self {
        let mut service = Self::bus_only();
        service.start_keyring();
        service
    }

    /// A bus with a keyring on it that the bus policy forbids us to call.
    pub fn start_denied() -> Self {
        let mut service =
            Self::bus_with_policy(r#"<deny send_destination="org.freedesktop.secrets"/>"#);
        service.start_keyring();
        service
    }

    /// A bus on which nothing owns `org.freedesktop.secrets`.
    pub fn bus_only() -> Self {
        Self::bus_with_policy("")
    }

    /// A bus on which nothing owns `org.freedesktop.secrets`, but which
    /// knows a service file for it: asking for it makes the bus start
    /// `exec`, which is expected to fail (as a Secret Service that is
    /// installed but broken, or uninstalled with its file left behind).
    pub fn bus_activating(exec: &str) -> Self {
        Self::bus_with("", Some(exec))
    }

    fn bus_with_policy(extra_policy: &str) -> Self {
        Self::bus_with(extra_policy, None)
    }

    fn bus_with(extra_policy: &str, activation: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("with-secrets-bus.")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("bus");
        // Without an activation command, no <servicedir>: nothing may be
        // D-Bus-activated on this bus.
        let servicedir = match activation {
            None => String::new(),
            Some(exec) => {
                let services = dir.path().join("services");
                std::fs::create_dir(&services).expect("service dir");
                std::fs::write(
                    services.join("org.freedesktop.secrets.service"),
                    format!("[D-BUS Service]\nName=org.freedesktop.secrets\nExec={exec}\n"),
                )
                .expect("service file");
                format!("<servicedir>{}</servicedir>", services.display())
            }
        };
        let config = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  {servicedir}
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    {extra_policy}
  </policy>
</busconfig>
"#,
            socket.display()
        );
        let config_path = dir.path().join("bus.conf");
        std::fs::write(&config_path, config).expect("bus config");
        let pid_path = dir.path().join("dbus.pid");
        // The daemon forks once it listens; its PID goes to fd 4, through sh
        // because std cannot hand a child a descriptor other than 0-2.
        let status = Command::new("sh")
            .arg("-c")
            .arg(r#"exec dbus-daemon --config-file="$1" --fork --print-pid=4 4>"$2" </dev/null >/dev/null"#)
            .arg("sh")
            .arg(&config_path)
            .arg(&pid_path)
            .spawn()
            .expect("dbus-daemon must be installed: run ./scripts/test, or apt-get install dbus");
        let status = super::wait(status).status;
        assert!(status.success(), "dbus-daemon failed to start");
        let dbus_pid = read_pid(&pid_path);
        Self {
            address: format!("unix:path={}", socket.display()),
            dir,
            dbus_pid,
            keyring_pid: None,
            children: Vec::new(),
        }
    }

    /// The temporary folder's HOME and XDG folders, for a daemon's environment.
    fn daemon_env(&self, command: &mut Command) {
        let root = self.dir.path();
        for sub in ["home", "data", "runtime", "config", "cache"] {
            std::fs::create_dir_all(root.join(sub)).expect("daemon dirs");
        }
        std::fs::set_permissions(
            root.join("runtime"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("runtime dir mode");
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.join("home"))
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_RUNTIME_DIR", root.join("runtime"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_CACHE_HOME", root.join("cache"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
    }

    /// A bus with KeePassXC on it, headless under its own Xvfb, with its
    /// Secret Service integration on, access and delete confirmations off,
    /// and "unlock before search" off: a locked database then answers
    /// searches with nothing, which with-secrets must tell from "missing".
    /// Its database (password `PASSWORD`) is open and exposes one group.
    pub fn start_keepassxc() -> Self {
        let mut service = Self::bus_only();
        let root = service.dir.path().to_owned();
        let database = root.join("test.kdbx");
        std::fs::write(&database, keepassxc_database()).expect("database");
        let ini = root.join("config/keepassxc/keepassxc.ini");
        std::fs::create_dir_all(ini.parent().unwrap()).expect("config dir");
        std::fs::write(
            &ini,
            "[General]\nSingleInstance=false\nConfigVersion=2\nRememberLastDatabases=false\n\
             RememberLastKeyFiles=false\nAutoSaveAfterEveryChange=true\n\
             [GUI]\nShowTrayIcon=false\nCheckForUpdates=false\nMinimizeOnStartup=false\n\
             [FdoSecrets]\nEnabled=true\nShowNotification=false\nConfirmAccessItem=false\n\
             ConfirmDeleteItem=false\nUnlockBeforeSearch=false\n",
        )
        .expect("keepassxc.ini");
        let display = service.start_xvfb();
        let mut command = Command::new("keepassxc");
        service.daemon_env(&mut command);
        let mut child = command
            .arg("--pw-stdin")
            .arg(&database)
            .env("DISPLAY", format!(":{display}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("keepassxc must be installed: run ./scripts/test");
        let mut stdin = child.stdin.take().expect("piped stdin");
        writeln!(stdin, "{PASSWORD}").expect("keepassxc password");
        drop(stdin);
        service.keyring_pid = Some(child.id() as libc::pid_t);
        service.children.push(child);
        // It owns the name before it has opened the database: wait until
        // the default collection is there and unlocked.
        service.wait_until("KeePassXC's default collection is unlocked", |service| {
            service.default_locked() == Some(false)
        });
        service
    }

    /// A bus with oo7-daemon on it, its login keyring unlocked with
    /// `PASSWORD` (`--login` reads it on stdin).
    pub fn start_oo7() -> Self {
        let mut service = Self::bus_only();
        let mut command = Command::new(oo7_daemon());
        service.daemon_env(&mut command);
        let mut child = command
            .arg("--login")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("oo7-daemon");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(PASSWORD.as_bytes()).expect("oo7 password");
        drop(stdin);
        service.keyring_pid = Some(child.id() as libc::pid_t);
        service.children.push(child);
        service.wait_until("oo7-daemon's default collection is unlocked", |service| {
            service.default_locked() == Some(false)
        });
        service
    }

    /// Starts an Xvfb on a free display, for this service only; returns
    /// the display number, which Xvfb prints once it accepts clients.
    fn start_xvfb(&mut self) -> u32 {
        let mut xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "800x600x24",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("Xvfb must be installed: run ./scripts/test");
        // Its own process group, so a failed wait below can kill it.
        let line =
            super::Reader::new(xvfb.stdout.take().expect("piped stdout")).until("\n", xvfb.id());
        let display = line.trim().parse().unwrap_or_else(|_| {
            let _ = xvfb.kill();
            panic!("Xvfb printed no display number: {line:?}")
        });
        self.children.push(xvfb);
        display
    }

    /// Polls `ready` until it holds, failing the test after `START`.
    fn wait_until(&self, what: &str, ready: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + START;
        while !ready(self) {
            assert!(Instant::now() < deadline, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The default collection's `Locked` property; `None` while the service
    /// or its default collection is not there.
    pub fn default_locked(&self) -> Option<bool> {
        use dbus::arg::Variant;
        let connection = self.connection();
        let proxy = connection.with_proxy(
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets/aliases/default",
            Duration::from_secs(5),
        );
        proxy
            .method_call::<(Variant<bool>,), _, _, _>(
                "org.freedesktop.DBus.Properties",
                "Get",
                ("org.freedesktop.Secret.Collection", "Locked"),
            )
            .ok()
            .map(|(locked,)| locked.0)
    }

    fn start_keyring(&mut self) {
        let root = self.dir.path();
        for sub in ["home", "data", "runtime", "config"] {
            std::fs::create_dir_all(root.join(sub)).expect("keyring dirs");
        }
        // A fresh, empty XDG_DATA_HOME: an old keyring with another password
        // would stay locked, silently.
        let mut child = Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.join("home"))
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_RUNTIME_DIR", root.join("runtime"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon must be installed: run ./scripts/test");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(PASSWORD.as_bytes()).expect("password");
        }
        assert!(super::wait(child).status.success(), "gnome-keyring-daemon");
        // --unlock returns before the daemon owns the name.
        let connection = self.connection();
        let deadline = Instant::now() + START;
        let pid = loop {
            if let Ok((pid,)) = connection
                .with_proxy(
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    Duration::from_secs(5),
                )
                .method_call::<(u32,), _, _, _>(
                    "org.freedesktop.DBus",
                    "GetConnectionUnixProcessID",
                    ("org.freedesktop.secrets",),
                )
            {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon never owned org.freedesktop.secrets"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        self.keyring_pid = Some(pid as libc::pid_t);
    }

    /// A blocking D-Bus connection to this bus, for the harness's own calls.
    pub fn connection(&self) -> dbus::blocking::Connection {
        let mut channel =
            dbus::channel::Channel::open_private(&self.address).expect("connect to the test bus");
        channel.register().expect("register on the test bus");
        dbus::blocking::Connection::from(channel)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Locks the default collection, as a screen lock or a timeout would.
    pub fn lock(&self) {
        let connection = self.connection();
        let proxy = connection.with_proxy(
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            Duration::from_secs(10),
        );
        let (collection,): (dbus::Path,) = proxy
            .method_call("org.freedesktop.Secret.Service", "ReadAlias", ("default",))
            .expect("ReadAlias");
        let (_locked, prompt): (Vec<dbus::Path>, dbus::Path) = proxy
            .method_call(
                "org.freedesktop.Secret.Service",
                "Lock",
                (vec![collection],),
            )
            .expect("Lock");
        // KeePassXC answers Lock with a prompt, which needs no person.
        if &*prompt != "/" {
            connection
                .with_proxy("org.freedesktop.secrets", prompt, Duration::from_secs(10))
                .method_call::<(), _, _, _>("org.freedesktop.Secret.Prompt", "Prompt", ("",))
                .expect("Prompt");
            self.wait_until("the default collection is locked", |service| {
                service.default_locked() == Some(true)
            });
        }
    }

    /// Sends `signal` to the dbus-daemon.
    pub fn signal_bus(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(self.dbus_pid, signal) }, 0);
    }

    /// Sends `signal` to the gnome-keyring-daemon.
    pub fn signal_keyring(&self, signal: libc::c_int) {
        let pid = self.keyring_pid.expect("a keyring is running");
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
    }

    /// `secret-tool` (C libsecret) against this bus: an independent client.
    pub fn secret_tool(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new("secret-tool")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("secret-tool must be installed: run ./scripts/test");
        let mut input = child.stdin.take().expect("piped stdin");
        if let Some(stdin) = stdin {
            input
                .write_all(stdin.as_bytes())
                .expect("secret-tool stdin");
        }
        drop(input);
        super::wait(child)
    }

    /// Stores an item the way a third-party tool would: only `service` and
    /// `username` attributes, and its own label.
    pub fn store_foreign(&self, service: &str, username: &str, label: &str, value: &str) {
        let output = self.secret_tool(
            &[
                "store", "--label", label, "service", service, "username", username,
            ],
            Some(value),
        );
        assert!(output.status.success(), "secret-tool store: {output:?}");
    }

    /// Stores an item with `extra` attributes besides `service` and
    /// `username`: items that differ only there are separate items.
    pub fn store_foreign_with(
        &self,
        service: &str,
        username: &str,
        label: &str,
        value: &str,
        extra: &[(&str, &str)],
    ) {
        let mut args = vec![
            "store", "--label", label, "service", service, "username", username,
        ];
        for (key, value) in extra {
            args.extend([*key, *value]);
        }
        let output = self.secret_tool(&args, Some(value));
        assert!(output.status.success(), "secret-tool store: {output:?}");
    }

    /// Every item matching `service` and `username`, as (label, attributes).
    pub fn items(&self, service: &str, username: &str) -> Vec<Item> {
        use dbus::arg::{RefArg, Variant};
        use std::collections::HashMap;
        let connection = self.connection();
        let timeout = Duration::from_secs(10);
        let service_proxy = connection.with_proxy(
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            timeout,
        );
        let attributes = HashMap::from([("service", service), ("username", username)]);
        let (unlocked, locked): (Vec<dbus::Path>, Vec<dbus::Path>) = service_proxy
            .method_call(
                "org.freedesktop.Secret.Service",
                "SearchItems",
                (attributes,),
            )
            .expect("SearchItems");
        unlocked
            .into_iter()
            .chain(locked)
            .map(|path| {
                let proxy = connection.with_proxy("org.freedesktop.secrets", path, timeout);
                let (label,): (Variant<String>,) = proxy
                    .method_call(
                        "org.freedesktop.DBus.Properties",
                        "Get",
                        ("org.freedesktop.Secret.Item", "Label"),
                    )
                    .expect("Label");
                let (attributes,): (Variant<Box<dyn RefArg>>,) = proxy
                    .method_call(
                        "org.freedesktop.DBus.Properties",
                        "Get",
                        ("org.freedesktop.Secret.Item", "Attributes"),
                    )
                    .expect("Attributes");
                let mut pairs = Vec::new();
                let mut iter = attributes.0.as_iter().expect("a dict");
                while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
                    pairs.push((
                        key.as_str().expect("key").to_owned(),
                        value.as_str().expect("value").to_owned(),
                    ));
                }
                // gnome-keyring sometimes reports the generic schema for an
                // item made without one (seen once, under load, for an item
                // with-secrets had just made; most reads do not show it): it
                // says nothing of what a client wrote, so it is left out.
                pairs.retain(|(key, value)| {
                    !(key == "xdg:schema" && value == "org.freedesktop.Secret.Generic")
                });
                pairs.sort();
                Item {
                    label: label.0,
                    attributes: pairs,
                }
            })
            .collect()
    }
}

/// A keyring item as the harness sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub label: String,
    pub attributes: Vec<(String, String)>,
}

impl Drop for SecretService {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in self.keyring_pid.into_iter().chain([self.dbus_pid]) {
            // SAFETY: kill has no memory-safety preconditions. SIGKILL, as a
            // stopped daemon would not act on SIGTERM.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Where scripts/test installs oo7-daemon, below `~/.cache`.
const OO7_CACHED: &str = "with-secrets-test/oo7-daemon-0.7.0-beta/bin/oo7-daemon";

/// oo7-daemon: `WITH_SECRETS_TEST_OO7` (which scripts/test sets), else
/// `oo7-daemon` on PATH, else where scripts/test installs it. Missing, it
/// fails the test.
fn oo7_daemon() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")));
    let path = std::env::var_os("WITH_SECRETS_TEST_OO7")
        .map(PathBuf::from)
        .or_else(|| which("oo7-daemon"))
        .or_else(|| {
            let cached = cache?.join(OO7_CACHED);
            cached.exists().then_some(cached)
        });
    match path {
        Some(path) if path.exists() => path,
        _ => panic!(
            "oo7-daemon is missing: run ./scripts/test, which installs it in \
             ~/.cache/{OO7_CACHED} (or set WITH_SECRETS_TEST_OO7 to its path)"
        ),
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// A KeePassXC database with password `PASSWORD` whose root group is
/// exposed to the Secret Service, made once per test process: a new one
/// each time would cost every test a few keepassxc-cli runs.
///
/// keepassxc-cli cannot set the exposed group, which lives in the
/// database's Meta CustomData as `FDO_SECRETS_EXPOSED_GROUP` (the group's
/// UUID, braced), so the database goes out as XML, gets that entry, and
/// comes back in.
fn keepassxc_database() -> &'static [u8] {
    static DATABASE: OnceLock<Vec<u8>> = OnceLock::new();
    DATABASE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("with-secrets-keepassxc.")
            .tempdir()
            .expect("temp dir");
        let cli = |args: &[&str], input: &str| -> Vec<u8> {
            let mut child = Command::new("keepassxc-cli")
                .args(args)
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", dir.path())
                .env("XDG_CONFIG_HOME", dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("keepassxc-cli must be installed: run ./scripts/test");
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(input.as_bytes())
                .expect("keepassxc-cli stdin");
            let output = super::wait(child);
            assert!(
                output.status.success(),
                "keepassxc-cli {args:?}: {output:?}"
            );
            output.stdout
        };
        let twice = format!("{PASSWORD}\n{PASSWORD}\n");
        cli(&["db-create", "-q", "-p", "plain.kdbx"], &twice);
        let xml = cli(
            &["export", "-q", "-f", "xml", "plain.kdbx"],
            &format!("{PASSWORD}\n"),
        );
        let xml = String::from_utf8(xml).expect("XML export");
        let group = xml
            .split("<Root>")
            .nth(1)
            .and_then(|root| root.split("<UUID>").nth(1))
            .and_then(|rest| rest.split("</UUID>").next())
            .expect("the root group's UUID");
        let uuid = braced_uuid(group);
        let xml = xml.replacen(
            "</Meta>",
            &format!(
                "<CustomData><Item><Key>FDO_SECRETS_EXPOSED_GROUP</Key>\
                 <Value>{uuid}</Value></Item></CustomData></Meta>"
            ),
            1,
        );
        std::fs::write(dir.path().join("exposed.xml"), xml).expect("XML");
        cli(
            &["import", "-q", "-p", "exposed.xml", "exposed.kdbx"],
            &twice,
        );
        std::fs::read(dir.path().join("exposed.kdbx")).expect("database")
    })
}

/// KeePass XML's base64 UUID as `{8-4-4-4-12}` hex.
fn braced_uuid(base64: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64.trim())
        .expect("a base64 UUID");
    assert_eq!(bytes.len(), 16, "a UUID is 16 bytes: {base64}");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{{{}-{}-{}-{}-{}}}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn read_pid(path: &Path) -> libc::pid_t {
    let text = std::fs::read_to_string(path).expect("pid file");
    text.trim().parse().expect("a pid")
}
