//! `with-secrets agent` and the `agent` store, end to end: a real agent
//! (tests/support/agent.rs) in front of a private gnome-keyring, the file
//! store and OpenBao, and clients run as in a container (another HOME, no
//! session bus, no XDG_RUNTIME_DIR, only WITH_SECRETS_AGENT).

use std::io::Read as _;

use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::support::agent::{Agent, mode};
use crate::support::bao::Bao;
use crate::support::{
    BIN, BoundedOutput as _, Run, SecretService, Test, manifest_for, needs_root, wait, wait_for,
};

const PASSPHRASE: &str = "agent test passphrase";

/// A value with shell syntax, quotes, non-ASCII text and an inner newline.
const TRICKY: &str = "pä$$ 'q' \"d\" `x`\nline two";

/// The manifest most tests serve: TOKEN and DB.
fn two_entries() -> String {
    manifest_for(&[("TOKEN", "acme", "token"), ("DB", "acme", "db")])
}

/// A project on the agent's side whose store is the file store, unlocked
/// by WITH_SECRETS_PASSPHRASE.
fn file_host(manifest: &str) -> Test {
    let test = Test::new().manifest(manifest);
    let data = test.path().join("data");
    test.env("XDG_DATA_HOME", data)
        .env("WITH_SECRETS_STORE", "file")
        .env("WITH_SECRETS_PASSPHRASE", PASSPHRASE)
}

/// A socket path in `test`'s folder.
fn socket_in(test: &Test, name: &str) -> String {
    test.path().join(name).to_string_lossy().into_owned()
}

/// The uid the agent and its clients run as.
fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// Runs `-- sh -c 'printf …'` over `names` in `client`, and returns the
/// run and the pid it had (with-secrets execs the command in place).
fn printed(client: &Test, names: &[&str]) -> (u32, Run) {
    let script = names
        .iter()
        .map(|name| format!("\"${name}\""))
        .collect::<Vec<_>>()
        .join(" ");
    let format = vec!["%s"; names.len()].join("|");
    let printf = format!("printf '{format}' {script}");
    let mut command = client.command(["--", "sh", "-c", &printf]);
    command.stdin(std::process::Stdio::null());
    let child = command.spawn().expect("spawn with-secrets");
    let pid = child.id();
    (
        pid,
        Run {
            output: wait(child),
        },
    )
}

#[test]
fn values_in_a_private_keyring_reach_a_client_with_no_keyring_one_round_trip_per_run() {
    let service = SecretService::start();
    let host = Test::new().manifest(&two_entries()).keyring(&service);
    host.run_input("keyring-token-4471", ["set", "TOKEN"])
        .success();
    host.run_input(TRICKY, ["set", "DB"]).success();
    let mut agent = Agent::start(&host, &["agent", "--socket", &socket_in(&host, "a.sock")]);
    agent.log_until("serving secret-service for the 2 entries of ");

    let client = agent.client(&two_entries());
    for run in 1..=2 {
        let (pid, output) = printed(&client, &["TOKEN", "DB"]);
        output
            .success()
            .stdout_is(&format!("keyring-token-4471|{TRICKY}"));
        // This run's request is the next one logged, and is request #run:
        // one connection per run.
        let start = format!(" pid {pid} uid {}: get ", uid());
        let before = agent.log_until(&start);
        assert!(
            !before[..before.len() - start.len()].contains(": get ")
                && before.ends_with(&format!("with-secrets agent: #{run}{start}")),
            "run {run} is not request #{run} alone: {before}"
        );
        let line = agent.log_until("\n");
        assert_eq!(line, "acme / token, acme / db: found 2 of 2\n");
    }
    let log = agent.stop(libc::SIGTERM);
    log.success()
        .never_shows("keyring-token-4471")
        .never_shows(&BASE64.encode("keyring-token-4471"))
        .never_shows("pä$$")
        .never_shows(&BASE64.encode(TRICKY));
    let requests = log.stderr().matches(": get ").count();
    assert_eq!(requests, 2, "one logged request per run:\n{}", log.stderr());
}

#[test]
fn the_file_store_is_served_unlocked_and_the_client_has_no_passphrase() {
    let host = file_host(&two_entries());
    host.run_input("file-token-9120", ["set", "TOKEN"])
        .success();
    host.run_input(TRICKY, ["set", "DB"]).success();
    let mut agent = Agent::start(&host, &["agent", "--socket", &socket_in(&host, "a.sock")]);
    agent.log_until("serving file for the 2 entries of ");
    let client = agent.client(&two_entries());
    assert_eq!(
        client.seen(&["TOKEN", "DB", "WITH_SECRETS_PASSPHRASE"]),
        format!("file-token-9120|{TRICKY}|")
    );
    agent.log_until("get acme / token, acme / db: found 2 of 2\n");
    agent
        .stop(libc::SIGTERM)
        .success()
        .never_shows("file-token-9120")
        .never_shows(PASSPHRASE);
}

#[test]
fn openbao_is_served_and_only_the_agent_has_its_address_and_token() {
    let server = Bao::dev();
    server.ok(&[
        "kv",
        "put",
        "secret/acme",
        "token=bao-token-5512",
        "db=bao-db",
    ]);
    let host = server.client(Test::new().manifest(&two_entries()));
    let mut agent = Agent::start(
        &host,
        &[
            "--store",
            "vault",
            "agent",
            "--socket",
            &socket_in(&host, "a.sock"),
        ],
    );
    agent.log_until("serving vault for the 2 entries of ");
    let client = agent.client(&two_entries());
    assert_eq!(
        client.seen(&["TOKEN", "DB", "BAO_ADDR", "BAO_TOKEN"]),
        "bao-token-5512|bao-db||"
    );
    agent.log_until("get acme / token, acme / db: found 2 of 2\n");
    agent
        .stop(libc::SIGTERM)
        .success()
        .never_shows("bao-token-5512")
        .never_shows(&server.token);
}

#[test]
fn an_entry_the_agent_does_not_serve_is_refused_by_name_and_the_environment_never_stands_in() {
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    host.run_input("served-3310", ["set", "TOKEN"]).success();
    let socket = socket_in(&host, "a.sock");
    let mut agent = Agent::start(&host, &["agent", "--socket", &socket]);
    let client = agent.client(&manifest_for(&[
        ("TOKEN", "acme", "token"),
        ("EXTRA", "other", "thing"),
    ]));
    let run = client.run_env(
        &[("EXTRA", "stand-in"), ("TOKEN", "stand-in")],
        ["--", "sh", "-c", "printf %s \"$TOKEN$EXTRA\""],
    );
    run.expect_code(125)
        .stdout_is("")
        .stderr_has(&format!(
            "the agent at {socket} says: refused: the agent does not serve other / thing"
        ))
        .stderr_has("start it again with a -m for the manifest that names it too")
        .never_shows("stand-in")
        .never_shows("served-3310");
    agent.log_until("get acme / token, other / thing: refused, not served\n");

    // Nothing at the path the variable names: the same, never the
    // environment.
    let gone = client
        .env("WITH_SECRETS_AGENT", socket_in(&host, "nothing-here.sock"))
        .run_env(
            &[("TOKEN", "stand-in")],
            ["--", "sh", "-c", "printf %s \"$TOKEN\""],
        );
    gone.expect_code(125)
        .stdout_is("")
        .stderr_has("nothing-here.sock (WITH_SECRETS_AGENT): nothing is there");
}

#[test]
fn an_agent_started_with_two_manifests_serves_the_entries_of_both() {
    let host = file_host("")
        .file(
            "a/secrets.toml",
            manifest_for(&[("TOKEN", "acme", "token")]),
        )
        .file(
            "b/secrets.toml",
            manifest_for(&[("EXTRA", "other", "thing")]),
        );
    host.run_input("from-a", ["-m", "a/secrets.toml", "set", "TOKEN"])
        .success();
    host.run_input("from-b", ["-m", "b/secrets.toml", "set", "EXTRA"])
        .success();
    let mut agent = Agent::start(
        &host,
        &[
            "-m",
            "a/secrets.toml",
            "-m",
            "b/secrets.toml",
            "agent",
            "--socket",
            &socket_in(&host, "a.sock"),
        ],
    );
    agent.log_until("serving file for the 2 entries of ");
    let client = agent.client(&manifest_for(&[
        ("TOKEN", "acme", "token"),
        ("EXTRA", "other", "thing"),
    ]));
    assert_eq!(client.seen(&["TOKEN", "EXTRA"]), "from-a|from-b");
}

#[test]
fn a_read_only_agent_refuses_set_and_one_started_with_allow_writes_stores_on_the_host() {
    let service = SecretService::start();
    let host = Test::new().manifest(&two_entries()).keyring(&service);
    let socket = socket_in(&host, "a.sock");
    let mut agent = Agent::start(&host, &["agent", "--socket", &socket]);
    let client = agent.client(&two_entries());
    client
        .run_input("written-7781", ["set", "TOKEN"])
        .expect_code(125)
        .stderr_has(&format!(
            "the agent at {socket} says: refused: the agent is read-only"
        ))
        .stderr_has("--allow-writes")
        .never_shows("written-7781");
    agent.log_until("set acme / token: refused, read-only\n");
    assert_eq!(service.items("acme", "token"), Vec::new());
    agent
        .stop(libc::SIGTERM)
        .success()
        .never_shows("written-7781");

    let mut agent = Agent::start(&host, &["agent", "--allow-writes", "--socket", &socket]);
    client
        .run_input("written-7781", ["set", "TOKEN"])
        .success()
        .never_shows("written-7781");
    agent.log_until("set acme / token: done\n");
    host.run(["get", "TOKEN"])
        .success()
        .stdout_is("written-7781");
    agent
        .stop(libc::SIGTERM)
        .success()
        .never_shows("written-7781");
}

#[test]
fn a_peer_of_another_uid_is_refused_and_logged() {
    needs_root("the client runs as nobody through setpriv");
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    host.run_input("root-only-6620", ["set", "TOKEN"]).success();
    // The default place, so that nobody can reach it once opened by hand.
    let mut agent = Agent::start(&host, &["agent"]);
    let folder = agent.socket.parent().expect("a folder").to_owned();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&agent.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // As nobody, in a client project nobody can read.
    let as_nobody = |client: &Test| {
        for path in [client.path().to_owned(), client.path().join("home")] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let output = Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                BIN,
            ])
            .args(["--", "sh", "-c", "printf %s \"$TOKEN\""])
            .current_dir(client.path())
            .env_clear()
            .envs(client.envs())
            .env("TOKEN", "stand-in")
            .bounded_output()
            .expect("setpriv from util-linux");
        Run { output }
    };
    let refused = format!(
        "refused: this agent answers only uid {} and root, and this is uid 65534",
        uid()
    );
    as_nobody(&agent.client(&manifest_for(&[("TOKEN", "acme", "token")])))
        .expect_code(125)
        .stdout_is("")
        .stderr_has(&refused)
        .never_shows("root-only-6620");
    agent.log_until("uid 65534: refused: not uid 0 or root\n");

    // A request larger than the socket's buffer: the agent refuses before
    // it is all written, and the refusal still reaches the client.
    let names: Vec<(String, String)> = (0..100)
        .map(|n| (format!("BIG{n}"), format!("{n}-{}", "u".repeat(4000))))
        .collect();
    let big: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|(name, username)| (name.as_str(), "acme", username.as_str()))
        .collect();
    as_nobody(&agent.client(&manifest_for(&big)))
        .expect_code(125)
        .stdout_is("")
        .stderr_has(&refused);
    agent.log_until("uid 65534: refused: not uid 0 or root\n");
}

#[test]
fn a_stale_socket_is_named_and_replaced_and_a_live_one_is_left_alone() {
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    host.run_input("stale-test-2208", ["set", "TOKEN"])
        .success();
    let socket = socket_in(&host, "a.sock");
    let mut first = Agent::start(&host, &["agent", "--socket", &socket]);
    let client = first.client(&manifest_for(&[("TOKEN", "acme", "token")]));
    assert_eq!(client.seen(&["TOKEN"]), "stale-test-2208");

    first.kill();
    let left = std::fs::symlink_metadata(&socket).expect("SIGKILL leaves the socket");
    assert!(left.file_type().is_socket());
    client
        .run_env(
            &[("TOKEN", "stand-in")],
            ["--", "sh", "-c", "printf %s \"$TOKEN\""],
        )
        .expect_code(125)
        .stdout_is("")
        .stderr_has(&format!(
            "no agent listens at {socket} (WITH_SECRETS_AGENT): the socket is left from one \
             that stopped"
        ));

    let mut second = Agent::start(&host, &["agent", "--socket", &socket]);
    second.log_until(&format!("removed {socket}, a socket nobody listened on\n"));
    assert_eq!(client.seen(&["TOKEN"]), "stale-test-2208");

    let third = host.run(["agent", "--socket", &socket]);
    third
        .expect_code(125)
        .stdout_is("")
        .stderr_has(&format!("an agent already listens on {socket}"));
    assert_eq!(client.seen(&["TOKEN"]), "stale-test-2208");
    second.stop(libc::SIGTERM).success();
}

/// A TCP server that accepts, reads, and never answers; a message on the
/// channel for each connection it has read from.
fn silent_server() -> (String, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (read, reads) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = read.send(());
            held.push(stream);
        }
    });
    (address, reads)
}

#[test]
fn a_slow_far_side_is_bounded_by_the_runs_timeout_and_an_agent_killed_mid_run_fails_it_at_once() {
    let (address, reads) = silent_server();
    let host = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "acme", "token")]))
        .env("BAO_ADDR", &address)
        .env("BAO_TOKEN", "t");
    let agent_args = |socket| {
        [
            "--timeout",
            "600",
            "--store",
            "vault",
            "agent",
            "--socket",
            socket,
        ]
    };

    // Killed while a run waits for its answer: the run fails then, long
    // before its own deadline (600 s; `wait_for` gives up at 60).
    let socket = socket_in(&host, "killed.sock");
    let mut agent = Agent::start(&host, &agent_args(&socket));
    let client = agent.client(&manifest_for(&[("TOKEN", "acme", "token")]));
    let mut command = client.command(["--timeout", "600", "--", "true"]);
    command
        .stdin(std::process::Stdio::null())
        .env("TOKEN", "stand-in");
    let waiting = command.spawn().expect("spawn with-secrets");
    reads
        .recv_timeout(Duration::from_secs(60))
        .expect("the agent's store asks the server");
    agent.kill();
    Run {
        output: wait_for(waiting, Duration::from_secs(60)),
    }
    .expect_code(125)
    .stderr_has(&format!(
        "the agent at {socket} failed: it closed the connection before answering"
    ))
    .never_shows("stand-in");

    // The far side never answers: the run's --timeout holds.
    let socket = socket_in(&host, "slow.sock");
    let agent = Agent::start(&host, &agent_args(&socket));
    let client = agent.client(&manifest_for(&[("TOKEN", "acme", "token")]));
    bounded(
        client.command(["--timeout", "2", "--", "true"]),
        &[("TOKEN", "stand-in".as_ref())],
    )
    .expect_code(125)
    .stderr_has(&format!("the agent at {socket} did not answer within 2 s"))
    .never_shows("stand-in");
}

#[test]
fn twenty_concurrent_runs_through_one_agent_all_get_their_values() {
    // Four entries, each asked for by its own client project, so that an
    // answer given to the wrong connection shows.
    let entries: Vec<(String, String)> = (0..4)
        .map(|n| (format!("VALUE{n}"), format!("entry-{n}")))
        .collect();
    let all: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(name, username)| (name.as_str(), "acme", username.as_str()))
        .collect();
    let host = file_host(&manifest_for(&all));
    for (name, _) in &entries {
        host.run_input(format!("{TRICKY} {name}"), ["set", name])
            .success();
    }
    let mut agent = Agent::start(&host, &["agent", "--socket", &socket_in(&host, "a.sock")]);
    let clients: Vec<Test> = all
        .iter()
        .map(|entry| agent.client(&manifest_for(&[*entry])))
        .collect();
    let seen: Vec<(usize, String)> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..20)
            .map(|run| {
                let (client, (name, _)) = (&clients[run % 4], &entries[run % 4]);
                scope.spawn(move || (run, client.seen(&[name])))
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    for (run, value) in &seen {
        assert_eq!(value, &format!("{TRICKY} VALUE{}", run % 4), "run {run}");
    }
    for _ in 0..20 {
        agent.log_until(": found 1 of 1\n");
    }
    let log = agent.stop(libc::SIGTERM);
    log.success();
    assert_eq!(
        log.stderr().matches(": get ").count(),
        20,
        "{}",
        log.stderr()
    );
}

/// What `eval "$LINE"` sets WITH_SECRETS_AGENT to, in sh.
fn evaluated(line: &str) -> String {
    let output = Command::new("sh")
        .args(["-c", "eval \"$LINE\"; printf %s \"$WITH_SECRETS_AGENT\""])
        .env("LINE", line)
        .bounded_output()
        .expect("sh");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_socket_path_with_spaces_quotes_and_dollars_is_quoted_in_the_line() {
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    host.run_input("quoted-path", ["set", "TOKEN"]).success();
    let socket = socket_in(&host, "it's $HOME; `x`.sock");
    let agent = Agent::start(&host, &["agent", "--socket", &socket]);
    assert_eq!(evaluated(&agent.line), socket);
    let client = agent.client(&manifest_for(&[("TOKEN", "acme", "token")]));
    assert_eq!(client.seen(&["TOKEN"]), "quoted-path");
}

#[test]
fn the_default_socket_is_private_its_line_evaluates_and_sigterm_removes_it() {
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    host.run_input("default-place", ["set", "TOKEN"]).success();
    let runtime = host.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let host = host.env("XDG_RUNTIME_DIR", &runtime);
    let agent = Agent::start(&host, &["agent"]);

    let folder = agent.socket.parent().expect("a folder").to_owned();
    assert_eq!(folder.parent(), Some(runtime.as_path()));
    let name = folder.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("with-secrets-agent."), "{name}");
    assert_eq!(agent.socket.file_name().unwrap(), "agent.sock");
    assert_eq!(mode(&folder), 0o700);
    assert!(
        std::fs::symlink_metadata(&agent.socket)
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert_eq!(mode(&agent.socket), 0o600);

    assert_eq!(evaluated(&agent.line), agent.socket.to_string_lossy());
    let client = agent.client(&manifest_for(&[("TOKEN", "acme", "token")]));
    assert_eq!(client.seen(&["TOKEN"]), "default-place");

    let socket = agent.socket.clone();
    agent
        .stop(libc::SIGTERM)
        .success()
        .stderr_has("stopped by signal 15; removed the socket");
    assert!(!socket.exists(), "the socket is left");
    assert!(!folder.exists(), "its folder is left");
}

#[test]
fn doctor_on_the_client_shows_the_agent_and_that_auto_uses_it() {
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    host.run_input("doctor-value", ["set", "TOKEN"]).success();
    let socket = socket_in(&host, "a.sock");
    let agent = Agent::start(&host, &["agent", "--socket", &socket]);
    let client = agent.client(&manifest_for(&[("TOKEN", "acme", "token")]));
    let manifest = std::fs::canonicalize(host.path().join("secrets.toml")).unwrap();
    let doctor = client.run(["doctor"]);
    doctor
        .success()
        .never_shows("doctor-value")
        .never_shows(PASSPHRASE);
    let stdout = doctor.stdout();
    let line = |label: &str| {
        stdout
            .lines()
            .find(|line| line.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line:\n{stdout}"))
            .trim_start()
            .to_owned()
    };
    assert_eq!(
        line("agent:"),
        format!(
            "agent:          {socket} answers: with-secrets {}, serving file for the entries of \
             {} (read-only)",
            env!("CARGO_PKG_VERSION"),
            manifest.display()
        )
    );
    assert_eq!(
        line("uses:"),
        "uses:           agent (auto: WITH_SECRETS_AGENT is set)"
    );

    agent.stop(libc::SIGTERM).success();
    let doctor = client.run(["doctor"]);
    assert!(
        doctor
            .stdout()
            .contains(&format!("agent:          FAILS: no agent at {socket}")),
        "{}",
        doctor.stdout()
    );
}

#[test]
fn an_agent_that_cannot_print_its_line_leaves_no_socket_or_folder_behind() {
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    let runtime = host.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    let host = host.env("XDG_RUNTIME_DIR", &runtime);
    let socket = socket_in(&host, "a.sock");
    for args in [vec!["agent", "--socket", &socket], vec!["agent"]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let mut command = host.command(&args);
        command.stdin(std::process::Stdio::null()).stdout(full);
        let run = Run {
            output: wait(command.spawn().expect("spawn with-secrets")),
        };
        run.expect_code(125)
            .stderr_has("cannot write to standard output");
        assert!(
            std::fs::symlink_metadata(&socket).is_err(),
            "{args:?} left {socket}"
        );
        let left: Vec<_> = std::fs::read_dir(&runtime).unwrap().collect();
        assert!(
            left.is_empty(),
            "{args:?} left {left:?} in {}",
            runtime.display()
        );
    }
}

#[test]
fn an_agent_that_cannot_listen_in_its_folder_removes_the_folder() {
    // A runtime folder so deep that the socket's path is too long to bind.
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    let runtime = host.path().join("r".repeat(100));
    std::fs::create_dir(&runtime).unwrap();
    let host = host.env("XDG_RUNTIME_DIR", &runtime);
    host.run(["agent"])
        .expect_code(125)
        .stdout_is("")
        .stderr_has("cannot listen on ");
    let left: Vec<_> = std::fs::read_dir(&runtime).unwrap().collect();
    assert!(left.is_empty(), "left {left:?}");
}

#[test]
fn peers_that_leave_before_the_answer_or_send_garbage_leave_the_agent_serving() {
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    host.run_input("still-served", ["set", "TOKEN"]).success();
    let mut agent = Agent::start(&host, &["agent", "--socket", &socket_in(&host, "a.sock")]);
    // Ask, and leave at once: the answer goes to a closed connection.
    for _ in 0..10 {
        let mut stream = UnixStream::connect(&agent.socket).expect("connect");
        stream
            .write_all(
                b"{\"op\":\"get\",\"keys\":[{\"service\":\"acme\",\"username\":\"token\"}]}\n",
            )
            .expect("write");
    }
    // Connect and say nothing; then a line that is not a request.
    drop(UnixStream::connect(&agent.socket).expect("connect"));
    let mut stream = UnixStream::connect(&agent.socket).expect("connect");
    stream.write_all(b"not a request\n").expect("write");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while answer.last() != Some(&b'\n') {
        match stream.read(&mut byte).expect("an answer within 60 s") {
            0 => panic!("closed before answering: {answer:?}"),
            _ => answer.push(byte[0]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains("\"error\""), "{answer}");
    drop(stream);

    let client = agent.client(&manifest_for(&[("TOKEN", "acme", "token")]));
    assert_eq!(client.seen(&["TOKEN"]), "still-served");
    agent.log_until(": get acme / token: found 1 of 1\n");
    agent
        .stop(libc::SIGTERM)
        .success()
        .never_shows("still-served");
}

#[test]
fn store_agent_names_the_agent_and_check_says_where_to_store_a_missing_value() {
    let host = file_host(&two_entries());
    host.run_input("named-store", ["set", "TOKEN"]).success();
    let agent = Agent::start(&host, &["agent", "--socket", &socket_in(&host, "a.sock")]);
    let client = agent.client(&two_entries());
    client
        .run(["--store", "agent", "--", "true"])
        .expect_code(125)
        .stderr_has("1 required secret is missing from agent and the environment")
        .stderr_has("store each one where the agent runs: there, `with-secrets set` the entry")
        .stderr_lacks("  with-secrets set DB");
    let check = client.run(["check"]);
    assert!(
        format!("{}{}", check.stdout(), check.stderr())
            .contains("missing: not stored where the agent runs"),
        "{check:?}"
    );
    host.run_input(TRICKY, ["set", "DB"]).success();
    assert_eq!(
        client.seen_with(&["--store", "agent"], &["TOKEN", "DB"]),
        format!("named-store|{TRICKY}")
    );
    client
        .env("WITH_SECRETS_AGENT", "")
        .run_env(
            &[("TOKEN", "stand-in")],
            ["--store", "agent", "--", "sh", "-c", "printf %s \"$TOKEN\""],
        )
        .expect_code(125)
        .stdout_is("")
        .stderr_has("WITH_SECRETS_AGENT is not set, so there is no agent to ask");
}

/// A socket whose listener never accepts, its queue filled by connections
/// that wait: one more connect would block for as long as none is accepted.
#[test]
fn a_connect_to_an_agent_whose_queue_is_full_ends_at_the_runs_timeout() {
    use std::os::unix::net::{UnixListener, UnixStream};
    let test = Test::new().manifest(&manifest_for(&[("TOKEN", "acme", "token")]));
    let socket = socket_in(&test, "full.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let mut queued = Vec::new();
    // Non-blocking, so that the one that does not fit says so (EAGAIN).
    loop {
        let fd = {
            // SAFETY: socket() takes no pointers.
            let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            // SAFETY: `fd` was just made and is owned here.
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        };
        let stream = UnixStream::from(fd);
        stream.set_nonblocking(true).unwrap();
        match connect_to(&stream, &socket) {
            Ok(()) => queued.push(stream),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(err) => panic!("queueing a connection: {err}"),
        }
        assert!(queued.len() < 100_000, "the queue never filled");
    }
    bounded(
        test.command(["--timeout", "1", "--", "true"]),
        &[
            ("WITH_SECRETS_AGENT", socket.as_ref()),
            ("TOKEN", "stand-in".as_ref()),
        ],
    )
    .expect_code(125)
    .stderr_has(&format!("the agent at {socket} did not answer within 1 s"))
    .never_shows("stand-in");
    drop((listener, queued));
}

/// connect(2) on `stream` to the socket at `path`.
fn connect_to(stream: &std::os::unix::net::UnixStream, path: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: plain data, zeroed is an empty address.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, &from) in address.sun_path.iter_mut().zip(path.as_bytes()) {
        *to = from as libc::c_char;
    }
    let length = std::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
    // SAFETY: a valid address of `length` bytes, on our open socket.
    let connected = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            (&raw const address).cast(),
            length as libc::socklen_t,
        )
    };
    if connected == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Without XDG_RUNTIME_DIR the private folder is made in the temporary
/// folder; Ctrl-C (SIGINT) and SIGHUP stop the agent as SIGTERM does.
#[test]
fn without_a_runtime_folder_the_socket_goes_to_tmpdir_and_sigint_or_sighup_stop_it() {
    for (signal, number) in [(libc::SIGINT, 2), (libc::SIGHUP, 1)] {
        let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
        host.run_input("in-tmp", ["set", "TOKEN"]).success();
        let tmp = host.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let host = host.env("TMPDIR", &tmp);
        let agent = Agent::start(&host, &["agent"]);
        let folder = agent.socket.parent().expect("a folder").to_owned();
        assert_eq!(folder.parent(), Some(tmp.as_path()));
        assert_eq!(mode(&folder), 0o700);
        let client = agent.client(&manifest_for(&[("TOKEN", "acme", "token")]));
        assert_eq!(client.seen(&["TOKEN"]), "in-tmp");
        let socket = agent.socket.clone();
        agent
            .stop(signal)
            .success()
            .stderr_has(&format!("stopped by signal {number}; removed the socket"));
        assert!(!socket.exists() && !folder.exists(), "signal {number}");
    }
}

/// The agent's store fails (here: the file store's passphrase is wrong on
/// the agent's side): the run stops with the store's own message, and a
/// same-named variable does not stand in.
#[test]
fn a_store_failing_behind_the_agent_stops_the_run_with_its_message() {
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    host.run_input("right", ["set", "TOKEN"]).success();
    let host = host.env("WITH_SECRETS_PASSPHRASE", "not the passphrase");
    let socket = socket_in(&host, "wrong.sock");
    let agent = Agent::start(&host, &["agent", "--socket", &socket]);
    let client = agent.client(&manifest_for(&[("TOKEN", "acme", "token")]));
    client
        .run_env(&[("TOKEN", "stand-in")], ["--", "printenv", "TOKEN"])
        .expect_code(125)
        .stderr_has(&format!(
            "the agent at {socket} says: the password does not open"
        ))
        .never_shows("stand-in")
        .never_shows("right");
    agent
        .stop(libc::SIGTERM)
        .success()
        .stderr_has("get acme / token: failed: the password does not open")
        .never_shows("right");
}

/// What a hostile (or broken) agent does to every connection.
#[derive(Clone, Copy)]
enum Hostile {
    Garbage,
    Endless,
    Silent,
    OtherVersion,
    TooManyValues,
}

/// A socket in `test`'s folder on which `hostile` answers, until the test
/// process ends.
fn hostile_agent(test: &Test, name: &str, hostile: Hostile) -> String {
    use std::io::Write as _;
    let socket = socket_in(test, name);
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                // As an agent does, it reads the request before it answers.
                let mut request = [0u8; 4096];
                let _ = std::io::Read::read(&mut stream, &mut request);
                let hello = format!(
                    "{{\"protocol\":1,\"version\":\"{}\",\"store\":\"file\"}}\n",
                    env!("CARGO_PKG_VERSION")
                );
                let _ = match hostile {
                    Hostile::Garbage => stream.write_all(b"<html>not an agent</html>\n"),
                    Hostile::Endless => {
                        let chunk = vec![b'x'; 1 << 20];
                        while stream.write_all(&chunk).is_ok() {}
                        Ok(())
                    }
                    Hostile::Silent => {
                        // Holds the connection open, answering nothing.
                        let mut sink = [0u8; 1024];
                        while matches!(std::io::Read::read(&mut stream, &mut sink), Ok(n) if n > 0)
                        {
                        }
                        Ok(())
                    }
                    Hostile::OtherVersion => stream
                        .write_all(b"{\"protocol\":9,\"version\":\"9.9.9\",\"store\":\"file\"}\n"),
                    Hostile::TooManyValues => stream
                        .write_all(format!("{hello}{{\"found\":[null,null,null]}}\n").as_bytes()),
                };
            });
        }
    });
    socket
}

/// An agent that answers garbage, never ends its line, never answers, is
/// another version, or answers more values than asked: each run stops by
/// its deadline with exit 125 and says what the agent did, and a same-named
/// variable does not stand in.
#[test]
fn a_hostile_or_broken_agent_fails_the_run_by_name_within_its_timeout() {
    let test = Test::new().manifest(&manifest_for(&[("TOKEN", "acme", "token")]));
    for (name, hostile, message) in [
        ("garbage.sock", Hostile::Garbage, "not the bridge protocol"),
        (
            "endless.sock",
            Hostile::Endless,
            "it sent a line longer than 16 MiB",
        ),
        ("silent.sock", Hostile::Silent, "did not answer within 2 s"),
        (
            "version.sock",
            Hostile::OtherVersion,
            "is with-secrets 9.9.9, protocol 9",
        ),
        ("many.sock", Hostile::TooManyValues, "3 values for 1 keys"),
    ] {
        let socket = hostile_agent(&test, name, hostile);
        bounded(
            test.command(["--timeout", "2", "--", "printenv", "TOKEN"]),
            &[
                ("WITH_SECRETS_AGENT", socket.as_ref()),
                ("TOKEN", "stand-in".as_ref()),
            ],
        )
        .expect_code(125)
        .stderr_has(&format!("the agent at {socket}"))
        .stderr_has(message)
        .never_shows("stand-in");
    }
}

/// Every profile's entries are served as a run with that profile asks for
/// them: a profile's own entries, and [secrets] entries whose service comes
/// from the profile's defaults.
#[test]
fn every_profiles_entries_are_served_as_runs_with_that_profile_ask_for_them() {
    let manifest = "[defaults]\nservice = \"base\"\n\n[secrets]\nTOKEN = { username = \"token\" }\n\n\
                    [profiles.staging.defaults]\nservice = \"staging\"\n\n\
                    [profiles.staging.secrets]\nEXTRA = { service = \"other\", username = \"extra\" }\n";
    let host = file_host(manifest);
    host.run_input("base-token", ["set", "TOKEN"]).success();
    host.run_input("staging-token", ["--profile", "staging", "set", "TOKEN"])
        .success();
    host.run_input("extra", ["--profile", "staging", "set", "EXTRA"])
        .success();
    let socket = socket_in(&host, "profiles.sock");
    let agent = Agent::start(&host, &["agent", "--socket", &socket]);
    let client = agent.client(manifest);
    assert_eq!(client.seen(&["TOKEN"]), "base-token");
    assert_eq!(
        client.seen_with(&["--profile", "staging"], &["TOKEN", "EXTRA"]),
        "staging-token|extra"
    );
}

/// A store named by the run (here WITH_SECRETS_STORE) is used as named,
/// even where WITH_SECRETS_AGENT is set: only `auto` asks the agent.
#[test]
fn a_store_named_by_the_run_is_used_even_where_an_agent_is_named() {
    let test = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    test.run_input("local-file", ["set", "TOKEN"]).success();
    let gone = socket_in(&test, "no-agent-here.sock");
    let test = test.env("WITH_SECRETS_AGENT", &gone);
    assert_eq!(test.seen(&["TOKEN"]), "local-file");
    // Under auto the same run asks the agent, which is not there.
    test.run_env(&[("WITH_SECRETS_STORE", "auto")], ["--", "true"])
        .expect_code(125)
        .stderr_has(&format!("no agent at {gone}"));
}

/// Started in the foreground of a terminal in front of a locked file store,
/// the agent asks for the passphrase there before it prints its line, and
/// then serves without asking again.
#[test]
fn on_a_terminal_the_agent_asks_for_the_passphrase_before_its_line_and_never_again() {
    use std::io::Write as _;
    let host = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    host.run_input("asked-once", ["set", "TOKEN"]).success();
    let host = host.env("WITH_SECRETS_PASSPHRASE", "");
    let socket = socket_in(&host, "tty.sock");
    let mut child = host
        .script(&format!("{BIN} agent --socket {socket}"))
        .spawn()
        .expect("script(1) from util-linux");
    let pid = child.id();
    let mut stdout = crate::support::Reader::new(child.stdout.take().unwrap());
    let before = stdout.until("Passphrase for ", pid);
    assert!(!before.contains("WITH_SECRETS_AGENT="), "{before}");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{PASSPHRASE}\n").as_bytes())
        .unwrap();
    stdout.until("export WITH_SECRETS_AGENT;", pid);
    let listening = stdout.until("(pid ", pid);
    assert!(listening.contains("listening on"), "{listening}");
    let agent_pid: libc::pid_t = stdout
        .until(")", pid)
        .trim_end_matches(')')
        .parse()
        .expect("the agent's pid");
    let client = Test::new()
        .manifest(&manifest_for(&[("TOKEN", "acme", "token")]))
        .env("WITH_SECRETS_AGENT", &socket);
    for _ in 0..2 {
        assert_eq!(client.seen(&["TOKEN"]), "asked-once");
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(agent_pid, libc::SIGTERM) };
    drop(stdin);
    let transcript = stdout.rest(pid);
    assert!(
        transcript.contains("stopped by signal 15; removed the socket"),
        "{transcript}"
    );
    let _ = wait_for(child, Duration::from_secs(60));
    assert!(
        !transcript.contains("Passphrase for "),
        "asked again: {transcript}"
    );
    assert!(!transcript.contains("asked-once"), "{transcript}");
}

/// A stale socket of another user is theirs: the agent leaves it and fails.
#[test]
fn another_users_stale_socket_is_left_alone() {
    needs_root("the socket is given to another user");
    let test = file_host(&manifest_for(&[("TOKEN", "acme", "token")]));
    let socket = socket_in(&test, "theirs.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    std::os::unix::fs::chown(&socket, Some(65534), Some(65534)).expect("chown");
    let run = test.run(["agent", "--socket", &socket]);
    run.expect_code(125).stderr_has(&format!(
        "{socket} is another user's socket; nothing was changed"
    ));
    assert!(std::path::Path::new(&socket).exists());
}

/// Through a read-only agent nothing is generated: the entry is missing,
/// and no write is tried.
#[test]
fn nothing_is_generated_through_a_read_only_agent() {
    let manifest = "[secrets]\nSESSION_KEY = { service = \"acme\", username = \"session\", generate = true }\n";
    let host = file_host(manifest);
    let socket = socket_in(&host, "gen.sock");
    let agent = Agent::start(&host, &["agent", "--socket", &socket]);
    let client = agent.client(manifest);
    client
        .run(["--", "true"])
        .expect_code(125)
        .stderr_has("SESSION_KEY");
    agent
        .stop(libc::SIGTERM)
        .success()
        .stderr_lacks("set acme / session");
}

/// Manifests that name different stores are not served by one agent.
#[test]
fn manifests_that_name_different_stores_are_refused_at_start() {
    let test = file_host(&manifest_for(&[("TOKEN", "acme", "token")])).file(
        "other.toml",
        "store = \"keyutils\"\n[secrets]\nDB = { service = \"acme\", username = \"db\" }\n",
    );
    let first = test.path().join("secrets.toml");
    let other = test.path().join("other.toml");
    test.run([
        "-m",
        &first.to_string_lossy(),
        "-m",
        &other.to_string_lossy(),
        "agent",
        "--socket",
        &socket_in(&test, "two.sock"),
    ])
    .expect_code(125)
    .stderr_has("name different stores (or [vault] tables), and an agent serves one");
}

/// A WITH_SECRETS_AGENT that names a file that is not a socket says so.
#[test]
fn an_agent_variable_naming_a_plain_file_says_it_is_not_a_socket() {
    let test = Test::new().manifest(&manifest_for(&[("TOKEN", "acme", "token")]));
    let path = socket_in(&test, "plain-file");
    std::fs::write(&path, "").unwrap();
    test.run_env(&[("WITH_SECRETS_AGENT", &path)], ["--", "true"])
        .expect_code(125)
        .stderr_has(&format!(
            "the agent at {path} failed: it is not a socket (check WITH_SECRETS_AGENT)"
        ));
}

/// Runs `command` with stdin closed and `env` added, waiting at most 60 s:
/// a run that hangs fails the test rather than holding it.
fn bounded(mut command: Command, env: &[(&str, &std::ffi::OsStr)]) -> Run {
    command
        .stdin(std::process::Stdio::null())
        .envs(env.iter().copied());
    let waiting = command.spawn().expect("spawn with-secrets");
    Run {
        output: wait_for(waiting, Duration::from_secs(60)),
    }
}

/// The session cache on the client's side (src/store/cache.rs), in a
/// `keyctl session -` of its own inside a user namespace of its own
/// (tests/keyutils.rs): the namespace maps root to root, so the agent,
/// outside it, takes the client for its own uid.
#[cfg(target_os = "linux")]
mod session_cache {
    use super::{Agent, TRICKY, file_host, socket_in, two_entries};
    use crate::keyutils::{Step, in_session, shell, with_secrets};
    use crate::support::{Test, manifest_for};

    /// A run with `flags`, and `env` (`NAME=value …`, for sh) in its
    /// environment, that prints `names` as `[A|B]`.
    fn printed(env: &str, flags: &[&str], names: &[&str]) -> Step {
        let values = names
            .iter()
            .map(|name| format!("\"${name}\""))
            .collect::<Vec<_>>()
            .join(" ");
        let format = vec!["%s"; names.len()].join("|");
        let printf = format!("printf '[{format}]' {values}");
        let mut args = flags.to_vec();
        args.extend(["--", "sh", "-c", &printf]);
        shell(&format!("{env} \"$BIN\" {}", shell_words::join(args)))
    }

    #[test]
    fn kept_values_are_served_without_the_agent_and_what_is_not_kept_fails_by_name() {
        let host = file_host(&manifest_for(&[
            ("TOKEN", "acme", "token"),
            ("DB", "acme", "db"),
            ("EXTRA", "other", "extra"),
        ]));
        host.run_input("agent-token-6021", ["set", "TOKEN"])
            .success();
        host.run_input(TRICKY, ["set", "DB"]).success();
        host.run_input("agent-extra-6021", ["set", "EXTRA"])
            .success();
        let socket = socket_in(&host, "a.sock");
        let mut agent = Agent::start(&host, &["agent", "--socket", &socket]);
        agent.log_until("serving file for the 3 entries of ");
        let client = agent.client(&two_entries()).file(
            "extra/secrets.toml",
            manifest_for(&[("TOKEN", "acme", "token"), ("EXTRA", "other", "extra")]),
        );
        let both = ["TOKEN", "DB"];
        // SIGTERM, then wait (with a deadline) for the agent to remove its
        // socket on its way out.
        let stop = format!(
            "kill -TERM {pid} && end=$(($(date +%s) + 60)) && \
             while [ -e {socket} ]; do \
               [ $(date +%s) -lt $end ] || {{ echo 'the agent is still there' >&2; exit 1; }}; \
               sleep 0.01; \
             done",
            pid = agent.pid(),
            socket = shell_words::quote(&socket),
        );
        let runs = in_session(
            &client,
            &[
                printed("", &[], &both),
                with_secrets(&["unlock"]),
                printed("", &[], &both),
                printed("", &["-v"], &both),
                with_secrets(&["check"]),
                shell(&stop),
                printed("", &[], &both),
                printed(
                    "TOKEN=stand-in EXTRA=stand-in",
                    &["-m", "extra/secrets.toml"],
                    &["TOKEN", "EXTRA"],
                ),
                printed("TOKEN=stand-in DB=stand-in", &["--no-cache"], &both),
                printed(
                    "TOKEN=stand-in DB=stand-in WITH_SECRETS_NO_CACHE=1",
                    &[],
                    &both,
                ),
                // A false value of the variable leaves the cache on.
                printed("WITH_SECRETS_NO_CACHE=0", &[], &both),
            ],
        );
        let served = format!("[agent-token-6021|{TRICKY}]");
        // Two requests reached the agent: the run before unlock, and the
        // first after it, which filled the cache.
        let log = agent.stop(libc::SIGTERM);
        log.success().never_shows("agent-token-6021");
        assert_eq!(
            log.stderr().matches(": get ").count(),
            2,
            "requests the agent logged:\n{}",
            log.stderr()
        );
        runs[0].success().stdout_is(&served);
        runs[1].success().stderr_has("session cache on for ");
        runs[2].success().stdout_is(&served);
        runs[3]
            .success()
            .stdout_is(&served)
            .stderr_has("session cache: all 2 values kept, so agent was not asked")
            .stderr_has("from the session cache (read from agent ");
        let check = format!("{}{}", runs[4].stdout(), runs[4].stderr());
        runs[4].success();
        assert_eq!(
            check.matches("found (in the session cache, read ").count(),
            2,
            "{check}"
        );
        runs[5].success();
        // The agent is gone: what is kept is still served...
        runs[6].success().stdout_is(&served);
        // ...and a value that is not kept is an error of the agent, by
        // name, with no stand-in from the environment.
        let gone = format!("{socket} (WITH_SECRETS_AGENT): nothing is there");
        runs[10].success().stdout_is(&served);
        for run in &runs[7..10] {
            run.expect_code(125)
                .stdout_is("")
                .stderr_has(&gone)
                .never_shows("stand-in")
                .never_shows("agent-token-6021");
        }
    }

    /// WITH_SECRETS_AGENT may name its socket relative to the folder a run
    /// starts in: two folders, two agents, the same relative name, and each
    /// run gets its own agent's value, never the other's from the cache.
    #[test]
    fn a_relative_socket_names_another_agent_in_another_folder_and_the_cache_tells_them_apart() {
        let manifest = manifest_for(&[("TOKEN", "acme", "token")]);
        let client = Test::new()
            .file("a/secrets.toml", &manifest)
            .file("b/secrets.toml", &manifest)
            .env("WITH_SECRETS_AGENT", "agent.sock");
        let mut agents = Vec::new();
        for folder in ["a", "b"] {
            let host = file_host(&manifest);
            host.run_input(format!("token of {folder}"), ["set", "TOKEN"])
                .success();
            let socket = client.path().join(folder).join("agent.sock");
            let agent = Agent::start(&host, &["agent", "--socket", &socket.to_string_lossy()]);
            agents.push((host, agent));
        }
        let in_folder = |folder: &str| {
            shell(&format!(
                "(cd {folder} && exec \"$BIN\" -v -- sh -c 'printf \"[%s]\" \"$TOKEN\"')"
            ))
        };
        let runs = in_session(
            &client,
            &[
                shell("(cd a && exec \"$BIN\" unlock)"),
                in_folder("a"),
                in_folder("b"),
                in_folder("a"),
                in_folder("b"),
            ],
        );
        runs[0].success().stderr_has("session cache on for ");
        runs[1].success().stdout_is("[token of a]");
        runs[2].success().stdout_is("[token of b]");
        runs[3]
            .success()
            .stdout_is("[token of a]")
            .stderr_has("session cache: all 1 value kept, so agent was not asked");
        runs[4]
            .success()
            .stdout_is("[token of b]")
            .stderr_has("session cache: all 1 value kept, so agent was not asked");
    }
}
