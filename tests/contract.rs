//! One contract, every store: each case here is written once and run against
//! every store this machine has, as ripgrep runs each search test under both
//! of its regex engines (its `rgtest!`). A case is a list of with-secrets
//! runs (`Op`s: `set`, `get`, `delete`, `check`, `env --format json` and the
//! run form) and what they must give; the store under test is a `Store`,
//! which starts its backend, points a `Test` at it and runs the ops there.
//! What a store documents as its own (its name in messages, its largest
//! value, whether it keeps bytes that are not UTF-8, the command the run form
//! prints a variable with) lives in `Store`, never in a case.
//!
//! Each store is a module and each case a test in it, e.g.
//! `contract::gnome_keyring::replace_on_set`. A new store gets the whole
//! suite with a variant of `Store` (the compiler asks for its arms) and one
//! `store_tests!` line at the bottom; a new case is a function and one name
//! in `cases!`.
//!
//! The in-memory store exists only in the unit tests (src/store/memory.rs),
//! not in the binary, so it is not here. The Wine stores (`windows`, and
//! `bridge`, the Linux build with the Windows build as its helper) share one
//! Wine prefix per test process, so every case uses services of its own,
//! named after the case and the store.

#![cfg(target_os = "linux")]

use std::io::Write;
use std::process::Stdio;

use crate::keyutils::{in_session, shell};
use crate::support::bao::Bao;
use crate::support::wine::wine;
use crate::support::{Run, SecretService, Test, manifest_for, wait};

/// A store the contract runs against.
#[derive(Clone, Copy, Debug)]
pub enum Store {
    /// The age file store, its passphrase in `WITH_SECRETS_PASSPHRASE`.
    File,
    /// The kernel keyring, every case in one `keyctl session -` of its own.
    Keyutils,
    /// Secret Service under gnome-keyring.
    GnomeKeyring,
    /// Secret Service under KeePassXC.
    KeePassXc,
    /// Secret Service under oo7-daemon.
    Oo7,
    /// `vault` on an OpenBao dev server.
    Vault,
    /// The Windows build under Wine, on the prefix's Credential Manager.
    Windows,
    /// The Linux build as on WSL, `--store windows` through the Windows
    /// build under Wine as its helper.
    Bridge,
}

/// What a store does with a value that is not UTF-8.
pub enum NonUtf8 {
    /// Keeps it byte for byte.
    Kept,
    /// Refuses it, saying this.
    Refused(&'static str),
}

/// The largest value a store takes, and, where it documents a limit, the
/// smallest it refuses and what it says then.
pub struct Largest {
    pub value: Vec<u8>,
    pub refused: Option<(Vec<u8>, &'static str)>,
}

/// `len` bytes of printable ASCII that never repeat within 64 bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"[i % 64])
        .collect()
}

impl Store {
    /// The store's name in with-secrets' messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Keyutils => "keyutils",
            Self::GnomeKeyring | Self::KeePassXc | Self::Oo7 => "secret-service",
            Self::Vault => "vault",
            Self::Windows | Self::Bridge => "windows",
        }
    }

    pub fn non_utf8(self) -> NonUtf8 {
        match self {
            Self::File | Self::Keyutils | Self::GnomeKeyring | Self::Oo7 => NonUtf8::Kept,
            // It kept U+FFFD for each such byte, and said it succeeded.
            Self::KeePassXc => NonUtf8::Refused("KeePassXC keeps values as text"),
            Self::Vault => {
                NonUtf8::Refused("it is not UTF-8, and a Vault secret holds JSON strings")
            }
            Self::Windows | Self::Bridge => NonUtf8::Refused("not UTF-8"),
        }
    }

    /// README's limits: 32,767 bytes in the kernel keyring, 1,280 UTF-16
    /// units (2,560 bytes) in the Credential Manager; the others document
    /// none, so they are asked for 32 KiB.
    pub fn largest(self) -> Largest {
        match self {
            Self::Keyutils => Largest {
                value: pattern(32_767),
                refused: Some((
                    pattern(32_768),
                    "the kernel keyring holds values of at most 32767 bytes, \
                     and this one has 32768; nothing was changed",
                )),
            },
            // "é" is two bytes of UTF-8 and one UTF-16 unit.
            Self::Windows | Self::Bridge => Largest {
                value: "é".repeat(1280).into_bytes(),
                refused: Some(("é".repeat(1281).into_bytes(), "at most 1280")),
            },
            Self::File | Self::GnomeKeyring | Self::KeePassXc | Self::Oo7 | Self::Vault => {
                Largest {
                    value: pattern(32 * 1024),
                    refused: None,
                }
            }
        }
    }

    /// The run form that prints `name`'s variable (see `shown`).
    pub fn show(self, name: &str) -> Op {
        match self {
            // cmd.exe's `echo` under Wine once hung: the stand-in prints it.
            Self::Windows => Op::new(&["--", &wine().standin_command(), "env", name]),
            _ => Op::new(&["--", "sh", "-c", &format!("printf %s \"${name}\"")]),
        }
    }

    /// What `show` prints of `value`.
    pub fn shown(self, value: &[u8]) -> Vec<u8> {
        match self {
            Self::Windows => [b"[", value, b"]"].concat(),
            _ => value.to_vec(),
        }
    }

    /// Starts the store's backend for case `case`, with a project whose
    /// entries are `(NAME, service, username)`; each service is made the
    /// case's own (see `Backend::service`).
    pub fn start(self, case: &str, entries: &[(&str, &str, &str)]) -> Backend {
        let tag = format!("contract-{case}-{self:?}-");
        let entries: Vec<_> = entries
            .iter()
            .map(|(name, service, username)| (*name, format!("{tag}{service}"), *username))
            .collect();
        let borrowed: Vec<_> = entries
            .iter()
            .map(|(name, service, username)| (*name, service.as_str(), *username))
            .collect();
        let test = Test::new()
            .manifest(&manifest_for(&borrowed))
            .env("WITH_SECRETS_STORE", self.name());
        let (mut keyring, mut bao) = (None, None);
        let test = match self {
            Self::File => test.env("WITH_SECRETS_PASSPHRASE", "contract passphrase"),
            Self::Keyutils | Self::Windows => test,
            Self::GnomeKeyring | Self::KeePassXc | Self::Oo7 => {
                let service = match self {
                    Self::GnomeKeyring => SecretService::start(),
                    Self::KeePassXc => SecretService::start_keepassxc(),
                    _ => SecretService::start_oo7(),
                };
                let test = test.keyring(&service);
                keyring = Some(service);
                test
            }
            Self::Vault => {
                let server = Bao::dev();
                let test = server.client(test);
                bao = Some(server);
                test
            }
            Self::Bridge => wine().as_wsl(test),
        };
        Backend {
            store: self,
            tag,
            test,
            _keyring: keyring,
            _bao: bao,
        }
    }
}

/// One with-secrets run: its arguments, standard input and the variables
/// set for it alone.
pub struct Op {
    args: Vec<String>,
    input: Vec<u8>,
    env: Vec<(String, String)>,
}

impl Op {
    pub fn new(args: &[&str]) -> Self {
        Self {
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            input: Vec::new(),
            env: Vec::new(),
        }
    }

    /// With `name` set to `value` in this run's environment.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// `set NAME` with `value` on standard input.
fn set(name: &str, value: impl AsRef<[u8]>) -> Op {
    Op {
        input: value.as_ref().to_vec(),
        ..Op::new(&["set", name])
    }
}

fn get(name: &str) -> Op {
    Op::new(&["get", name])
}

fn delete(name: &str) -> Op {
    Op::new(&["delete", name])
}

fn check() -> Op {
    Op::new(&["check"])
}

fn json() -> Op {
    Op::new(&["env", "--format", "json"])
}

/// What `env --format json` prints for `pairs`, in this order.
fn json_of(pairs: &[(&str, &str)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "  {}: {}",
                serde_json::to_string(name).unwrap(),
                serde_json::to_string(value).unwrap()
            )
        })
        .collect();
    format!("{{\n{}\n}}\n", body.join(",\n"))
}

/// A store started for one case, and the project pointed at it.
pub struct Backend {
    store: Store,
    tag: String,
    test: Test,
    _keyring: Option<SecretService>,
    _bao: Option<Bao>,
}

impl Backend {
    /// `service` as the manifest has it: the case's own.
    pub fn service(&self, service: &str) -> String {
        format!("{}{service}", self.tag)
    }

    /// Runs `ops` one after another, each a process of its own; one `Run`
    /// per op.
    pub fn runs(&self, ops: &[Op]) -> Vec<Run> {
        match self.store {
            Store::Keyutils => {
                let steps: Vec<_> = ops
                    .iter()
                    .map(|op| {
                        let env: Vec<String> = op
                            .env
                            .iter()
                            .map(|(name, value)| {
                                shell_words::quote(&format!("{name}={value}")).into_owned()
                            })
                            .collect();
                        shell(&format!(
                            "env {} \"$BIN\" {}",
                            env.join(" "),
                            shell_words::join(&op.args)
                        ))
                        .input(&op.input)
                    })
                    .collect();
                in_session(&self.test, &steps)
            }
            Store::Windows => ops
                .iter()
                .map(|op| {
                    let env: Vec<_> = op
                        .env
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_str()))
                        .collect();
                    wine().run_env(&self.test, Some(&op.input), &env, &op.args)
                })
                .collect(),
            _ => ops.iter().map(|op| self.run_here(op)).collect(),
        }
    }

    /// Runs `op` with the Linux build, here.
    fn run_here(&self, op: &Op) -> Run {
        let mut command = self.test.command(&op.args);
        command
            .envs(op.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::piped());
        let mut child = command.spawn().expect("spawn with-secrets");
        let mut stdin = child.stdin.take().expect("piped stdin");
        // with-secrets may exit before it reads, e.g. on a refused value.
        match stdin.write_all(&op.input) {
            Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                panic!("write stdin: {err}")
            }
            _ => {}
        }
        drop(stdin);
        Run {
            output: wait(child),
        }
    }
}

/// Asserts that `run` succeeded and printed exactly `expected`, byte for byte.
#[track_caller]
fn prints(run: &Run, expected: impl AsRef<[u8]>) {
    run.success();
    assert_eq!(
        String::from_utf8_lossy(&run.output.stdout),
        String::from_utf8_lossy(expected.as_ref()),
        "stderr:\n{}",
        run.stderr()
    );
    assert_eq!(run.output.stdout, expected.as_ref(), "the bytes differ");
}

/// Several entries, set out of order, are read back in manifest order in
/// one run.
fn batch_order(store: Store) {
    let backend = store.start(
        "batch",
        &[
            ("ZULU", "batch", "zulu"),
            ("ALPHA", "batch", "alpha"),
            ("MIKE", "batch-other", "mike"),
        ],
    );
    let runs = backend.runs(&[
        set("MIKE", "third"),
        set("ZULU", "first"),
        set("ALPHA", "second"),
        json(),
        store.show("ALPHA"),
    ]);
    for run in &runs[..3] {
        run.success();
    }
    prints(
        &runs[3],
        json_of(&[("ZULU", "first"), ("ALPHA", "second"), ("MIKE", "third")]),
    );
    prints(&runs[4], store.shown(b"second"));
}

/// Two names for one service and username both get its value.
fn duplicate_item(store: Store) {
    let backend = store.start(
        "dup",
        &[("FIRST", "dup", "shared"), ("SECOND", "dup", "shared")],
    );
    let runs = backend.runs(&[
        set("SECOND", "one value"),
        json(),
        store.show("FIRST"),
        get("FIRST"),
    ]);
    runs[0].success();
    prints(
        &runs[1],
        json_of(&[("FIRST", "one value"), ("SECOND", "one value")]),
    );
    prints(&runs[2], store.shown(b"one value"));
    prints(&runs[3], "one value");
}

/// A second `set` replaces the value: one item, the second value; one
/// `delete` leaves nothing behind.
fn replace_on_set(store: Store) {
    let backend = store.start("replace", &[("TOKEN", "replace", "ci")]);
    let runs = backend.runs(&[
        set("TOKEN", "old value"),
        set("TOKEN", "new value"),
        get("TOKEN"),
        store.show("TOKEN"),
        delete("TOKEN"),
        get("TOKEN"),
    ]);
    runs[0].success();
    runs[1].success();
    prints(&runs[2], "new value");
    prints(&runs[3], store.shown(b"new value"));
    runs[4].success().stderr_lacks("nothing to delete");
    // Had the second set added an item, the old value would show here.
    runs[5]
        .expect_code(125)
        .stdout_is("")
        .never_shows("old value");
}

/// Deleting an item succeeds and leaves the others; a second delete says
/// there was nothing.
fn delete_counts(store: Store) {
    let backend = store.start(
        "delete",
        &[("TOKEN", "delete", "ci"), ("OTHER", "delete", "other")],
    );
    let runs = backend.runs(&[
        set("TOKEN", "to go"),
        set("OTHER", "to stay"),
        delete("TOKEN"),
        delete("TOKEN"),
        get("TOKEN"),
        get("OTHER"),
    ]);
    runs[0].success();
    runs[1].success();
    runs[2].success().stderr_lacks("nothing to delete");
    runs[3].success().stderr_has(&format!(
        "TOKEN was not stored in {} (service {:?}, username \"ci\"); nothing to delete",
        store.name(),
        backend.service("delete")
    ));
    runs[4].expect_code(125).stdout_is("");
    prints(&runs[5], "to stay");
}

/// The largest value the store documents (32 KiB where it documents none)
/// comes back byte for byte; one past a documented limit is refused by
/// name and changes nothing.
fn largest_value(store: Store) {
    let backend = store.start("large", &[("BIG", "large", "ci")]);
    let largest = store.largest();
    let mut ops = vec![set("BIG", &largest.value), get("BIG"), store.show("BIG")];
    if let Some((refused, _)) = &largest.refused {
        ops.extend([set("BIG", refused), get("BIG")]);
    }
    let runs = backend.runs(&ops);
    runs[0].success();
    prints(&runs[1], &largest.value);
    prints(&runs[2], store.shown(&largest.value));
    if let Some((refused, message)) = &largest.refused {
        runs[3]
            .expect_code(125)
            .stderr_has(message)
            .never_shows(&String::from_utf8_lossy(&refused[..16]));
        prints(&runs[4], &largest.value);
    }
}

/// A value that is not UTF-8: kept byte for byte where the store takes
/// bytes (and refused by name by `env`, whose formats are text), refused by
/// name where it does not.
fn non_utf8(store: Store) {
    let backend = store.start("bytes", &[("BYTES", "bytes", "ci")]);
    let value: &[u8] = b"\xff\xfe caf\xe9 \x80end";
    let runs = backend.runs(&[
        set("BYTES", value),
        get("BYTES"),
        store.show("BYTES"),
        json(),
    ]);
    match store.non_utf8() {
        NonUtf8::Kept => {
            runs[0].success();
            prints(&runs[1], value);
            prints(&runs[2], store.shown(value));
            runs[3]
                .expect_code(125)
                .stdout_is("")
                .stderr_has("cannot print BYTES as json: its value is not valid UTF-8");
        }
        NonUtf8::Refused(message) => {
            runs[0]
                .expect_code(125)
                .stderr_has(message)
                .stderr_has("BYTES");
            runs[1].expect_code(125).stdout_is("");
        }
    }
}

/// `:` and `/` in services and usernames: each entry is an item of its own,
/// also where escaping or joining the two could make them meet.
fn separators_in_names(store: Store) {
    let backend = store.start(
        "sep",
        &[
            ("BOTH", "a:b/c", "d:e/f"),
            ("COLON_IN_SERVICE", "s:t", "u"),
            ("COLON_IN_USER", "s", "t:u"),
            ("SLASH_IN_SERVICE", "s/t", "u"),
            ("SLASH_IN_USER", "s", "t/u"),
        ],
    );
    let names = [
        "BOTH",
        "COLON_IN_SERVICE",
        "COLON_IN_USER",
        "SLASH_IN_SERVICE",
        "SLASH_IN_USER",
    ];
    let mut ops: Vec<Op> = names
        .iter()
        .map(|name| set(name, format!("value of {name}")))
        .collect();
    ops.extend([json(), get("BOTH"), delete("COLON_IN_USER"), json()]);
    let runs = backend.runs(&ops);
    for run in &runs[..names.len()] {
        run.success();
    }
    let values: Vec<(&str, String)> = names
        .iter()
        .map(|name| (*name, format!("value of {name}")))
        .collect();
    let pairs: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
    prints(&runs[names.len()], json_of(&pairs));
    prints(&runs[names.len() + 1], "value of BOTH");
    runs[names.len() + 2]
        .success()
        .stderr_lacks("nothing to delete");
    // The others stay; the run fails for the one deleted, naming it alone.
    runs[names.len() + 3]
        .expect_code(125)
        .stdout_is("")
        .stderr_has("1 required secret is missing")
        .stderr_has("COLON_IN_USER");
}

/// An item never set: `get` and the run form say it is missing (125, the
/// standard message and the `set` line), `check` exits 1 with the `set`
/// line, and the environment stands in for the run form but never for
/// `get`.
fn unknown_key(store: Store) {
    let backend = store.start(
        "unknown",
        &[("KNOWN", "unknown", "known"), ("NEVER", "unknown", "never")],
    );
    let runs = backend.runs(&[
        set("KNOWN", "here"),
        get("NEVER"),
        store.show("NEVER"),
        check(),
        store.show("NEVER").env("NEVER", "from the environment"),
        get("NEVER").env("NEVER", "from the environment"),
    ]);
    runs[0].success();
    runs[1]
        .expect_code(125)
        .stdout_is("")
        .stderr_has("NEVER is not stored")
        .stderr_has("set NEVER");
    runs[2]
        .expect_code(125)
        .stdout_is("")
        .stderr_has(&format!(
            "1 required secret is missing from {} and the environment:",
            store.name()
        ))
        .stderr_has(&format!(
            "NEVER  service {:?}, username \"never\"",
            backend.service("unknown")
        ))
        .stderr_has("set NEVER")
        .stderr_lacks("KNOWN");
    runs[3].expect_code(1).never_shows("here");
    assert!(
        runs[3]
            .stdout()
            .contains("missing: run with-secrets set NEVER"),
        "{}",
        runs[3].stdout()
    );
    prints(&runs[4], store.shown(b"from the environment"));
    runs[5]
        .expect_code(125)
        .stdout_is("")
        .never_shows("from the environment");
}

/// One `#[test]` per case, each running it against `$store`.
macro_rules! cases {
    ($store:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                super::$case($store);
            }
        )*
    };
}

/// The whole contract, as a module of tests, for one store.
macro_rules! store_tests {
    ($module:ident, $store:expr) => {
        mod $module {
            use super::Store;
            cases!(
                $store;
                batch_order,
                duplicate_item,
                replace_on_set,
                delete_counts,
                largest_value,
                non_utf8,
                separators_in_names,
                unknown_key,
            );
        }
    };
}

store_tests!(file, Store::File);
store_tests!(keyutils, Store::Keyutils);
store_tests!(gnome_keyring, Store::GnomeKeyring);
store_tests!(keepassxc, Store::KeePassXc);
store_tests!(oo7, Store::Oo7);
store_tests!(vault, Store::Vault);
store_tests!(windows, Store::Windows);
store_tests!(bridge, Store::Bridge);
