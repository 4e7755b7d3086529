//! The command line, as clap derive types. The `///` docs are the help text.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::store::StoreKind;

const EXAMPLES: &str = "\
Examples:
  with-secrets init API_TOKEN          write a starter secrets.toml here, with one entry
  with-secrets set API_TOKEN           store API_TOKEN's value (prompts on a terminal)
  printf %s \"$TOKEN\" | with-secrets set API_TOKEN
                                       store a value from standard input
  with-secrets check                   list each entry as found or missing; exit 1 if one is
  with-secrets -- cargo test           run cargo test with every secret set
  with-secrets -c 'npm run dev'        the same, for places that take one string
  with-secrets --mask -- ./deploy.sh   show each value in the output as <redacted:NAME>
  eval \"$(with-secrets env)\"           export every variable into this shell

In CI, where there is no keyring, each variable falls back to the same-named
variable already in the environment, so the same line works unchanged:
  API_TOKEN=\"$CI_API_TOKEN\" with-secrets -- cargo test   (or set it in the job's env)

As a Makefile preflight, so a missing secret stops make before any work starts:
  check:
  \twith-secrets check
  test: check
  \twith-secrets -- cargo test

Exit status: the command's own (with --mask, a death by signal N kills
with-secrets by N too), or 125 if with-secrets failed, 126 if the command
could not be executed, 127 if it was not found.";

/// Run a command with secrets from your OS keyring as environment variables.
///
/// A checked-in manifest, secrets.toml, maps each environment variable to a
/// keyring entry (service and username), never to a value. `with-secrets --
/// COMMAND` looks every entry up, then runs COMMAND in its place with those
/// variables set.
#[derive(Debug, Parser)]
#[command(
    name = "with-secrets",
    version,
    after_help = EXAMPLES,
    override_usage = "with-secrets [OPTIONS] -- COMMAND [ARGS]...\n       \
                      with-secrets [OPTIONS] -c STRING\n       \
                      with-secrets [OPTIONS] <SUBCOMMAND>"
)]
pub struct Cli {
    /// The manifest to use [default: the nearest secrets.toml in this folder
    /// or above; env: WITH_SECRETS_MANIFEST]; `agent` takes more than one
    #[arg(short, long, global = true, value_name = "PATH", action = clap::ArgAction::Append)]
    pub(crate) manifest: Vec<PathBuf>,

    /// Where secrets are kept [default: the manifest's `store`, else auto]
    #[arg(long, global = true, value_name = "STORE", env = "WITH_SECRETS_STORE")]
    pub(crate) store: Option<StoreKind>,

    /// Use the manifest's [profiles.NAME]: its entries over [secrets], and
    /// its store [env: WITH_SECRETS_PROFILE]
    #[arg(long, global = true, value_name = "NAME", value_parser = parse_profile)]
    pub(crate) profile: Option<String>,

    /// Whether `store` came from WITH_SECRETS_STORE rather than `--store`,
    /// for messages that say why a store was used.
    #[arg(skip)]
    pub(crate) store_from_env: bool,

    /// Whether `profile` came from WITH_SECRETS_PROFILE.
    #[arg(skip)]
    pub(crate) profile_from_env: bool,

    /// How long a keyring may take to answer, e.g. 10, 2.5 or 500ms
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        env = "WITH_SECRETS_TIMEOUT",
        default_value = "10",
        value_parser = parse_timeout
    )]
    pub(crate) timeout: Duration,

    /// Say on stderr which manifest and store were used, and why, and how
    /// long the lookup took (never a value)
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub(crate) verbose: bool,

    /// Print no warnings; errors are still shown
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    /// Read every value from its store for this run, not from the session
    /// cache that `with-secrets unlock` keeps for slow stores
    #[arg(
        long,
        global = true,
        env = "WITH_SECRETS_NO_CACHE",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub(crate) no_cache: bool,

    /// Run the command with its output masked: each value, wherever it
    /// appears in its stdout or stderr, shows as <redacted:NAME>
    ///
    /// The command is started as a child instead of in with-secrets' place;
    /// its exit status is passed on (a death by signal N kills with-secrets
    /// by N too), and SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to
    /// it. When stdout is a
    /// terminal the command runs on a pseudo-terminal, so colours and
    /// interactive programs still work. Values shorter than 4 characters are
    /// not masked; a warning names them.
    #[arg(
        long,
        env = "WITH_SECRETS_MASK",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub(crate) mask: bool,

    /// The command to run, as one string, split into words as a shell would
    /// (quotes and backslashes) but without starting a shell: for places that
    /// take one string, such as devcontainer.json or a Makefile variable
    #[arg(
        short = 'c',
        long = "command",
        value_name = "STRING",
        conflicts_with = "run"
    )]
    pub(crate) command_line: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// The command to run with the secrets set, and its arguments
    #[arg(last = true, value_name = "COMMAND")]
    pub(crate) run: Vec<OsString>,
}

impl Cli {
    /// Parses this process's arguments (and the variables that stand in for
    /// flags), noting where `--store`'s value came from.
    pub fn parse_args() -> Result<Self, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command()
            .try_get_matches()
            .map_err(|err| suggest(err, &std::env::args_os().collect::<Vec<_>>()))?;
        let mut cli = Self::from_arg_matches(&matches)?;
        cli.store_from_env =
            matches.value_source("store") == Some(clap::parser::ValueSource::EnvVariable);
        // Read here rather than by clap's `env`, so that help does not show
        // the variable's value, and an empty one counts as unset.
        if cli.profile.is_none()
            && let Some(name) = std::env::var_os("WITH_SECRETS_PROFILE").filter(|v| !v.is_empty())
        {
            let name = parse_profile(&name.to_string_lossy()).map_err(|message| {
                Self::command().error(
                    clap::error::ErrorKind::ValueValidation,
                    format!("WITH_SECRETS_PROFILE: {message}"),
                )
            })?;
            cli.profile = Some(name);
            cli.profile_from_env = true;
        }
        Ok(cli)
    }
}

/// The options that take a value, for finding the first word that is not an
/// option or an option's value.
const TAKES_VALUE: &[&str] = &[
    "-m",
    "--manifest",
    "--store",
    "--profile",
    "--timeout",
    "-c",
    "--command",
];

/// Adds a tip to clap's bare "unexpected argument 'WORD' found" when WORD is
/// where a subcommand goes (the first word that is not an option): a
/// subcommand one or two typos away is suggested (`chek`: `check`), and any
/// other word is taken for a command to run, which needs `--` before it
/// (`with-secrets echo hi`: `with-secrets -- echo hi`, the whole line again).
fn suggest(mut err: clap::Error, args: &[OsString]) -> clap::Error {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::UnknownArgument {
        return err;
    }
    let Some(ContextValue::String(word)) = err.get(ContextKind::InvalidArg).cloned() else {
        return err;
    };
    let Some(at) = first_word(args).filter(|&at| args[at] == *word) else {
        return err;
    };
    let command = Cli::command();
    let near = command
        .get_subcommands()
        .map(clap::Command::get_name)
        .map(|name| (strsim::damerau_levenshtein(&word, name), name))
        .filter(|&(distance, name)| distance <= if name.len() < 5 { 1 } else { 2 })
        .min();
    if let Some((_, name)) = near {
        err.insert(
            ContextKind::SuggestedSubcommand,
            ContextValue::String(name.to_owned()),
        );
    }
    // Said even beside a near subcommand: `sed` is one typo from `set`,
    // and yet a command.
    let words = std::iter::once("with-secrets".into())
        .chain(args[1..at].iter().map(|arg| arg.to_string_lossy()))
        .chain(std::iter::once("--".into()))
        .chain(args[at..].iter().map(|arg| arg.to_string_lossy()));
    let line = shell_words::join(words.collect::<Vec<_>>());
    err.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![
            format!(
                "to run `{}` with the secrets set, put `--` before it: {}",
                crate::term::printable::printable(&shell_words::quote(&word)),
                crate::term::printable::printable(&line)
            )
            .into(),
        ]),
    );
    err
}

/// The index in `args` (the program first) of the first word that is not
/// an option or an option's value, if any comes before `--`.
fn first_word(args: &[OsString]) -> Option<usize> {
    let mut skip_value = false;
    for (at, arg) in args.iter().enumerate().skip(1) {
        let text = arg.to_string_lossy();
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if text == "--" {
            return None;
        }
        if text.starts_with("--") {
            skip_value = !text.contains('=') && TAKES_VALUE.contains(&text.as_ref());
        } else if let Some(short) = text.strip_prefix('-').filter(|short| !short.is_empty()) {
            // `-qm PATH`: a letter that takes a value takes the rest of
            // the word (`-mfoo.toml`), else the next word.
            skip_value = short
                .find(['m', 'c'])
                .is_some_and(|at| at == short.len() - 1);
        } else {
            return Some(at);
        }
    }
    None
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Store the value of NAME's entry, replacing any old one.
    ///
    /// On a terminal it prompts without echo; otherwise it reads standard
    /// input and strips one trailing newline.
    Set {
        /// The variable, as named in the manifest
        name: String,
    },
    /// Print the value of NAME's entry.
    ///
    /// A newline follows the value only when standard output is a terminal,
    /// so piped output is the value byte for byte.
    Get {
        /// The variable, as named in the manifest
        name: String,
    },
    /// Remove NAME's entry from the keyring.
    Delete {
        /// The variable, as named in the manifest
        name: String,
    },
    /// Show whether each entry resolves, without printing values.
    ///
    /// Exits 0 when every required entry resolves (from the keyring or the
    /// environment), 1 when one is missing: a preflight for Makefiles and CI.
    Check {
        /// How to print the report: a table, or one JSON document (its
        /// schema is schema/check.schema.json in the source)
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
    },
    /// Copy every manifest entry found in another store into this one.
    ///
    /// For moving off keyrings.alt's plain-text file: `with-secrets import
    /// --from keyrings-alt` copies each entry it finds into your keyring (or
    /// the --store given), reports what it copied and what it did not find,
    /// and never prints a value. It does not delete the old file.
    Import {
        /// The store to copy from
        #[arg(long, value_name = "STORE")]
        from: StoreKind,
    },
    /// Show what with-secrets sees: which store it uses and why, the session
    /// bus and Secret Service, keyutils, WSL or container, the manifest, and
    /// whether each entry resolves. Never a value.
    Doctor,
    /// Write a commented starter secrets.toml in this folder (or at --manifest).
    ///
    /// Each NAME becomes an entry whose username is the name in lower case,
    /// under a default service named after this folder. Its first line points
    /// editors at secrets.schema.json, the manifest's JSON Schema, which init
    /// writes beside it. It never overwrites.
    Init {
        /// Variables to add entries for, e.g. API_TOKEN DATABASE_URL
        names: Vec<String>,
    },
    /// Print every variable and its value, for a shell, a .env file or JSON.
    ///
    /// The variables are the ones `with-secrets -- COMMAND` would give
    /// COMMAND, resolved the same way: from the store, else (the CI
    /// fallback) from the same-named variable already in the environment,
    /// which is printed too. A missing optional one is left out; a missing
    /// required one is an error. `eval "$(with-secrets env)"` sets them in
    /// the current shell.
    Env {
        /// How to print them
        #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
        format: EnvFormat,
    },
    /// Trust this login session for a while: open the file store, and keep
    /// what runs read from slow stores (the session cache).
    ///
    /// Where there is a file store, or runs use one, checks its passphrase
    /// (from the terminal, or WITH_SECRETS_PASSPHRASE), making the store if
    /// there is none, and keeps the file's key, never the passphrase, in the
    /// Linux kernel's session keyring; and turns on the session cache: the
    /// values runs read from vault, windows on WSL or an agent are kept
    /// there, sealed, and runs that find all they need kept ask the store
    /// nothing (a value changed in the store meanwhile is served as it was;
    /// --no-cache reads the store for one run). Both last until DURATION
    /// has passed, `with-secrets lock`, or the login session ends. Another
    /// session is not unlocked by this one.
    Unlock {
        /// How long, e.g. 90s, 15m, 2h or 1h30m; at most 7d [default: 10h]
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_unlock_for)]
        duration: Option<Duration>,
    },
    /// Lock the file store again and end the session cache, at once: forget
    /// what `with-secrets unlock` kept in this login session.
    Lock,
    /// Print a shell completion script.
    ///
    /// For example: with-secrets completions bash >
    /// ~/.local/share/bash-completion/completions/with-secrets
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, in roff.
    ///
    /// For example: with-secrets man > ~/.local/share/man/man1/with-secrets.1
    Man,
    /// Print the JSON Schema of secrets.toml, for editors.
    ///
    /// Taplo and the Even Better TOML extension read it through a first
    /// line `#:schema ./secrets.schema.json`, which `init` writes, with the
    /// file beside it. After an upgrade: with-secrets schema >
    /// secrets.schema.json
    Schema,
    /// Serve this machine's keyring to with-secrets in dev containers and
    /// over SSH, on a Unix socket, as ssh-agent serves keys.
    ///
    /// It serves the entries of the manifests given with -m (repeatable),
    /// else of the nearest secrets.toml, from --store (else the first
    /// manifest's store, else auto), and nothing else; read-only unless
    /// --allow-writes. It prints the line to export,
    /// `WITH_SECRETS_AGENT=PATH; export WITH_SECRETS_AGENT;`, logs each
    /// request on stderr (the entries, the peer's pid and uid, never a
    /// value), answers only its own user and root, and runs until
    /// interrupted, then removes its socket.
    Agent {
        /// Listen here [default: agent.sock in a new private folder under
        /// $XDG_RUNTIME_DIR, else /tmp]
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Let runs store and delete values of the entries it serves
        #[arg(long)]
        allow_writes: bool,
    },
    /// Serve a store to with-secrets on WSL over stdin and stdout (the
    /// Windows build's end of `--store windows`; not for people).
    #[command(hide = true)]
    Bridge,
}

/// How `with-secrets env` prints the variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EnvFormat {
    /// `export NAME='value'` lines, quoted for sh, bash and zsh
    Shell,
    /// `NAME=value` lines, quoted where needed, that python-dotenv, Rust's
    /// dotenvy and Node's dotenv read back alike; multi-line values too
    Dotenv,
    /// `NAME=value` lines taken literally, for docker --env-file (and
    /// python-dotenv): values that would need quoting are refused
    Docker,
    /// One JSON object mapping each name to its value
    Json,
    /// For GitHub Actions: appends each variable to the file $GITHUB_ENV
    /// names, for later steps, and prints an `::add-mask::` line for each
    /// line of each value, so the runner masks them in the logs
    #[value(alias = "gha")]
    Github,
}

/// How `with-secrets check` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CheckFormat {
    /// One aligned line per entry
    Text,
    /// One JSON document: the store, the profile, and each entry's status
    Json,
}

/// A profile's name as the manifest allows it: 1 to 64 ASCII letters,
/// digits, `-` and `_`, a word a shell leaves alone in a fix line.
fn parse_profile(text: &str) -> Result<String, String> {
    if crate::manifest::is_profile_name(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{}` is not a profile name: use up to 64 ASCII letters, digits, `-` and `_`",
            crate::term::printable::printable(text)
        ))
    }
}

/// How long `unlock` lasts: `90s`, `15m`, `2h`, `1h30m`, up to a week.
fn parse_unlock_for(text: &str) -> Result<Duration, String> {
    let duration = crate::term::when::parse_duration(text)?;
    if duration > Duration::from_secs(7 * 86_400) {
        return Err(format!(
            "`{text}` is longer than 7d: an unlock is for a working session, not for good"
        ));
    }
    Ok(duration)
}

/// A positive duration in seconds (`10`, `2.5`) or milliseconds (`500ms`).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let (number, scale) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 1e-3),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0 && *seconds <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{text}` is not a duration: use seconds, e.g. 10 or 2.5, or 500ms"))
}

/// The store names as clap offers them, with each one's help; the store
/// module itself knows nothing of clap.
impl clap::ValueEnum for StoreKind {
    fn value_variants<'a>() -> &'a [Self] {
        Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let value = clap::builder::PossibleValue::new(self.spelling()).help(self.about());
        Some(match self {
            Self::Vault => value.alias("openbao"),
            _ => value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_word_skips_options_and_their_values() {
        let at = |line: &str| {
            let args: Vec<OsString> = line.split(' ').map(OsString::from).collect();
            first_word(&args)
        };
        assert_eq!(at("ws echo hi"), Some(1));
        assert_eq!(at("ws -m echo echo"), Some(3));
        assert_eq!(at("ws -qm x.toml --store=file --profile p echo"), Some(6));
        assert_eq!(at("ws --timeout 5 -v chek"), Some(4));
        assert_eq!(at("ws -mfoo.c echo"), Some(2));
        assert_eq!(at("ws -qmfoo.c echo"), Some(2));
        assert_eq!(at("ws -- echo"), None);
        assert_eq!(at("ws -v"), None);
    }

    #[test]
    fn the_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn timeouts_are_seconds_or_milliseconds() {
        assert_eq!(parse_timeout("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_timeout("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_timeout("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "", "ten", "inf", "NaN", "1e9"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
