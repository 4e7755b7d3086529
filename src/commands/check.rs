//! `with-secrets check`: one line per entry, found or missing, never a value.

use std::io::{self, Write};
use std::process::ExitCode;

use crate::cli::CheckFormat;
use crate::config::Config;
use crate::error::Error;
use crate::manifest::Manifest;
use crate::resolve::{self, Source};
use crate::term::printable::{printable, printable_lines};

/// What `check` says of one entry: the one computation that both the table
/// and `--format json` show, so that they cannot disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// In the store: how many items matched, and when the session cache
    /// read it, if the value came from there.
    Found {
        matches: usize,
        cached: Option<std::time::SystemTime>,
    },
    FromEnvironment,
    /// The store failed, so nothing was looked up.
    Error,
    MissingOptional,
    GeneratedOnFirstRun,
    Missing(Missing),
}

/// Why a required entry is missing, which decides what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// There is no store here (the CI case): `set` can only fail.
    NoStore,
    ReadOnly,
    /// Values the agent serves live on its machine.
    NotWhereTheAgentRuns,
    /// The file store is not made yet, and nothing here can give its new
    /// passphrase (no terminal, no `WITH_SECRETS_PASSPHRASE`): `set` as it
    /// is would fail.
    NoPassphraseYet,
    /// `set` stores it.
    Set,
}

impl Status {
    /// Every entry's status, in manifest order.
    pub(crate) fn of_all(manifest: &Manifest, resolution: &resolve::Resolution) -> Vec<Self> {
        let generated = Generated::new(manifest, resolution);
        let read_only = read_only(resolution);
        manifest
            .entries
            .iter()
            .zip(&resolution.sources)
            .map(|(entry, source)| match source {
                Source::Store(found) => Self::Found {
                    matches: found.matches,
                    cached: found.cached,
                },
                Source::Environment(_) => Self::FromEnvironment,
                Source::Missing if resolution.store_failed().is_some() => Self::Error,
                Source::Missing if entry.optional => Self::MissingOptional,
                Source::Missing if generated.will(entry) => Self::GeneratedOnFirstRun,
                Source::Missing if resolution.store_error.is_some() => {
                    Self::Missing(Missing::NoStore)
                }
                Source::Missing if read_only => Self::Missing(Missing::ReadOnly),
                Source::Missing if resolution.store == "agent" => {
                    Self::Missing(Missing::NotWhereTheAgentRuns)
                }
                Source::Missing if no_passphrase_yet(resolution) => {
                    Self::Missing(Missing::NoPassphraseYet)
                }
                Source::Missing => Self::Missing(Missing::Set),
            })
            .collect()
    }

    /// Whether a run would have this entry's value or do without it.
    fn resolves(self) -> bool {
        !matches!(self, Self::Missing(_) | Self::Error)
    }

    /// The word for it in `--format json`.
    fn word(self) -> &'static str {
        match self {
            Self::Found { .. } => "found",
            Self::FromEnvironment => "from-environment",
            Self::Error => "error",
            Self::MissingOptional => "missing-optional",
            Self::GeneratedOnFirstRun => "generated-on-first-run",
            Self::Missing(_) => "missing",
        }
    }

    /// Where a run would take the value from, if from anywhere.
    fn source(self) -> Option<&'static str> {
        match self {
            Self::Found {
                cached: Some(_), ..
            } => Some("session-cache"),
            Self::Found { cached: None, .. } => Some("store"),
            Self::FromEnvironment => Some("environment"),
            Self::GeneratedOnFirstRun => Some("generated"),
            Self::Error | Self::MissingOptional | Self::Missing(_) => None,
        }
    }

    /// The table's words for it. Never a value.
    fn describe(self, name: &str, store: &str, fix: &str) -> String {
        match self {
            Self::Found { matches, .. } if matches > 1 => {
                format!("found ({matches} items match; using the most recently modified)")
            }
            Self::Found {
                cached: Some(read), ..
            } => format!(
                "found (in the session cache, read {} ago)",
                resolve::age(read)
            ),
            Self::Found { cached: None, .. } => "found".to_owned(),
            Self::FromEnvironment => "from environment".to_owned(),
            Self::Error => format!("not looked up: {store} failed"),
            Self::MissingOptional => "missing (optional)".to_owned(),
            Self::GeneratedOnFirstRun => "missing (generated on first run)".to_owned(),
            // No `set` line where `set` can only fail: the advice below
            // the table says what works instead.
            Self::Missing(Missing::NoStore) => {
                format!("missing: not in the environment, and {store} is not here")
            }
            Self::Missing(Missing::ReadOnly) => format!("missing: {store} is read-only"),
            Self::Missing(Missing::NotWhereTheAgentRuns) => {
                "missing: not stored where the agent runs".to_owned()
            }
            Self::Missing(Missing::NoPassphraseYet) => format!(
                "missing: the file store is not made yet, and nothing here can give its new \
                 passphrase: run {fix} set {name} at a terminal, or with \
                 WITH_SECRETS_PASSPHRASE set"
            ),
            Self::Missing(Missing::Set) => format!("missing: run {fix} set {name}"),
        }
    }
}

/// Whether the store is a file store not made yet that `set` could not
/// make here: no terminal to ask its new passphrase, and no
/// `WITH_SECRETS_PASSPHRASE`.
fn no_passphrase_yet(resolution: &resolve::Resolution) -> bool {
    resolution.store == crate::store::StoreKind::File.name()
        && !resolution.would_generate
        && !crate::term::prompt::has_terminal()
        && std::env::var_os(crate::store::file::PASSPHRASE_VARIABLE).is_none_or(|v| v.is_empty())
}

/// One aligned line per entry: name, service, username and where its value
/// comes from. Never a value.
pub(crate) fn entry_lines(
    manifest: &Manifest,
    resolution: &resolve::Resolution,
    fix: &str,
    indent: &str,
) -> Vec<String> {
    let statuses = Status::of_all(manifest, resolution);
    lines(manifest, &statuses, resolution, fix, indent)
}

fn lines(
    manifest: &Manifest,
    statuses: &[Status],
    resolution: &resolve::Resolution,
    fix: &str,
    indent: &str,
) -> Vec<String> {
    let rows: Vec<[String; 4]> = manifest
        .entries
        .iter()
        .zip(statuses.iter().copied())
        .map(|(entry, status)| {
            [
                entry.name.to_string(),
                printable(&entry.service).into_owned(),
                printable(&entry.username).into_owned(),
                status.describe(entry.name.as_str(), resolution.store, fix),
            ]
        })
        .collect();
    let width = |column: usize| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    rows.iter()
        .map(|[name, service, username, status]| {
            format!("{indent}{name:w0$}  {service:w1$}  {username:w2$}  {status}")
        })
        .collect()
}

/// What `check` says of a manifest with no entries: that, and how to add one.
fn no_entries(project: &crate::config::Project, fix: &str) -> String {
    let manifest = &project.manifest;
    let mut out = format!(
        "with-secrets: {} has no entries, so there is nothing to check\n  \
         add one under its [secrets] table (write the table if there is none), e.g.: \
         API_TOKEN = {{ service = \"my-app\", username = \"api-token\" }}\n  \
         then store its value: {fix} set API_TOKEN",
        crate::term::printable::printable_path(&manifest.path)
    );
    let with_entries: Vec<&str> = manifest
        .profiles
        .iter()
        .filter(|profile| !profile.entries.is_empty())
        .map(|profile| profile.name.as_str())
        .collect();
    // A profile already chosen is in `fix`, and none of its entries is here.
    if let (Some(first), None) = (with_entries.first(), &project.profile) {
        let _ = std::fmt::Write::write_fmt(
            &mut out,
            format_args!(
                "\n  or check a profile that has entries ({}): {fix} --profile {first} check",
                with_entries.join(", ")
            ),
        );
    }
    out
}

/// Whether the store looked in is one with-secrets only reads.
fn read_only(resolution: &resolve::Resolution) -> bool {
    crate::store::StoreKind::from_spelling(resolution.store).is_some_and(|kind| kind.read_only())
}

/// Which missing entries a run would generate a value for: those whose
/// item a missing entry with `generate` names (itself, or another name for
/// the same item; one whose variable is set makes nothing), where the store
/// holds values (with no store, nothing is generated).
struct Generated<'m>(Option<std::collections::HashSet<(&'m str, &'m str)>>);

impl<'m> Generated<'m> {
    fn new(manifest: &'m Manifest, resolution: &resolve::Resolution) -> Self {
        Self(resolution.would_generate.then(|| {
            manifest
                .entries
                .iter()
                .zip(&resolution.sources)
                .filter(|(entry, source)| {
                    entry.generate.is_some() && matches!(source, Source::Missing)
                })
                .map(|(entry, _)| (entry.service.as_str(), entry.username.as_str()))
                .collect()
        }))
    }

    fn will(&self, entry: &crate::manifest::Entry) -> bool {
        self.0
            .as_ref()
            .is_some_and(|items| items.contains(&(entry.service.as_str(), entry.username.as_str())))
    }
}

/// The document `check --format json` prints (schema/check.schema.json):
/// the same statuses as the table, never a value. Strings are the raw
/// ones, JSON-escaped (control characters as `\u001b` and the like), not
/// the table's terminal-safe renderings; a path that is not UTF-8 is
/// given with U+FFFD in place of what is not.
#[derive(serde::Serialize)]
struct Report<'a> {
    manifest: String,
    profile: Option<&'a str>,
    /// None when the manifest has no entries, so no store was opened.
    store: Option<StoreReport>,
    /// Whether `check` exits 0.
    ok: bool,
    /// The store's failure, when it failed (and `check` exits 125).
    error: Option<String>,
    entries: Vec<EntryReport<'a>>,
}

#[derive(serde::Serialize)]
struct StoreReport {
    name: &'static str,
    why: String,
}

#[derive(serde::Serialize)]
struct EntryReport<'a> {
    name: &'a str,
    service: &'a str,
    username: &'a str,
    store: &'static str,
    status: &'static str,
    /// Where a run would take the value from: `store`, `session-cache`,
    /// `environment`, `generated`, or None.
    source: Option<&'static str>,
    /// The table's words for the status.
    detail: String,
    /// For `found`: how many items matched.
    matches: Option<usize>,
    /// For `found` from the session cache: how long ago it was read.
    cached_seconds_ago: Option<u64>,
}

fn report<'a>(
    project: &'a crate::config::Project,
    looked_up: Option<(&resolve::Resolution, &[Status])>,
    fix: &str,
    ok: bool,
) -> Report<'a> {
    let manifest = &project.manifest;
    let (store, error, entries) = match looked_up {
        None => (None, None, Vec::new()),
        Some((resolution, statuses)) => (
            Some(StoreReport {
                name: resolution.store,
                why: resolve::store_why(project, resolution),
            }),
            resolution.store_failed().map(ToString::to_string),
            manifest
                .entries
                .iter()
                .zip(statuses.iter().copied())
                .map(|(entry, status)| EntryReport {
                    name: entry.name.as_str(),
                    service: &entry.service,
                    username: &entry.username,
                    store: resolution.store,
                    status: status.word(),
                    source: status.source(),
                    detail: status.describe(entry.name.as_str(), resolution.store, fix),
                    matches: match status {
                        Status::Found { matches, .. } => Some(matches),
                        _ => None,
                    },
                    cached_seconds_ago: match status {
                        Status::Found {
                            cached: Some(read), ..
                        } => Some(read.elapsed().unwrap_or_default().as_secs()),
                        _ => None,
                    },
                })
                .collect(),
        ),
    };
    Report {
        manifest: manifest.path.to_string_lossy().into_owned(),
        profile: project.profile.as_deref(),
        store,
        ok,
        error,
        entries,
    }
}

fn print_json(report: &Report<'_>) -> Result<(), Error> {
    let mut stdout = io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, report)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush())
        .map_err(|source| Error::Stdout { source })
}

/// One line per entry (or one JSON document), never a value. Exit 0 only
/// when every required entry resolves, from the keyring or the environment.
pub(crate) fn run(format: CheckFormat, config: &Config) -> Result<ExitCode, Error> {
    let project = config.project()?;
    let manifest = &project.manifest;
    if manifest.entries.is_empty() {
        // Nothing to check is not a failure (a fresh `init` is this), but
        // silence would look like one.
        crate::note!("{}", printable_lines(&no_entries(&project, &config.fix)));
        if format == CheckFormat::Json {
            print_json(&report(&project, None, &config.fix, true))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let resolution = resolve::lookup(config, &project, false);
    let statuses = Status::of_all(manifest, &resolution);
    let all_resolve = statuses.iter().all(|status| status.resolves());
    if format == CheckFormat::Json {
        // Printed even when the store failed, each entry an `error`: the
        // document is what CI reads, and the exit status stays 125.
        print_json(&report(
            &project,
            Some((&resolution, &statuses)),
            &config.fix,
            all_resolve,
        ))?;
    }
    // A store that is there but failed says nothing of any entry: that is
    // an error to fix, not a list of values to store.
    if let Some(cause) = resolution.store_failed() {
        return Err(Error::Store {
            store: resolution.store,
            cause: cause.clone(),
        });
    }
    if format == CheckFormat::Text {
        let mut stdout = io::stdout().lock();
        for line in lines(manifest, &statuses, &resolution, &config.fix, "") {
            let line = printable_lines(&line);
            writeln!(stdout, "{line}").map_err(|source| Error::Stdout { source })?;
        }
    }
    // Why the keyring gave nothing matters only when something is missing.
    if let (false, Some(cause)) = (all_resolve, &resolution.store_error) {
        crate::note!("with-secrets: {}: {cause}", resolution.store);
    } else if !all_resolve && read_only(&resolution) {
        let missing: Vec<&str> = manifest
            .entries
            .iter()
            .zip(&statuses)
            .filter(|(_, status)| matches!(status, Status::Missing(_)))
            .map(|(entry, _)| entry.name.as_str())
            .collect();
        crate::note!(
            "with-secrets: {}",
            printable_lines(&crate::error::read_only_advice(
                resolution.store,
                config.set_fix(project.store),
                &missing
            ))
        );
    }
    Ok(if all_resolve {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
