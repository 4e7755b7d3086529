//! A private Secret Service for one test: its own `dbus-daemon` and an
//! unlocked `gnome-keyring-daemon`, in a temporary directory with its own HOME,
//! so tests never touch the keyring of whoever runs them and run in parallel.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The password of every test keyring.
const PASSWORD: &str = "with-secrets-test";

/// A running session bus, and the Secret Service on it unless started bare.
pub struct SecretService {
    dir: TempDir,
    address: String,
    dbus_pid: libc::pid_t,
    keyring_pid: Option<libc::pid_t>,
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

    fn bus_with_policy(extra_policy: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("with-secrets-bus.")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("bus");
        // No <servicedir>: nothing may be D-Bus-activated on this bus.
        let config = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
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
            .status()
            .expect("dbus-daemon must be installed: run ./scripts/test, or apt-get install dbus");
        assert!(status.success(), "dbus-daemon failed to start");
        let dbus_pid = read_pid(&pid_path);
        Self {
            address: format!("unix:path={}", socket.display()),
            dir,
            dbus_pid,
            keyring_pid: None,
        }
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
        assert!(child.wait().expect("gnome-keyring-daemon").success());
        // --unlock returns before the daemon owns the name.
        let connection = self.connection();
        let deadline = Instant::now() + Duration::from_secs(20);
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
        assert_eq!(&*prompt, "/", "locking needed a prompt");
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
        child.wait_with_output().expect("secret-tool")
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
        for pid in self.keyring_pid.into_iter().chain([self.dbus_pid]) {
            // SAFETY: kill has no memory-safety preconditions. A stopped
            // daemon must be continued to act on SIGTERM.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn read_pid(path: &Path) -> libc::pid_t {
    let text = std::fs::read_to_string(path).expect("pid file");
    text.trim().parse().expect("a pid")
}
