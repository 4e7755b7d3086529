//! README's recipes for `with-secrets agent`, run with real parts: the agent
//! on the "host" in front of a private gnome-keyring (the values stored with
//! `set` there), and the client in a real podman container made from
//! examples/devcontainer-agent/devcontainer.json, in `podman run` with
//! README's `docker run` words, and on the far side of a real `ssh -R` to a
//! real sshd, each with no session bus and a HOME of its own.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::container::Podman;
use crate::support::sshd::{self, Sshd};
use crate::support::{BIN, Reader, SecretService, Test};

/// The value stored on the host; it must never show outside the command.
const TOKEN: &str = "agent-recipe-token-8c1f";

/// A decoy in the client's environment: the agent failing must never let
/// it stand in.
const DECOY: &str = "decoy-from-the-environment";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn readme() -> String {
    std::fs::read_to_string(repo("README.md")).expect("README.md")
}

/// The host: a project holding examples/secrets.toml, a private
/// gnome-keyring holding API_TOKEN (stored there with `set`), and an
/// XDG_RUNTIME_DIR of its own (0700, as a login's is).
struct Host {
    test: Test,
    runtime: PathBuf,
    _service: SecretService,
}

impl Host {
    fn new() -> Self {
        let service = SecretService::start();
        let test = Test::new()
            .manifest(&std::fs::read_to_string(repo("examples/secrets.toml")).unwrap())
            .keyring(&service);
        let runtime = test.path().join("run");
        std::fs::create_dir(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let test = test.env("XDG_RUNTIME_DIR", &runtime);
        test.run_input(TOKEN, ["--store", "secret-service", "set", "API_TOKEN"])
            .success();
        Self {
            test,
            runtime,
            _service: service,
        }
    }

    /// `with-secrets agent ARGS...` started in the project folder.
    fn agent(&self, args: &[&str]) -> Agent {
        let mut command = self.test.command(["agent"].iter().chain(args));
        command.stdin(Stdio::null());
        crate::support::default_signals(&mut command);
        let mut child = command.spawn().expect("spawn the agent");
        let pid = child.id();
        let mut stdout = Reader::new(child.stdout.take().unwrap());
        let mut log = Reader::new(child.stderr.take().unwrap());
        let line = stdout.until("export WITH_SECRETS_AGENT;\n", pid);
        let value = line
            .strip_prefix("WITH_SECRETS_AGENT=")
            .and_then(|rest| rest.strip_suffix("; export WITH_SECRETS_AGENT;\n"))
            .unwrap_or_else(|| panic!("the agent printed {line:?}"));
        let words = shell_words::split(value).expect("a shell word");
        assert_eq!(words.len(), 1, "{line:?}");
        log.until("listening on", pid);
        Agent {
            child,
            socket: PathBuf::from(&words[0]),
            log,
        }
    }
}

/// A running agent, stopped (SIGTERM, as a user's Ctrl-C or `kill` would)
/// when dropped.
struct Agent {
    child: Child,
    socket: PathBuf,
    log: Reader,
}

impl Agent {
    /// Its log up to and including `needle`; fails the test past the
    /// deadline.
    fn log_until(&mut self, needle: &str) -> String {
        self.log.until(needle, self.child.id())
    }

    /// Stops it as a user would, and waits until it has.
    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("the agent did not stop on SIGTERM within 30 s");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A workspace folder for a container: examples/secrets.toml at its root
/// and `bin/npm`, a stand-in that writes its arguments (one a line) to
/// `$RECORD/argv` and its environment to `$RECORD/env`.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("with-secrets-workspace.")
        .tempdir()
        .unwrap();
    std::fs::copy(
        repo("examples/secrets.toml"),
        dir.path().join("secrets.toml"),
    )
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let npm = bin.join("npm");
    std::fs::write(
        &npm,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$RECORD/argv\"\nenv -0 > \"$RECORD/env\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&npm, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The environment the stand-in recorded.
fn recorded_env(record: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(record.join("env"))
        .expect("npm ran and recorded its environment")
        .split('\0')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Where the binary under test is seen inside a container.
const BIN_INSIDE: &str = "/opt/with-secrets";

/// podman with the binary under test on the container's PATH (its folder
/// mounted read-only), ahead of the workspace's `bin`.
fn podman_with_binary(workspace_bin: &str) -> Podman {
    let folder = Path::new(BIN).parent().unwrap();
    Podman::start()
        .volume(folder, &format!("{BIN_INSIDE}:ro"))
        .env(
            "PATH",
            format!("{workspace_bin}:{BIN_INSIDE}:/usr/bin:/bin"),
        )
}

/// `${localEnv:NAME}` as the dev container tools expand it, from `host`.
fn expand_local_env(value: &str, host: &BTreeMap<&str, String>) -> String {
    let mut out = value.to_owned();
    while let Some(start) = out.find("${localEnv:") {
        let end = start + out[start..].find('}').expect("closing brace");
        let name = &out[start + "${localEnv:".len()..end];
        let value = host.get(name).cloned().unwrap_or_default();
        out.replace_range(start..=end, &value);
    }
    out
}

/// How README starts the agent for the dev container: at a fixed path,
/// whose folder the container mounts.
const DEVCONTAINER_AGENT: &str =
    r#"with-secrets agent --socket "$XDG_RUNTIME_DIR/with-secrets/agent.sock" &"#;

/// examples/devcontainer-agent/devcontainer.json: its `mounts` (with
/// `${localEnv:...}` expanded from the host), `containerEnv` and
/// `postStartCommand`, as `podman run` options and a command line, the
/// workspace mounted and current as the tools do it.
struct DevContainer {
    options: Vec<String>,
    post_start: String,
}

impl DevContainer {
    fn read(host: &Host, workspace: &Path, record: &Path) -> Self {
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(repo("examples/devcontainer-agent/devcontainer.json")).unwrap(),
        )
        .expect("devcontainer.json is plain JSON");
        let local = BTreeMap::from([(
            "XDG_RUNTIME_DIR",
            host.runtime.to_string_lossy().into_owned(),
        )]);
        let mut options = Vec::new();
        for mount in json["mounts"].as_array().expect("mounts") {
            options.push("--mount".to_owned());
            options.push(expand_local_env(mount.as_str().unwrap(), &local));
        }
        for (name, value) in json["containerEnv"].as_object().expect("containerEnv") {
            options.push("-e".to_owned());
            options.push(format!(
                "{name}={}",
                expand_local_env(value.as_str().unwrap(), &local)
            ));
        }
        options.extend([
            "-v".to_owned(),
            format!("{}:/workspaces/project", workspace.display()),
            "-w".to_owned(),
            "/workspaces/project".to_owned(),
            "-v".to_owned(),
            format!("{}:/record", record.display()),
            "-e".to_owned(),
            "RECORD=/record".to_owned(),
        ]);
        Self {
            options,
            post_start: json["postStartCommand"].as_str().unwrap().to_owned(),
        }
    }

    fn podman(&self) -> Podman {
        podman_with_binary("/workspaces/project/bin").options(&self.options)
    }
}

#[test]
fn the_devcontainer_reaches_the_hosts_keyring_through_the_agent() {
    let readme = readme();
    assert!(
        readme.contains(DEVCONTAINER_AGENT),
        "README lacks {DEVCONTAINER_AGENT}"
    );
    let json =
        std::fs::read_to_string(repo("examples/devcontainer-agent/devcontainer.json")).unwrap();
    assert!(
        readme.contains(&format!("```json\n{json}```")),
        "README does not show examples/devcontainer-agent/devcontainer.json as it is"
    );
    let host = Host::new();
    let socket = host.runtime.join("with-secrets/agent.sock");
    let mut agent = host.agent(&["--socket", socket.to_str().unwrap()]);
    assert_eq!(agent.socket, socket);
    // --socket made the folder the container mounts, for this user only.
    let mode = std::fs::metadata(socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    let workspace = workspace();
    let record = tempfile::tempdir().unwrap();
    let container = DevContainer::read(&host, workspace.path(), record.path());
    assert!(
        container
            .post_start
            .starts_with("with-secrets check && with-secrets -c "),
        "{}",
        container.post_start
    );
    // A lifecycle command given as a string runs in a shell.
    let run = container
        .podman()
        .env("API_TOKEN", DECOY)
        .run("sh", &["-c", &container.post_start]);
    run.success().never_shows(TOKEN);
    assert!(
        run.stdout()
            .contains("API_TOKEN   with-secrets-example  ci-bot      found"),
        "{}",
        run.stdout()
    );
    assert_eq!(
        std::fs::read_to_string(record.path().join("argv")).unwrap(),
        "run\nseed\n--\n--label\ndev container\n"
    );
    let env = recorded_env(record.path());
    assert_eq!(
        env["API_TOKEN"], TOKEN,
        "from the host's keyring, not the decoy"
    );
    assert_eq!(env["WITH_SECRETS_AGENT"], "/run/with-secrets/agent.sock");
    assert!(!env.contains_key("DBUS_SESSION_BUS_ADDRESS"), "{env:?}");
    // `check`, then the run, each asked the agent.
    agent.log_until("found 1 of 2");
    agent.log_until("found 1 of 2");
    assert_eq!(
        crate::support::files_containing(workspace.path(), TOKEN),
        Vec::<PathBuf>::new(),
        "nothing lands in the workspace"
    );

    // Stopped, the agent removes its socket; the next start fails before
    // npm runs, names the socket, and the decoy does not stand in.
    agent.stop();
    std::fs::remove_file(record.path().join("argv")).unwrap();
    let run = container
        .podman()
        .env("API_TOKEN", DECOY)
        .run("sh", &["-c", &container.post_start]);
    run.expect_code(125)
        .stderr_has("no agent at /run/with-secrets/agent.sock (WITH_SECRETS_AGENT)")
        .never_shows(TOKEN)
        .never_shows(DECOY);
    assert!(!record.path().join("argv").exists());
}

/// In a running container made from the dev container's JSON (its
/// `mounts` replaced by `mounts`, when given): one run, the agent on the
/// host stopped and started again at the same path, another run; each run
/// prints `[$API_TOKEN]`.
fn run_across_a_restart(mounts: Option<&[&str]>) -> crate::support::Run {
    let host = Host::new();
    let socket = host.runtime.join("with-secrets/agent.sock");
    let socket_arg = socket.to_str().unwrap().to_owned();
    let agent = host.agent(&["--socket", &socket_arg]);
    let workspace = workspace();
    let record = tempfile::tempdir().unwrap();
    let mut container = DevContainer::read(&host, workspace.path(), record.path());
    if let Some(mounts) = mounts {
        let runtime = host.runtime.to_string_lossy();
        container
            .options
            .retain(|option| !option.contains("type=bind"));
        container.options.retain(|option| option != "--mount");
        for mount in mounts {
            container.options.push("--mount".to_owned());
            container.options.push(mount.replace("RUNTIME", &runtime));
        }
    }
    let script = "with-secrets -- sh -c 'printf \"[%s]\" \"$API_TOKEN\"' || exit; \
                  : > /record/first; i=0; until [ -e /record/restarted ]; do i=$((i+1)); \
                  if [ $i -gt 1200 ]; then echo 'never restarted' >&2; exit 98; fi; sleep 0.05; done; \
                  with-secrets -- sh -c 'printf \"[%s]\" \"$API_TOKEN\"'";
    let podman = container.podman();
    let mut child = podman
        .command("sh", &["-c", script])
        .spawn()
        .expect("podman run");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !record.path().join("first").exists() {
        if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            crate::support::kill_group(child.id());
            let output = crate::support::wait(child);
            panic!(
                "the first run in the container did not finish: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.stop();
    assert!(!socket.exists(), "the stopped agent left its socket");
    let _again = host.agent(&["--socket", &socket_arg]);
    std::fs::write(record.path().join("restarted"), "").unwrap();
    crate::support::Run {
        output: crate::support::wait(child),
    }
}

/// The JSON mounts the folder, not the socket: an agent started again at
/// the same path serves the container that is already running.
#[test]
fn the_devcontainer_keeps_its_agent_across_a_restart_of_the_agent() {
    run_across_a_restart(None)
        .success()
        .stdout_is(&format!("[{TOKEN}][{TOKEN}]"))
        .stderr_lacks(TOKEN);
}

/// Mounting the socket file instead holds on to the socket that was
/// removed: after the restart the container finds it dead.
#[test]
fn a_container_that_mounts_the_socket_file_loses_the_agent_on_a_restart() {
    let run = run_across_a_restart(Some(&[
        "type=bind,source=RUNTIME/with-secrets/agent.sock,target=/run/with-secrets/agent.sock",
    ]));
    run.expect_code(125)
        .stdout_is(&format!("[{TOKEN}]"))
        .stderr_has(
            "no agent listens at /run/with-secrets/agent.sock (WITH_SECRETS_AGENT): \
             the socket is left from one that stopped",
        )
        .stderr_lacks(TOKEN);
}

/// README's `docker run` line, `docker run --rm -v ... IMAGE with-secrets --
/// CMD`, as words: `$WITH_SECRETS_AGENT` and `$PWD` set from `agent` and
/// `pwd`, the options between `--rm` and IMAGE, and what follows IMAGE.
fn docker_run_line(agent: &Path, pwd: &Path) -> (Vec<String>, Vec<String>) {
    let readme = readme();
    let start = readme
        .find("docker run --rm -v \"$WITH_SECRETS_AGENT:")
        .expect("README's docker run line with the agent");
    let end = start + readme[start..].find("\n```").expect("end of the block");
    let line = readme[start..end]
        .replace("\\\n", " ")
        .replace("$WITH_SECRETS_AGENT", &agent.to_string_lossy())
        .replace("$PWD", &pwd.to_string_lossy());
    let words = shell_words::split(&line).expect("shell words");
    assert_eq!(words[..3], ["docker", "run", "--rm"], "{line}");
    let image = words
        .iter()
        .position(|word| word == "IMAGE")
        .expect("IMAGE in the line");
    (words[3..image].to_vec(), words[image + 1..].to_vec())
}

#[test]
fn the_docker_run_recipe_reaches_the_hosts_keyring_through_podman() {
    let host = Host::new();
    // The default socket, as the printed line gives it.
    let agent = host.agent(&[]);
    assert!(
        agent.socket.starts_with(&host.runtime) && agent.socket.ends_with("agent.sock"),
        "{}",
        agent.socket.display()
    );
    let folder = std::fs::metadata(agent.socket.parent().unwrap()).unwrap();
    assert_eq!(
        folder.permissions().mode() & 0o777,
        0o700,
        "a private folder"
    );
    let project = workspace();
    let (options, command) = docker_run_line(&agent.socket, project.path());
    assert_eq!(
        command[..2],
        ["with-secrets", "--"],
        "the line runs with-secrets in the container: {command:?}"
    );
    assert!(
        options
            .windows(2)
            .any(|pair| pair == ["-e", "WITH_SECRETS_AGENT=/run/with-secrets.sock"]),
        "{options:?}"
    );
    // CMD: prints what it got.
    let mut inside = command[..2].to_vec();
    inside.extend(["sh", "-c", "printf '[%s]' \"$API_TOKEN\""].map(str::to_owned));
    let run = podman_with_binary("/src/bin")
        .env("API_TOKEN", DECOY)
        .options(&options)
        .run(&inside[0], &inside[1..]);
    run.success()
        .stdout_is(&format!("[{TOKEN}]"))
        .stderr_lacks(TOKEN);
    assert_eq!(
        crate::support::files_containing(project.path(), TOKEN),
        Vec::<PathBuf>::new()
    );

    // Without the socket's `-v`, the same run fails before CMD, naming
    // where it looked; the decoy does not stand in.
    let without: Vec<String> = options
        .chunks(2)
        .filter(|pair| !pair[1].ends_with(":/run/with-secrets.sock"))
        .flatten()
        .cloned()
        .collect();
    assert_eq!(without.len() + 2, options.len(), "{options:?}");
    let run = podman_with_binary("/src/bin")
        .env("API_TOKEN", DECOY)
        .options(&without)
        .run(&inside[0], &inside[1..]);
    run.expect_code(125)
        .stderr_has("no agent at /run/with-secrets.sock (WITH_SECRETS_AGENT)")
        .stdout_is("")
        .never_shows(TOKEN)
        .never_shows(DECOY);
}

/// The remote side of the SSH recipe: a project folder with
/// examples/secrets.toml, a HOME of its own, and the folder standing for
/// /run/user/ID where the forwarded socket goes.
struct Remote {
    project: tempfile::TempDir,
    home: tempfile::TempDir,
    run_user: tempfile::TempDir,
}

impl Remote {
    fn new() -> Self {
        let project = workspace();
        let home = tempfile::tempdir().unwrap();
        let run_user = tempfile::Builder::new()
            .prefix("with-secrets-run-user.")
            .tempdir()
            .unwrap();
        Self {
            project,
            home,
            run_user,
        }
    }

    fn socket(&self) -> PathBuf {
        self.run_user.path().join("with-secrets.sock")
    }

    /// The remote shell's line: in the project, with only PATH, HOME,
    /// WITH_SECRETS_AGENT and the decoy API_TOKEN (no session bus), run
    /// `with-secrets -- sh -c 'printf [%s] "$API_TOKEN"'`.
    fn line(&self) -> String {
        let socket = self.socket();
        let env = sshd::clean_env(
            &[
                ("PATH", "/usr/bin:/bin"),
                ("HOME", &self.home.path().to_string_lossy()),
                ("WITH_SECRETS_AGENT", &socket.to_string_lossy()),
                ("API_TOKEN", DECOY),
            ],
            BIN,
            &["--", "sh", "-c", "printf '[%s]' \"$API_TOKEN\""],
        );
        format!(
            "cd {} && {env}",
            sshd::quote(&self.project.path().to_string_lossy())
        )
    }
}

#[test]
fn over_ssh_dash_r_the_remote_run_resolves_from_the_hosts_keyring() {
    let host = Host::new();
    let mut agent = host.agent(&[]);
    let sshd = Sshd::start();
    let remote = Remote::new();
    let socket = remote.socket();
    for session in ["first", "second"] {
        // The second session binds the same remote path again: sshd's
        // StreamLocalBindUnlink replaces the socket the first one left.
        let run = sshd.run(&[(&socket, &agent.socket)], &remote.line());
        run.success();
        assert_eq!(run.stdout(), format!("[{TOKEN}]"), "{session} session");
        run.stderr_lacks(TOKEN);
        // The peer is the ssh client, on this machine, of this uid.
        let log = agent.log_until("found 1 of 2");
        assert!(
            log.contains(" pid ")
                && log.contains(" uid 0: get ")
                && log.contains("with-secrets-example / ci-bot")
                && !log.contains(TOKEN),
            "{log}"
        );
    }
    assert_eq!(
        crate::support::files_containing(remote.project.path(), TOKEN),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        crate::support::files_containing(remote.home.path(), TOKEN),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn over_ssh_without_the_agent_the_remote_run_fails_and_names_the_socket() {
    let host = Host::new();
    let agent = host.agent(&[]);
    let sshd = Sshd::start();
    let remote = Remote::new();
    let socket = remote.socket();

    // A session without `-R`: nothing at the path.
    let run = sshd.run(&[], &remote.line());
    run.expect_code(125)
        .stderr_has(&format!(
            "no agent at {} (WITH_SECRETS_AGENT): nothing is there",
            socket.display()
        ))
        .stdout_is("")
        .never_shows(TOKEN)
        .never_shows(DECOY);

    // With `-R`, but the agent on the host stopped: the forwarded socket
    // leads nowhere.
    let local = agent.socket.clone();
    agent.stop();
    assert!(!local.exists());
    let run = sshd.run(&[(&socket, &local)], &remote.line());
    run.expect_code(125)
        .stderr_has(&format!("the agent at {} failed", socket.display()))
        .stdout_is("")
        .never_shows(TOKEN)
        .never_shows(DECOY);
}

/// The agent serves the entries of each `-m` manifest; on the remote side
/// `check` finds what the host's keyring holds and says where to store what
/// it lacks: on the agent's machine.
#[test]
fn over_ssh_check_says_to_store_a_missing_value_where_the_agent_runs() {
    const EXTRA: &str =
        "[secrets]\nDEPLOY_KEY = { service = \"with-secrets-example\", username = \"deploy\" }\n";
    let host = Host::new();
    let extra = host.test.path().join("extra.toml");
    std::fs::write(&extra, EXTRA).unwrap();
    let main = host.test.path().join("secrets.toml");
    let mut agent = host.agent(&["-m", main.to_str().unwrap(), "-m", extra.to_str().unwrap()]);
    let sshd = Sshd::start();
    let remote = Remote::new();
    let manifest = remote.project.path().join("secrets.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("DEPLOY_KEY = { username = \"deploy\" }\n");
    std::fs::write(&manifest, text).unwrap();
    let socket = remote.socket();
    let line = format!(
        "cd {} && {}",
        sshd::quote(&remote.project.path().to_string_lossy()),
        sshd::clean_env(
            &[
                ("PATH", "/usr/bin:/bin"),
                ("HOME", &remote.home.path().to_string_lossy()),
                ("WITH_SECRETS_AGENT", &socket.to_string_lossy()),
            ],
            BIN,
            &["check"],
        )
    );
    let run = sshd.run(&[(&socket, &agent.socket)], &line);
    run.expect_code(1).never_shows(TOKEN);
    let stdout = run.stdout();
    assert!(
        stdout.contains("API_TOKEN   with-secrets-example  ci-bot      found"),
        "{stdout}"
    );
    assert!(
        stdout.contains("missing: not stored where the agent runs"),
        "{stdout}"
    );
    let log = agent.log_until("found 1 of 3");
    assert!(log.contains("with-secrets-example / deploy"), "{log}");
}
