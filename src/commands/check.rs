//! `with-secrets check`: one line per entry, found or missing, never a value.

use std::io::{self, Write};
use std::process::ExitCode;

use crate::config::Config;
use crate::error::Error;
use crate::manifest::Manifest;
use crate::resolve::{self, Source};
use crate::term::printable::{printable, printable_lines};

/// One aligned line per entry: name, service, username and where its value
/// comes from. Never a value.
pub(crate) fn entry_lines(
    manifest: &Manifest,
    resolution: &resolve::Resolution,
    fix: &str,
    indent: &str,
) -> Vec<String> {
    let generated = Generated::new(manifest, resolution);
    let read_only = read_only(resolution);
    let rows: Vec<[String; 4]> = manifest
        .entries
        .iter()
        .zip(&resolution.sources)
        .map(|(entry, source)| {
            let status = match source {
                Source::Store(found) if found.matches > 1 => format!(
                    "found ({} items match; using the most recently modified)",
                    found.matches
                ),
                Source::Store(found) => match found.cached {
                    Some(read) => format!(
                        "found (in the session cache, read {} ago)",
                        resolve::age(read)
                    ),
                    None => "found".to_owned(),
                },
                Source::Environment(_) => "from environment".to_owned(),
                Source::Missing if resolution.store_failed().is_some() => {
                    format!("not looked up: {} failed", resolution.store)
                }
                Source::Missing if entry.optional => "missing (optional)".to_owned(),
                Source::Missing if generated.will(entry) => {
                    "missing (generated on first run)".to_owned()
                }
                // No `set` line where `set` can only fail: the advice
                // below the table says what works instead.
                Source::Missing if resolution.store_error.is_some() => format!(
                    "missing: not in the environment, and {} is not here",
                    resolution.store
                ),
                Source::Missing if read_only => {
                    format!("missing: {} is read-only", resolution.store)
                }
                // Values the agent serves live on its machine.
                Source::Missing if resolution.store == "agent" => {
                    "missing: not stored where the agent runs".to_owned()
                }
                Source::Missing => format!("missing: run {fix} set {}", entry.name),
            };
            [
                entry.name.to_string(),
                printable(&entry.service).into_owned(),
                printable(&entry.username).into_owned(),
                status,
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

/// One line per entry, never a value. Exit 0 only when every required entry
/// resolves, from the keyring or the environment.
pub(crate) fn run(config: &Config) -> Result<ExitCode, Error> {
    let project = config.project()?;
    let manifest = &project.manifest;
    if manifest.entries.is_empty() {
        // Nothing to check is not a failure (a fresh `init` is this), but
        // silence would look like one.
        crate::note!("{}", printable_lines(&no_entries(&project, &config.fix)));
        return Ok(ExitCode::SUCCESS);
    }
    let resolution = resolve::lookup(config, &project, false);
    // A store that is there but failed says nothing of any entry: that is
    // an error to fix, not a list of values to store.
    if let Some(cause) = resolution.store_failed() {
        return Err(Error::Store {
            store: resolution.store,
            cause: cause.clone(),
        });
    }
    let mut stdout = io::stdout().lock();
    for line in entry_lines(manifest, &resolution, &config.fix, "") {
        let line = printable_lines(&line);
        writeln!(stdout, "{line}").map_err(|source| Error::Stdout { source })?;
    }
    let generated = Generated::new(manifest, &resolution);
    let all_resolve = manifest
        .entries
        .iter()
        .zip(&resolution.sources)
        .all(|(entry, source)| {
            entry.optional || generated.will(entry) || !matches!(source, Source::Missing)
        });
    // Why the keyring gave nothing matters only when something is missing.
    if let (false, Some(cause)) = (all_resolve, &resolution.store_error) {
        crate::note!("with-secrets: {}: {cause}", resolution.store);
    } else if !all_resolve && read_only(&resolution) {
        let missing: Vec<&str> = manifest
            .entries
            .iter()
            .zip(&resolution.sources)
            .filter(|(entry, source)| !entry.optional && matches!(source, Source::Missing))
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
