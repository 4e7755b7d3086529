//! `--mask`: each value in the command's output shows as `<redacted:NAME>`,
//! and the command still behaves as it would run in our place: its exit
//! code, signals, stderr, and a terminal when there is one.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{SecretService, Test, manifest_for, wait};

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
    let script = format!("printf 'before {head}'; sleep 0.3; printf '{tail} after\\n'");
    token(&service)
        .run(["--mask", "--", "sh", "-c", &script])
        .success()
        .stdout_is("before <redacted:API_TOKEN> after\n");
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

#[test]
fn a_death_by_signal_n_exits_128_plus_n() {
    let run = Test::new()
        .manifest("")
        .run(["--mask", "--", "sh", "-c", "kill -KILL $$"]);
    run.expect_code(128 + libc::SIGKILL);
}

/// Starts `--mask -- sh -c SCRIPT`, waits for its first line, and returns
/// the running with-secrets with the rest of its stdout to read.
fn started(
    test: &Test,
    script: &str,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = test
        .command(["--mask", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (child, stdout)
}

#[test]
fn int_term_and_hup_sent_to_with_secrets_reach_the_command() {
    let test = Test::new().manifest("");
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let script = "trap 'echo got INT; exit 3' INT; trap 'echo got TERM; exit 4' TERM; \
                      trap 'echo got HUP; exit 5' HUP; echo ready; \
                      while :; do sleep 0.05; done";
        let (child, mut stdout) = started(&test, script);
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        let output = wait(child);
        let (name, code) = match signal {
            libc::SIGINT => ("INT", 3),
            libc::SIGTERM => ("TERM", 4),
            _ => ("HUP", 5),
        };
        assert_eq!(rest, format!("got {name}\n"));
        assert_eq!(output.status.code(), Some(code), "{output:?}");
    }
}

#[test]
fn a_command_killed_by_a_forwarded_sigterm_exits_143() {
    let test = Test::new().manifest("");
    let (child, _stdout) = started(&test, "echo ready; exec sleep 30");
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let output = wait(child);
    assert_eq!(
        output.status.code(),
        Some(128 + libc::SIGTERM),
        "{output:?}"
    );
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
    // Our terminal is 33x77, and becomes 44x88 while the command runs.
    let line = format!(
        "stty rows 33 cols 77; (sleep 0.5; stty rows 44 cols 88 </dev/tty) & \
         {} --mask -- sh -c 'stty size; trap \"stty size; exit 0\" WINCH; \
         i=0; while [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; exit 1'",
        crate::support::BIN
    );
    let child = test
        .script(&line)
        .spawn()
        .expect("script(1) from util-linux");
    let output = wait(child);
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("33 77\r\n"), "{shown}");
    assert!(shown.contains("44 88\r\n"), "{shown}");
}
