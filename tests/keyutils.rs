//! The `keyutils` store, inside `keyctl session`.
//!
//! Each test runs its with-secrets processes one after another in one
//! `keyctl session -`, inside a user namespace of its own (`unshare --user`):
//! the kernel keeps a user keyring per namespace, so every test has a private,
//! empty `@u`, and none touches the user keyring of the person running them.
//! A fresh anonymous session keyring does not link `@u`, which is the case
//! the store must handle (see src/store/keyutils.rs).
//!
//! The tests with another user run in a namespace that maps the real uids
//! (`run_in_mapped_session`, which tests/unlock.rs uses too), with `@u`
//! linked into the session keyring as `pam_keyinit` links it, and start
//! `nobody` from the session as `setpriv`, `runuser`, `su` and `sudo` do.
//!
//! The blocked case runs with-secrets under a seccomp filter that fails the
//! keyring's system calls, as Docker's default profile does.

#![cfg(target_os = "linux")]

use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use libc::c_ulong;

use crate::support::{BIN, Run, Test, manifest_for, needs_root, wait};

/// With non-ASCII text, quotes and shell syntax, an inner and a trailing newline.
const VALUE: &str = "pä$$ wörd ✓ 🎉 \"q\" 'a' `x`\nsecond line\n";
const DESCRIPTION: &str = "with-secrets:acme_2Dapi:CI_20Bot";

fn project() -> Test {
    Test::new().manifest(&manifest_for(&[
        ("TOKEN", "acme-api", "CI Bot"),
        ("BIG", "acme-api", "big"),
    ]))
}

/// One process in a session: a command line and its standard input.
pub(crate) struct Step {
    line: String,
    input: Vec<u8>,
}

/// with-secrets `--store keyutils` with `args`.
fn keyutils(args: &[&str]) -> Step {
    let mut all = vec!["--store", "keyutils"];
    all.extend_from_slice(args);
    with_secrets(&all)
}

/// with-secrets with `args`.
pub(crate) fn with_secrets(args: &[&str]) -> Step {
    shell(&format!("\"$BIN\" {}", shell_words::join(args)))
}

/// A shell command line, e.g. a look at the keyring with keyctl.
pub(crate) fn shell(line: &str) -> Step {
    Step {
        line: line.to_owned(),
        input: Vec::new(),
    }
}

impl Step {
    pub(crate) fn input(mut self, input: impl AsRef<[u8]>) -> Self {
        self.input = input.as_ref().to_vec();
        self
    }
}

/// Runs the shell `script` with `$BIN` set, in a keyring session of its
/// own inside a user namespace of its own, so its `@u` starts empty and
/// nobody's real keyring is touched.
pub(crate) fn run_in_own_keyring(test: &Test, script: &str) -> std::process::Output {
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "keyctl", "session", "-"])
        .args(["sh", "-c", script])
        .current_dir(test.path())
        .env_clear()
        .envs(test.envs())
        .env("BIN", BIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    wait(command.spawn().expect("unshare(1) from util-linux"))
}

/// Runs `steps` one after another, each a process of its own, in one
/// `keyctl session -` in a user namespace of its own; one `Run` per step.
pub(crate) fn in_session(test: &Test, steps: &[Step]) -> Vec<Run> {
    in_session_with(test, steps, run_in_own_keyring)
}

/// `in_session`, with `run` to run the script of the steps (with `$BIN` set)
/// in a keyring session of its own.
pub(crate) fn in_session_with(
    test: &Test,
    steps: &[Step],
    run: impl FnOnce(&Test, &str) -> Output,
) -> Vec<Run> {
    // A folder per session, so that a test may run several.
    let dir = (0..)
        .map(|n| test.path().join(format!("steps-{n}")))
        .find(|dir| std::fs::create_dir(dir).is_ok())
        .expect("steps dir");
    let file = |i: usize, ext: &str| {
        let path = dir.join(format!("{i}.{ext}"));
        shell_words::quote(path.to_str().expect("a UTF-8 temp path")).into_owned()
    };
    let mut script = String::new();
    for (i, step) in steps.iter().enumerate() {
        std::fs::write(dir.join(format!("{i}.in")), &step.input).expect("step input");
        script.push_str(&format!(
            "{{ {}\n}} <{} >{} 2>{}; echo $? >{}\n",
            step.line,
            file(i, "in"),
            file(i, "out"),
            file(i, "err"),
            file(i, "code"),
        ));
    }
    let session = run(test, &script);
    assert!(
        session.status.success(),
        "the session failed; these tests need keyctl (keyutils) and user namespaces \
         (unshare --user):\n{}",
        String::from_utf8_lossy(&session.stderr)
    );
    (0..steps.len())
        .map(|i| {
            let read = |ext: &str| std::fs::read(dir.join(format!("{i}.{ext}"))).expect("step");
            let code: i32 = String::from_utf8(read("code"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            Run {
                output: Output {
                    status: ExitStatus::from_raw(code << 8),
                    stdout: read("out"),
                    stderr: read("err"),
                },
            }
        })
        .collect()
}

/// Runs the shell `script` with `$BIN` set, in a `keyctl session -` inside a
/// user namespace that maps uids and gids 0 to 65535 to themselves: the
/// other users are there as outside (`nobody` is 65534), so `su`, `runuser`
/// and `setpriv` work, while every user keyring is the namespace's own (the
/// kernel keeps them per namespace), so no real `@u` is touched. Only root
/// may write such a map, from outside the namespace: unshare(1) waits for
/// it on its standard input.
pub(crate) fn run_in_mapped_session(test: &Test, script: &str) -> Output {
    needs_root("only root may map other users' uids into a user namespace");
    let mut child = Command::new("unshare")
        .args(["--user", "sh", "-c"])
        .arg("read -r go && exec keyctl session - sh -c \"$0\" </dev/null")
        .arg(script)
        .current_dir(test.path())
        .env_clear()
        .envs(test.envs())
        .env("BIN", BIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare(1) from util-linux");
    let pid = child.id();
    let ours = std::fs::read_link("/proc/self/ns/user").expect("our user namespace");
    let start = Instant::now();
    // unshare(2) happens after the spawn returns: wait for the new namespace.
    while std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|ns| ns == ours) {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("unshare --user made no user namespace in 60 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 65536\n")
            .unwrap_or_else(|err| panic!("writing /proc/{pid}/{map}: {err}"));
    }
    let mut go = child.stdin.take().expect("stdin");
    go.write_all(b"go\n").expect("unshare's sh reads its go");
    drop(go);
    wait(child)
}

/// `line`, a command and its arguments, run as `nobody` by `tool`, from
/// this session.
pub(crate) fn as_nobody(tool: &str, line: &str) -> Step {
    shell(&match tool {
        "setpriv" => format!("setpriv --reuid 65534 --regid 65534 --clear-groups {line}"),
        "runuser" => format!("runuser -u nobody -- {line}"),
        "su" => format!("su -s /bin/sh nobody -c {}", shell_words::quote(line)),
        // sudo resets the environment, so the store's choice and place, where
        // the test set them, are given again.
        "sudo" => format!(
            "if command -v sudo >/dev/null; then \
               sudo -n -u nobody env \
               ${{XDG_DATA_HOME:+XDG_DATA_HOME=\"$XDG_DATA_HOME\"}} \
               ${{WITH_SECRETS_STORE:+WITH_SECRETS_STORE=\"$WITH_SECRETS_STORE\"}} \
               BIN=\"$BIN\" {line}; \
             else echo 'no sudo'; false; fi"
        ),
        _ => unreachable!("{tool}"),
    })
}

/// What a login's session keyring has: `pam_keyinit` links the user's `@u`
/// into the session keyring it makes (a bare `keyctl session -` does not).
pub(crate) fn like_a_login() -> Step {
    shell("keyctl link @u @s")
}

/// Lets every user read the project, the manifest and the store file, so
/// that only the kernel keyring stands between another user and the values.
pub(crate) fn readable_by_all() -> Step {
    shell("chmod -R go+rX .")
}

#[test]
fn values_set_in_one_process_are_read_exactly_by_the_next() {
    let test = project();
    // Longer than the first read's buffer, so the read is done again.
    let big = "ünïcødé ✓ line\n".repeat(300);
    let runs = in_session(
        &test,
        &[
            keyutils(&["set", "TOKEN"]).input(format!("{VALUE}\n")),
            keyutils(&["set", "BIG"]).input(&big),
            keyutils(&["get", "TOKEN"]),
            keyutils(&["get", "BIG"]),
            keyutils(&["--", "sh", "-c", "printf '%s|%s' \"$TOKEN\" \"$BIG\""]),
            // Another session of the same user sees the same user keyring.
            shell("keyctl session - \"$BIN\" --store keyutils get TOKEN"),
            shell(&format!(
                "keyctl rdescribe $(keyctl search @u user {DESCRIPTION})"
            )),
        ],
    );
    for run in &runs[..2] {
        run.success();
        assert_eq!(run.stdout() + &run.stderr(), "", "{run:?}");
    }
    runs[2].success().stdout_is(VALUE);
    runs[3].success().stdout_is(big.strip_suffix('\n').unwrap());
    runs[4]
        .success()
        .stdout_is(&format!("{VALUE}|{}", big.strip_suffix('\n').unwrap()));
    runs[5].success().stdout_is(VALUE);
    let described = runs[6].success().stdout();
    assert!(
        described.starts_with("user;") && described.ends_with(&format!(";{DESCRIPTION}\n")),
        "{described}"
    );
}

#[test]
fn set_replaces_the_value_and_leaves_one_key() {
    let test = project();
    let runs = in_session(
        &test,
        &[
            keyutils(&["set", "TOKEN"]).input("one"),
            keyutils(&["set", "TOKEN"]).input("two ✓"),
            keyutils(&["get", "TOKEN"]),
            shell("keyctl rlist @u | wc -w"),
        ],
    );
    runs[1].success();
    runs[2].success().stdout_is("two ✓");
    assert_eq!(runs[3].success().stdout().trim(), "1");
}

#[test]
fn delete_removes_the_key_and_says_when_there_was_none() {
    let test = project();
    let runs = in_session(
        &test,
        &[
            keyutils(&["set", "TOKEN"]).input("doomed"),
            keyutils(&["delete", "TOKEN"]),
            keyutils(&["get", "TOKEN"]),
            keyutils(&["delete", "TOKEN"]),
            shell(&format!("keyctl search @u user {DESCRIPTION} || echo gone")),
        ],
    );
    runs[1].success();
    assert_eq!(runs[1].stderr(), "");
    runs[2]
        .expect_code(125)
        .stderr_has("TOKEN is not stored in keyutils (service \"acme-api\", username \"CI Bot\")")
        .never_shows("doomed");
    runs[3].success().stderr_has(
        "TOKEN was not stored in keyutils (service \"acme-api\", username \"CI Bot\"); \
         nothing to delete",
    );
    assert_eq!(runs[4].stdout(), "gone\n");
}

#[test]
fn a_missing_entry_is_reported_with_exit_125() {
    let test = project();
    let runs = in_session(
        &test,
        &[
            keyutils(&["set", "BIG"]).input("present"),
            keyutils(&["--", "sh", "-c", "echo ran"]),
        ],
    );
    runs[1]
        .expect_code(125)
        .stdout_is("")
        .stderr_has("1 required secret is missing from keyutils and the environment:")
        .stderr_has("TOKEN  service \"acme-api\", username \"CI Bot\"")
        .stderr_has("set TOKEN")
        .never_shows("present");
}

#[test]
fn with_secrets_store_chooses_keyutils() {
    let test = project().env("WITH_SECRETS_STORE", "keyutils");
    let runs = in_session(
        &test,
        &[
            with_secrets(&["set", "TOKEN"]).input("from the env choice"),
            with_secrets(&["get", "TOKEN"]),
            shell(&format!(
                "keyctl search @u user {DESCRIPTION} >/dev/null && echo found"
            )),
        ],
    );
    runs[0].success();
    runs[1].success().stdout_is("from the env choice");
    assert_eq!(runs[2].stdout(), "found\n");
}

#[test]
fn values_the_kernel_cannot_hold_are_refused_and_never_shown() {
    let test = project();
    let too_big = format!("LEAK-{}", "x".repeat(32_768 - 5));
    let runs = in_session(
        &test,
        &[
            keyutils(&["set", "TOKEN"]).input(&too_big),
            keyutils(&["set", "TOKEN"]).input(""),
            keyutils(&["get", "TOKEN"]),
        ],
    );
    runs[0]
        .expect_code(125)
        .stderr_has(
            "the kernel keyring holds values of at most 32767 bytes, and this one has 32768; \
             nothing was changed",
        )
        .stderr_has("use --store file for larger values")
        .never_shows("LEAK");
    runs[1]
        .expect_code(125)
        .stderr_has("the kernel keyring cannot hold an empty value");
    runs[2].expect_code(125).stderr_has("TOKEN is not stored");
}

/// Runs with-secrets with `args` under a seccomp filter that fails `keyctl`,
/// `add_key` and `request_key` with `errno`, as Docker's default profile
/// does with EPERM.
pub(crate) fn blocked(test: &Test, errno: i32, input: &str, args: &[&str]) -> Run {
    let filter = keyring_filter(errno);
    let mut command = test.command(args);
    command.stdin(Stdio::piped());
    // SAFETY: the hook makes two prctl calls, which are async-signal-safe,
    // and allocates nothing.
    unsafe { command.pre_exec(move || install(&filter)) };
    let mut child = command.spawn().expect("spawn with-secrets");
    // with-secrets may exit before it reads.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    Run {
        output: wait(child),
    }
}

/// A filter for a test, not a sandbox: it compares syscall numbers only.
fn keyring_filter(errno: i32) -> [libc::sock_filter; 6] {
    let op = |code: u32| code as u16;
    let load = op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS);
    let jump_if = op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K);
    let ret = op(libc::BPF_RET | libc::BPF_K);
    let insn = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    [
        insn(
            load,
            std::mem::offset_of!(libc::seccomp_data, nr) as u32,
            0,
            0,
        ),
        insn(jump_if, libc::SYS_keyctl as u32, 3, 0),
        insn(jump_if, libc::SYS_add_key as u32, 2, 0),
        insn(jump_if, libc::SYS_request_key as u32, 1, 0),
        insn(ret, libc::SECCOMP_RET_ALLOW, 0, 0),
        insn(ret, libc::SECCOMP_RET_ERRNO | errno as u32, 0, 0),
    ]
}

fn install(filter: &[libc::sock_filter]) -> io::Result<()> {
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `program` points at `filter`, both alive across the calls.
    // Variadic arguments go as the unsigned longs the kernel reads.
    let failed = unsafe {
        libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        ) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as c_ulong,
                &raw const program,
            ) != 0
    };
    if failed {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[test]
fn a_blocked_keyring_is_named_with_the_file_store_as_the_next_step() {
    let test = project();
    for (errno, text) in [
        (libc::EPERM, "Operation not permitted"),
        (libc::ENOSYS, "Function not implemented"),
    ] {
        blocked(
            &test,
            errno,
            "s3cret value",
            &["--store", "keyutils", "set", "TOKEN"],
        )
        .expect_code(125)
        .stderr_has(&format!(
            // set looks for a key already there first.
            "keyutils: cannot be used here: keyctl(KEYCTL_SEARCH) failed: {text}"
        ))
        .stderr_has("seccomp")
        .stderr_has("blocks the kernel keyring")
        .stderr_has("use --store file (or WITH_SECRETS_STORE=file)")
        .never_shows("s3cret value");
    }
    blocked(
        &test,
        libc::EPERM,
        "",
        &["--store", "keyutils", "get", "TOKEN"],
    )
    .expect_code(125)
    .stderr_has("keyutils: cannot be used here: keyctl(KEYCTL_SEARCH) failed: ")
    .stderr_has("use --store file");
    let run = [
        "--store",
        "keyutils",
        "--",
        "sh",
        "-c",
        "printf %s \"$TOKEN\"",
    ];
    blocked(&test, libc::EPERM, "", &run)
        .expect_code(125)
        .stderr_has("keyutils: cannot be used here")
        .stderr_has("no fallback in the environment: TOKEN, BIG");
    // In CI the variables come from the environment instead.
    let ci = test.env("TOKEN", "from CI").env("BIG", "big from CI");
    blocked(&ci, libc::EPERM, "", &run)
        .success()
        .stdout_is("from CI");
}

/// What the search finds of `description` in `keyring`, piped: `keyctl
/// pipe` of the key `keyctl search` finds, as a single command line.
fn pipe_found(keyring: &str, description: &str) -> String {
    format!("sh -c 'keyctl pipe $(keyctl search {keyring} user {description})'")
}

/// The permissions of the key `description` in `@u`, in hex as `keyctl
/// rdescribe` writes them.
fn permissions_of(description: &str) -> Step {
    shell(&format!(
        "keyctl rdescribe $(keyctl search @u user {description}) | cut -d';' -f4"
    ))
}

/// All for the owner uid, nothing for the possessor, group or others.
const OWNER_ONLY: &str = "003f0000\n";
/// What `add_key` gives a `user` key: all for its possessor, view for its
/// owner uid.
const KERNEL_DEFAULT: &str = "3f010000\n";

#[test]
fn another_user_started_from_the_session_cannot_read_a_value() {
    let test = project();
    let mine = "only mine ✓ 5f1c";
    let tools = ["setpriv", "runuser", "su", "sudo"];
    let mut steps = vec![
        like_a_login(),
        keyutils(&["set", "TOKEN"]).input(mine),
        readable_by_all(),
    ];
    for tool in tools {
        // Through the session keyring, where `@u` is linked.
        steps.push(as_nobody(tool, &pipe_found("@s", DESCRIPTION)));
        steps.push(as_nobody(tool, "\"$BIN\" --store keyutils get TOKEN"));
    }
    steps.extend([
        // Nor by its serial, which root gives it.
        shell(&format!(
            "setpriv --reuid 65534 --regid 65534 --clear-groups \
             keyctl pipe $(keyctl search @u user {DESCRIPTION})"
        )),
        permissions_of(DESCRIPTION),
        // The same uid reads it, in this session and in one where `@u` is
        // not linked.
        keyutils(&["get", "TOKEN"]),
        shell("keyctl session - \"$BIN\" --store keyutils get TOKEN"),
    ]);
    let runs = in_session_with(&test, &steps, run_in_mapped_session);
    runs[1].success();
    let (others, own) = runs[3..].split_at(2 * tools.len());
    for (tool, runs) in tools.iter().zip(others.chunks(2)) {
        if *tool == "sudo" && runs[0].stdout() == "no sudo\n" {
            eprintln!("sudo is not installed here: its case was not run");
            continue;
        }
        let (keyctl, ours) = (&runs[0], &runs[1]);
        assert_ne!(keyctl.code(), Some(0), "{tool}: {keyctl:?}");
        keyctl
            .stdout_is("")
            .stderr_has("keyctl_search: Permission denied")
            .never_shows(mine);
        // nobody's with-secrets looks in nobody's own user keyring.
        ours.expect_code(125)
            .stderr_has("TOKEN is not stored in keyutils")
            .never_shows(mine);
    }
    assert_ne!(own[0].code(), Some(0), "{:?}", own[0]);
    own[0]
        .stdout_is("")
        .stderr_has("Permission denied")
        .never_shows(mine);
    own[1].success().stdout_is(OWNER_ONLY);
    own[2].success().stdout_is(mine);
    own[3].success().stdout_is(mine);
}

#[test]
fn root_reads_a_value_only_by_taking_its_owners_uid() {
    let test = project();
    let nobody = "setpriv --reuid 65534 --regid 65534 --clear-groups";
    let runs = in_session_with(
        &test,
        &[
            readable_by_all(),
            shell(&format!("{nobody} \"$BIN\" --store keyutils set TOKEN")).input("nobody's"),
            // nobody's user keyring, linked where root's process finds it.
            shell(&format!("{nobody} keyctl link @u @s")),
            shell(&pipe_found("@s", DESCRIPTION)),
            keyutils(&["get", "TOKEN"]),
            shell(&format!("{nobody} \"$BIN\" --store keyutils get TOKEN")),
        ],
        run_in_mapped_session,
    );
    runs[1].success();
    runs[2].success();
    assert_ne!(runs[3].code(), Some(0), "{:?}", runs[3]);
    runs[3].stdout_is("").never_shows("nobody's");
    runs[4]
        .expect_code(125)
        .stderr_has("TOKEN is not stored in keyutils");
    runs[5].success().stdout_is("nobody's");
}

#[test]
fn a_key_with_the_kernels_default_permissions_is_restricted_when_read_or_replaced() {
    let test = project();
    let big = "with-secrets:acme_2Dapi:big";
    // As an earlier with-secrets made them: add_key's default permissions.
    // This session keyring does not link `@u`, so nothing possesses them.
    let runs = in_session(
        &test,
        &[
            shell(&format!(
                "keyctl add user {DESCRIPTION} 'old value' @u >/dev/null && \
                 keyctl add user {big} 'old big' @u"
            )),
            permissions_of(DESCRIPTION),
            keyutils(&["get", "TOKEN"]),
            permissions_of(DESCRIPTION),
            keyutils(&["get", "TOKEN"]),
            keyutils(&["set", "BIG"]).input("new big"),
            permissions_of(big),
            shell("keyctl rlist @u | wc -w"),
            shell(&format!("keyctl search @u user {big}")),
            keyutils(&["get", "BIG"]),
        ],
    );
    let old_big = runs[0].success().stdout();
    runs[1].success().stdout_is(KERNEL_DEFAULT);
    runs[2].success().stdout_is("old value");
    runs[3].success().stdout_is(OWNER_ONLY);
    runs[4].success().stdout_is("old value");
    runs[5].success();
    runs[6].success().stdout_is(OWNER_ONLY);
    // The old key was restricted, then changed in place: no second key.
    assert_eq!(runs[7].stdout().trim(), "2");
    runs[8].success().stdout_is(&old_big);
    runs[9].success().stdout_is("new big");
}

#[test]
fn a_key_another_user_could_read_is_theirs_no_more_once_a_run_reads_it() {
    let test = project();
    let big = "with-secrets:acme_2Dapi:big";
    let nobody_reads = |description: &str| {
        shell(&format!(
            "setpriv --reuid 65534 --regid 65534 --clear-groups {}",
            pipe_found("@s", description)
        ))
    };
    let runs = in_session_with(
        &test,
        &[
            like_a_login(),
            // As an earlier with-secrets made them.
            shell(&format!(
                "keyctl add user {DESCRIPTION} 'old value' @u >/dev/null && \
                 keyctl add user {big} 'old big' @u >/dev/null"
            )),
            nobody_reads(DESCRIPTION),
            keyutils(&["--", "sh", "-c", "printf '%s|%s' \"$TOKEN\" \"$BIG\""]),
            nobody_reads(DESCRIPTION),
            nobody_reads(big),
        ],
        run_in_mapped_session,
    );
    runs[1].success();
    // Before: the possessor's permissions let nobody read it.
    runs[2].success().stdout_is("old value");
    runs[3].success().stdout_is("old value|old big");
    for (run, value) in [(&runs[4], "old value"), (&runs[5], "old big")] {
        assert_ne!(run.code(), Some(0), "{run:?}");
        run.stdout_is("")
            .stderr_has("keyctl_search: Permission denied")
            .never_shows(value);
    }
}

#[test]
fn replacing_a_large_value_needs_no_room_for_two() {
    // Only users other than root have a small quota: nobody sets here.
    let max: usize = std::fs::read_to_string("/proc/sys/kernel/keys/maxbytes")
        .expect("/proc/sys/kernel/keys/maxbytes")
        .trim()
        .parse()
        .expect("a number");
    let size = max * 3 / 5;
    assert!(
        size <= 32_767,
        "this test needs a key quota under 54 KB for users other than root \
         (kernel.keys.maxbytes is {max}), so that two values of 3/5 of it do not fit"
    );
    let test = project();
    let nobody = "setpriv --reuid 65534 --regid 65534 --clear-groups";
    let set = format!("{nobody} \"$BIN\" --store keyutils set TOKEN");
    let runs = in_session_with(
        &test,
        &[
            readable_by_all(),
            shell(&set).input("a".repeat(size)),
            shell(&set).input("b".repeat(size)),
            shell(&format!("{nobody} \"$BIN\" --store keyutils get TOKEN")),
        ],
        run_in_mapped_session,
    );
    runs[1].success();
    runs[2].success();
    runs[3].success().stdout_is(&"b".repeat(size));
}
