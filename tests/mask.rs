//! `--mask`: each value in the command's output shows as `<redacted:NAME>`,
//! and the command still behaves as it would run in our place: its exit
//! code, signals, stderr, and a terminal when there is one.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{BIN, Reader, SecretService, Test, default_signals, manifest_for, wait};

/// No wait of our own is longer than this.
const DEADLINE: Duration = Duration::from_secs(60);

const VALUE: &str = "s3cr3t-mask-value";

fn token(service: &SecretService) -> Test {
    service.store_foreign("acme-api", "ci-bot", "token", VALUE);
    Test::new()
        .keyring(service)
        .manifest(&manifest_for(&[("API_TOKEN", "acme-api", "ci-bot")]))
}

#[test]
fn a_value_in_stdout_shows_as_its_name() {
    let service = SecretService::start();
    token(&service)
        .run([
            "--mask",
            "--",
            "sh",
            "-c",
            "echo \"token=$API_TOKEN, again:$API_TOKEN\"",
        ])
        .success()
        .stdout_is("token=<redacted:API_TOKEN>, again:<redacted:API_TOKEN>\n");
}

#[test]
fn a_value_in_stderr_is_masked_and_stays_on_stderr() {
    let service = SecretService::start();
    let run = token(&service).run([
        "--mask",
        "--",
        "sh",
        "-c",
        "echo out; echo \"err $API_TOKEN\" >&2",
    ]);
    run.success().stdout_is("out\n");
    assert_eq!(run.stderr(), "err <redacted:API_TOKEN>\n");
}

#[test]
fn a_value_split_across_two_writes_is_still_masked() {
    let service = SecretService::start();
    let (head, tail) = VALUE.split_at(7);
    // The command writes the second half only once the test has seen the
    // first write come through, so the two cannot arrive as one read.
    let script = format!("printf 'before {head}'; read go; printf '{tail} after\\n'");
    let test = token(&service);
    let mut child = test
        .command(["--mask", "--", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    // Read on a thread, so that a regression that holds everything back
    // fails at a deadline instead of blocking the test forever.
    let mut stdout = child.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 64];
        while let Ok(n @ 1..) = stdout.read(&mut buffer) {
            if send.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    while seen.len() < "before ".len() {
        match receive.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(bytes) => seen.extend_from_slice(&bytes),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{:?} then {:?}",
                    String::from_utf8_lossy(&seen),
                    wait(child)
                );
            }
        }
    }
    // The first write was read and shown, less the half value held back.
    assert_eq!(String::from_utf8_lossy(&seen), "before ");
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    loop {
        match receive.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(bytes) => seen.extend_from_slice(&bytes),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("hung after {:?}", String::from_utf8_lossy(&seen));
            }
        }
    }
    let output = wait(child);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&seen),
        "before <redacted:API_TOKEN> after\n"
    );
}

#[test]
fn the_exit_code_is_kept() {
    let service = SecretService::start();
    let test = token(&service);
    test.run(["--mask", "--", "sh", "-c", "echo $API_TOKEN; exit 42"])
        .expect_code(42)
        .stdout_is("<redacted:API_TOKEN>\n");
    test.run(["--mask", "--", "no-such-command-here"])
        .expect_code(127);
}

/// Writes `out N` with the value to stdout, then `err N` to stderr, for N
/// from 0 to `LINES - 1`.
const ALTERNATING: &str = "i=0; while [ $i -lt 300 ]; do echo \"out $i $API_TOKEN\"; \
                           echo \"err $i\" >&2; i=$((i+1)); done";
const LINES: usize = 300;

/// Runs `ALTERNATING` with `out` and `err` as with-secrets' stdout and stderr.
fn alternating(test: &Test, out: Stdio, err: Stdio) {
    let mut command = test.command(["--mask", "--", "sh", "-c", ALTERNATING]);
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    let child = command.spawn().unwrap();
    // Our copies of the write ends go, so that the pipe ends with the run.
    drop(command);
    let output = wait(child);
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn with_stdout_and_stderr_one_pipe_or_file_their_order_is_the_commands() {
    // `2>&1 | cat` or a CI log: two pipes read by two threads came out
    // reordered in most runs of a four-line script.
    let service = SecretService::start();
    let test = token(&service);
    let expected: String = (0..LINES)
        .map(|i| format!("out {i} <redacted:API_TOKEN>\nerr {i}\n"))
        .collect();
    let in_order = |shown: &str, what: &str| {
        let first = shown
            .lines()
            .zip(expected.lines())
            .position(|(shown, expected)| shown != expected);
        assert!(
            shown == expected,
            "{what}: the order changed at line {first:?}:\n{shown}"
        );
    };
    for round in 0..5 {
        let (reader, writer) = std::io::pipe().unwrap();
        let mut reader = Reader::new(reader);
        alternating(&test, writer.try_clone().unwrap().into(), writer.into());
        in_order(&reader.rest(0), &format!("one pipe, round {round}"));

        let path = test.path().join("log");
        let log = std::fs::File::create(&path).unwrap();
        alternating(&test, log.try_clone().unwrap().into(), log.into());
        in_order(
            &std::fs::read_to_string(&path).unwrap(),
            &format!("one file, round {round}"),
        );
    }
}

#[test]
fn with_stdout_and_stderr_apart_stderr_stays_stderr() {
    let service = SecretService::start();
    let test = token(&service);
    let (out, out_writer) = std::io::pipe().unwrap();
    let (err, err_writer) = std::io::pipe().unwrap();
    let (mut out, mut err) = (Reader::new(out), Reader::new(err));
    alternating(&test, out_writer.into(), err_writer.into());
    let expected_out: String = (0..LINES)
        .map(|i| format!("out {i} <redacted:API_TOKEN>\n"))
        .collect();
    let expected_err: String = (0..LINES).map(|i| format!("err {i}\n")).collect();
    assert!(
        out.rest(0) == expected_out,
        "stdout is not the stdout lines"
    );
    assert!(
        err.rest(0) == expected_err,
        "stderr is not the stderr lines"
    );
}

/// The signals `--mask` forwards, and that the command may die by.
const SIGNALS: [(libc::c_int, &str); 4] = [
    (libc::SIGINT, "INT"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGHUP, "HUP"),
    (libc::SIGQUIT, "QUIT"),
];

/// `test`'s with-secrets with `args`, every signal we may send at its
/// default action whatever this process inherited (see `default_signals`).
fn with_default_signals(test: &Test, args: &[&str]) -> std::process::Command {
    let mut command = test.command(args);
    command.stdin(Stdio::null());
    default_signals(&mut command);
    command
}

#[test]
fn a_command_killed_by_signal_n_kills_with_secrets_by_n_too() {
    let test = Test::new().manifest("");
    let more = [(libc::SIGKILL, "KILL"), (libc::SIGPIPE, "PIPE")];
    for (signal, name) in SIGNALS.into_iter().chain(more) {
        let script = format!("kill -{name} $$");
        let mut command = with_default_signals(&test, &["--mask", "--", "sh", "-c", &script]);
        // Cores allowed (CI often sets the limit to 0, which would make the
        // check below pass whatever with-secrets does): only with-secrets'
        // own PR_SET_DUMPABLE keeps a death by SIGQUIT from dumping its
        // memory. The command's own core, if any, lands in the temp dir.
        // SAFETY: setrlimit is async-signal-safe and reads only `unlimited`.
        unsafe {
            command.pre_exec(|| {
                let unlimited = libc::rlimit {
                    rlim_cur: libc::RLIM_INFINITY,
                    rlim_max: libc::RLIM_INFINITY,
                };
                if libc::setrlimit(libc::RLIMIT_CORE, &unlimited) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let output = wait(command.spawn().unwrap());
        assert_eq!(output.status.signal(), Some(signal), "{name}: {output:?}");
        assert!(!output.status.core_dumped(), "{name}: a core was dumped");
        assert!(output.stderr.is_empty(), "{name}: {output:?}");
    }
}

/// Runs `body` (with `$BIN` the binary under test) in a `for i in 1 2 3`
/// loop of a bash with job control, on a pseudo-terminal; returns the
/// transcript.
fn bash_loop(test: &Test, body: &str) -> String {
    let script =
        format!("set -m\nfor i in 1 2 3; do\n  {body}\n  echo \"after $i: $?\"\ndone\necho end\n");
    std::fs::write(test.path().join("loop.sh"), script).unwrap();
    let line = format!("BIN={} bash loop.sh", shell_words::quote(BIN));
    let mut script = test.script(&line);
    script.stdin(Stdio::null());
    // A SIGINT ignored on the way in would stay ignored by the command.
    default_signals(&mut script);
    String::from_utf8_lossy(&wait(script.spawn().unwrap()).stdout).into_owned()
}

#[test]
fn a_shell_loop_stops_when_the_masked_command_dies_by_sigint() {
    // bash breaks a loop whose foreground job died by SIGINT (the Ctrl+C
    // case), but not one that exits 130: that job handled the signal.
    let test = Test::new().manifest("");
    let on_terminal = "echo \"ran $i\"; \"$BIN\" --mask -- sh -c 'kill -INT $$'";
    let piped = "echo \"ran $i\"; \"$BIN\" --mask -- sh -c 'kill -INT $$' | cat";
    for body in [on_terminal, piped] {
        let shown = bash_loop(&test, body);
        assert!(shown.contains("ran 1"), "{body}: {shown}");
        assert!(
            !shown.contains("after 1") && !shown.contains("ran 2") && !shown.contains("end"),
            "{body}: the loop went on: {shown}"
        );
    }
    // The same loop goes on past a command that exits 130 by itself.
    let shown = bash_loop(&test, "\"$BIN\" --mask -- sh -c 'exit 130'");
    assert!(shown.contains("after 3: 130\r\nend"), "{shown}");
}

#[test]
fn an_ignored_signal_stays_ignored_for_the_command() {
    // As under nohup (SIGHUP) or in a background job of a shell without
    // job control (SIGINT, SIGQUIT): the command must ignore them too.
    let test = Test::new().manifest("");
    let mut command = test.command(["--mask", "--", "cat", "/proc/self/status"]);
    command.stdin(Stdio::null());
    // SAFETY: signal(2) is async-signal-safe, and nothing else runs here.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
                libc::signal(signal, libc::SIG_IGN);
            }
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    let output = wait(command.spawn().unwrap());
    assert!(output.status.success(), "{output:?}");
    let status = String::from_utf8_lossy(&output.stdout);
    let ignored = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .map(|mask| u64::from_str_radix(mask.trim(), 16).unwrap())
        .expect("a SigIgn line");
    let bit = |signal: libc::c_int| 1u64 << (signal - 1);
    for (signal, name) in SIGNALS {
        let expected = signal != libc::SIGTERM;
        assert_eq!(ignored & bit(signal) != 0, expected, "SIG{name}: {status}");
    }
}

/// Starts `--mask -- sh -c SCRIPT` with every signal we send at its default
/// action, waits for its first line, and returns the running with-secrets
/// with the rest of its stdout to read.
fn started(test: &Test, script: &str) -> (std::process::Child, Reader) {
    let mut child = with_default_signals(test, &["--mask", "--", "sh", "-c", script])
        .spawn()
        .unwrap();
    let mut stdout = Reader::new(child.stdout.take().unwrap());
    assert_eq!(stdout.until("\n", child.id()), "ready\n");
    (child, stdout)
}

#[test]
fn int_term_hup_and_quit_sent_to_with_secrets_reach_the_command() {
    let test = Test::new().manifest("");
    for (code, (signal, name)) in (3..).zip(SIGNALS) {
        // The command's own loop wakes every 50 ms to run its trap.
        let script = format!(
            "trap 'echo got {name}; exit {code}' {name}; echo ready; \
             while :; do sleep 0.05; done"
        );
        let (child, mut stdout) = started(&test, &script);
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let rest = stdout.rest(child.id());
        let output = wait(child);
        assert_eq!(rest, format!("got {name}\n"));
        assert_eq!(output.status.code(), Some(code), "{output:?}");
    }
}

#[test]
fn a_command_killed_by_a_forwarded_sigterm_kills_with_secrets_by_it_too() {
    let test = Test::new().manifest("");
    let (child, mut stdout) = started(&test, "echo ready; exec sleep 30");
    // `ready` came from the shell, which may not have become sleep yet: a
    // SIGTERM now would reach the shell. Wait until the exec is done.
    let sleeper = grandchild(child.id());
    let start = Instant::now();
    while std::fs::read_to_string(format!("/proc/{sleeper}/comm")).unwrap_or_default() != "sleep\n"
    {
        assert!(start.elapsed() < DEADLINE, "the command never became sleep");
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: kill has no memory-safety preconditions.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let rest = stdout.rest(child.id());
    let output = wait(child);
    assert_eq!(output.status.signal(), Some(libc::SIGTERM), "{output:?}");
    assert_eq!(rest, "");
}

/// The one child of process `pid`.
fn grandchild(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let children: Vec<u32> = children
        .split_whitespace()
        .map(|child| child.parse().unwrap())
        .collect();
    assert_eq!(children.len(), 1, "{children:?}");
    children[0]
}

#[test]
fn short_values_are_not_masked_and_a_warning_names_them() {
    let service = SecretService::start();
    service.store_foreign("s", "pin", "pin", "123");
    service.store_foreign("s", "long", "long", "long-enough");
    let test = Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[("PIN", "s", "pin"), ("LONG", "s", "long")]));
    let print = ["--mask", "--", "sh", "-c", "echo \"$PIN $LONG\""];
    test.run(print)
        .success()
        .stdout_is("123 <redacted:LONG>\n")
        .stderr_has(
            "with-secrets: warning: --mask leaves PIN unmasked: values shorter than 4 characters",
        );
    let quiet = test.run([&["-q"][..], &print[..]].concat());
    quiet.success().stdout_is("123 <redacted:LONG>\n");
    assert!(quiet.stderr().is_empty(), "{}", quiet.stderr());
}

#[test]
fn values_from_the_environment_are_masked_too() {
    // In CI the fallback values are the secrets.
    Test::new()
        .manifest(&manifest_for(&[("CI_TOKEN", "s", "t")]))
        .env("CI_TOKEN", "ci-provided-token")
        .run(["--mask", "--", "sh", "-c", "echo $CI_TOKEN"])
        .success()
        .stdout_is("<redacted:CI_TOKEN>\n");
}

#[test]
fn with_secrets_mask_1_turns_masking_on_and_0_leaves_it_off() {
    let service = SecretService::start();
    let print = ["-c", "sh -c 'echo $API_TOKEN'"];
    let test = token(&service).env("WITH_SECRETS_MASK", "1");
    test.run(print)
        .success()
        .stdout_is("<redacted:API_TOKEN>\n");
    test.env("WITH_SECRETS_MASK", "0")
        .run(print)
        .success()
        .stdout_is(&format!("{VALUE}\n"));
}

#[test]
fn on_a_terminal_the_command_gets_a_terminal_and_is_still_masked() {
    let service = SecretService::start();
    let test = token(&service);
    let shown = test.on_terminal(
        "--mask -- sh -c 'test -t 0 && test -t 1 && test -t 2 && echo all-terminals; \
         printf \"%s\\n\" \"$API_TOKEN\"; echo \"err $API_TOKEN\" >&2; exit 0'",
        "",
        "",
    );
    assert!(shown.contains("all-terminals"), "{shown}");
    assert!(shown.contains("<redacted:API_TOKEN>\r\n"), "{shown}");
    assert!(shown.contains("err <redacted:API_TOKEN>"), "{shown}");
    assert!(!shown.contains(VALUE), "{shown}");
}

#[test]
fn on_a_terminal_what_is_typed_reaches_the_command() {
    let service = SecretService::start();
    let shown = token(&service).on_terminal(
        "--mask -- sh -c 'printf \"name? \"; read name; echo \"hello $name, $API_TOKEN\"'",
        "name? ",
        "world\n",
    );
    assert!(
        shown.contains("hello world, <redacted:API_TOKEN>"),
        "{shown}"
    );
    assert!(!shown.contains(VALUE), "{shown}");
}

#[test]
fn on_a_terminal_a_value_with_a_newline_is_masked_too() {
    let service = SecretService::start();
    service.store_foreign("s", "pem", "pem", "-----BEGIN-----\nabcdef\n-----END-----");
    let test = Test::new()
        .keyring(&service)
        .manifest(&manifest_for(&[("PEM", "s", "pem")]));
    let shown = test.on_terminal("--mask -- sh -c 'printf \"<%s>\" \"$PEM\"'", "", "");
    assert!(shown.contains("<<redacted:PEM>>"), "{shown}");
    assert!(!shown.contains("abcdef"), "{shown}");
}

#[test]
fn on_a_terminal_the_exit_code_is_kept() {
    let test = Test::new().manifest("");
    let shown = test.on_terminal_status("--mask -- sh -c 'exit 7'");
    assert!(shown.contains("[exit 7]"), "{shown}");
}

#[test]
fn on_a_terminal_the_window_size_and_its_changes_reach_the_command() {
    let test = Test::new().manifest("");
    // Our terminal is 33x77, and becomes 44x88 once the command has shown
    // its first size and set its trap (the file `trapped` says so). Both
    // shells wait by polling, for a minute at most.
    let line = format!(
        "stty rows 33 cols 77; \
         (i=0; while [ ! -e trapped ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; \
          stty rows 44 cols 88 </dev/tty) & \
         {} --mask -- sh -c 'trap \"stty size; exit 0\" WINCH; stty size; touch trapped; \
         i=0; while [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; exit 1'",
        crate::support::BIN
    );
    let child = test
        .script(&line)
        .spawn()
        .expect("script(1) from util-linux");
    let output = wait(child);
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    let first = shown.find("33 77\r\n").expect(&shown);
    let changed = shown.find("44 88\r\n").expect(&shown);
    assert!(first < changed, "{shown}");
}
