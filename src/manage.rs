//! The subcommands that manage entries: set, get, delete, check, init; and
//! where each of the others (doctor, env, completions, man) lives.

use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::Context;
use crate::cli::Command;
use crate::error::Error;
use crate::manifest::{Entry, EnvName, Manifest, printable};
use crate::resolve::{self, Source};
use crate::secret::Secret;
use crate::store::{self, Store, StoreKind, keyrings_alt};

pub fn run(command: Command, context: &Context) -> Result<ExitCode, Error> {
    match command {
        Command::Set { name } => set(&name, context),
        Command::Get { name } => get(&name, context),
        Command::Delete { name } => delete(&name, context),
        Command::Check => check(context),
        Command::Init { names } => init(&names, context),
        Command::Import { from } => import(from, context),
        Command::Doctor => crate::doctor::run(context),
        Command::Env { format } => crate::env_format::run(format, context),
        Command::Completions { shell } => crate::generate::completions(shell),
        Command::Man => crate::generate::man(),
    }
}

fn open(context: &Context, manifest: &Manifest) -> Result<Box<dyn Store>, Error> {
    let kind = context.store_kind(manifest);
    context.open_store(kind).map_err(|cause| Error::Store {
        store: kind.name(),
        cause,
    })
}

fn store_error(store: &dyn Store) -> impl FnOnce(store::StoreError) -> Error + '_ {
    |cause| Error::Store {
        store: store.name(),
        cause,
    }
}

/// The manifest entry for `name`, or an error that says how to add it.
fn entry<'m>(manifest: &'m Manifest, name: &str) -> Result<&'m Entry, Error> {
    manifest.entry(name).ok_or_else(|| Error::UnknownName {
        name: name.to_owned(),
        path: manifest.path.clone(),
    })
}

fn set(name: &str, context: &Context) -> Result<ExitCode, Error> {
    let manifest = context.load_manifest()?;
    let entry = entry(&manifest, name)?;
    let key = resolve::key(entry);
    let interactive = io::stdin().is_terminal();
    let value = if interactive {
        let prompt = format!(
            "{name} ({} / {}): ",
            printable(&entry.service),
            printable(&entry.username)
        );
        let typed = crate::prompt::password(&prompt).map_err(|source| Error::ReadValue {
            name: name.to_owned(),
            source,
        })?;
        let value = Secret::new(typed.as_bytes().to_vec());
        // An empty answer at a prompt is far more often a slip than a wish.
        if value.is_empty() {
            return Err(Error::EmptyValue {
                name: name.to_owned(),
            });
        }
        value
    } else {
        read_value(crate::secret::stdin()).map_err(|source| Error::ReadValue {
            name: name.to_owned(),
            source,
        })?
    };
    let mut store = open(context, &manifest)?;
    store
        .set(key, &store::label(name, key), &value)
        .map_err(store_error(store.as_ref()))?;
    if interactive {
        crate::note!("with-secrets: stored {name} in {}", store.name());
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a value from a pipe or file: everything, less one trailing newline
/// (`\n` or `\r\n`), as `echo` and here-strings add one.
fn read_value(mut input: impl Read) -> io::Result<Secret> {
    // Not read_to_end: each time it grows its buffer it frees the smaller
    // copy of the value without wiping it. Grow by hand, wiping as we go.
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(4096));
    loop {
        if bytes.len() == bytes.capacity() {
            let mut bigger = zeroize::Zeroizing::new(Vec::with_capacity(2 * bytes.capacity()));
            bigger.extend_from_slice(&bytes);
            bytes = bigger; // the old buffer is wiped as it drops
        }
        let filled = bytes.len();
        let capacity = bytes.capacity();
        bytes.resize(capacity, 0);
        match input.read(&mut bytes[filled..]) {
            Ok(0) => {
                bytes.truncate(filled);
                break;
            }
            Ok(n) => bytes.truncate(filled + n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => bytes.truncate(filled),
            Err(err) => return Err(err),
        }
    }
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(Secret::new(std::mem::take(&mut *bytes)))
}

fn get(name: &str, context: &Context) -> Result<ExitCode, Error> {
    let manifest = context.load_manifest()?;
    let entry = entry(&manifest, name)?;
    let mut store = open(context, &manifest)?;
    let found = store
        .get_all(&[resolve::key(entry)])
        .map_err(store_error(store.as_ref()))?
        .pop()
        .flatten()
        .ok_or_else(|| Error::NotStored {
            name: name.to_owned(),
            service: entry.service.clone(),
            username: entry.username.clone(),
            store: store.name(),
            fix: context.fix.clone(),
        })?;
    // Straight to the descriptor: std's stdout buffer would keep a copy.
    let newline: &[u8] = if io::stdout().is_terminal() {
        b"\n"
    } else {
        b""
    };
    let mut stdout = crate::secret::stdout();
    stdout
        .write_all(found.secret.expose())
        .and_then(|()| stdout.write_all(newline))
        .and_then(|()| stdout.flush())
        .map_err(|source| Error::Stdout { source })?;
    Ok(ExitCode::SUCCESS)
}

fn delete(name: &str, context: &Context) -> Result<ExitCode, Error> {
    let manifest = context.load_manifest()?;
    let entry = entry(&manifest, name)?;
    let mut store = open(context, &manifest)?;
    let removed = store
        .delete(resolve::key(entry))
        .map_err(store_error(store.as_ref()))?;
    if removed == 0 {
        crate::warning!(
            "with-secrets: {name} was not stored in {} (service {:?}, username {:?}); nothing to delete",
            store.name(),
            entry.service,
            entry.username
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One aligned line per entry: name, service, username and where its value
/// comes from. Never a value.
pub(crate) fn entry_lines(
    manifest: &Manifest,
    resolution: &resolve::Resolution,
    fix: &str,
    indent: &str,
) -> Vec<String> {
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
                Source::Store(_) => "found".to_owned(),
                Source::Environment => "from environment".to_owned(),
                Source::Missing if resolution.store_failed().is_some() => {
                    format!("not looked up: {} failed", resolution.store)
                }
                Source::Missing if entry.optional => "missing (optional)".to_owned(),
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

/// One line per entry, never a value. Exit 0 only when every required entry
/// resolves, from the keyring or the environment.
fn check(context: &Context) -> Result<ExitCode, Error> {
    let manifest = crate::variables::load_manifest(context)?;
    let resolution = crate::variables::lookup(context, &manifest);
    // A store that is there but failed says nothing of any entry: that is
    // an error to fix, not a list of values to store.
    if let Some(cause) = resolution.store_failed() {
        return Err(Error::Store {
            store: resolution.store,
            cause: cause.clone(),
        });
    }
    let mut stdout = io::stdout().lock();
    for line in entry_lines(&manifest, &resolution, &context.fix, "") {
        let line = crate::manifest::printable_lines(&line);
        writeln!(stdout, "{line}").map_err(|source| Error::Stdout { source })?;
    }
    let all_resolve = manifest
        .entries
        .iter()
        .zip(&resolution.sources)
        .all(|(entry, source)| entry.optional || !matches!(source, Source::Missing));
    // Why the keyring gave nothing matters only when something is missing.
    if let (false, Some(cause)) = (all_resolve, &resolution.store_error) {
        crate::note!("with-secrets: {}: {cause}", resolution.store);
    }
    Ok(if all_resolve {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Copies every entry found in `from` into the chosen store; reports what it
/// copied and what it did not find, by name, never by value.
fn import(from: StoreKind, context: &Context) -> Result<ExitCode, Error> {
    let manifest = context.load_manifest()?;
    let into = context.store_kind(&manifest);
    if from == into {
        return Err(Error::Usage {
            message: format!(
                "--from and --store both name {}: import copies from one store into another",
                from.name()
            ),
        });
    }
    let keys: Vec<_> = manifest.entries.iter().map(resolve::key).collect();
    let source = match from {
        StoreKind::KeyringsAlt => keyrings_alt::KeyringsAlt::open()
            .map(|store| Box::new(store.without_warning()) as Box<dyn Store>),
        other => context.open_store(other),
    };
    let mut source = source.map_err(|cause| Error::Store {
        store: from.name(),
        cause,
    })?;
    let found = source
        .get_all(&keys)
        .map_err(store_error(source.as_ref()))?;
    let mut target = open(context, &manifest)?;
    let width = manifest
        .entries
        .iter()
        .map(|e| e.name.as_str().len())
        .max()
        .unwrap_or(0);
    let mut copied = 0;
    let mut stdout = io::stdout().lock();
    for (entry, found) in manifest.entries.iter().zip(found) {
        let key = resolve::key(entry);
        let outcome = match found {
            Some(found) => {
                target
                    .set(key, &store::label(entry.name.as_str(), key), &found.secret)
                    .map_err(store_error(target.as_ref()))?;
                copied += 1;
                "copied   "
            }
            None => "not found",
        };
        writeln!(
            stdout,
            "{outcome}  {:width$}  {} / {}",
            entry.name,
            printable(&entry.service),
            printable(&entry.username)
        )
        .map_err(|source| Error::Stdout { source })?;
    }
    drop(stdout);
    crate::note!(
        "with-secrets: copied {copied} of {} entries from {} into {}",
        manifest.entries.len(),
        from.name(),
        target.name()
    );
    if from == StoreKind::KeyringsAlt && copied > 0 {
        let files = keyrings_alt::KeyringsAlt::open()
            .map(|store| store.files())
            .unwrap_or_default();
        for (path, count) in files {
            // Deleting is the user's call: the file may hold entries of other
            // projects, and it is their only copy until those are moved too.
            crate::note!(
                "  {} holds {count} entr{}; once `with-secrets check` shows yours found, and \
                 any others in it are moved too, delete it: rm {}",
                path.display(),
                if count == 1 { "y" } else { "ies" },
                shell_words::quote(&path.to_string_lossy())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn init(names: &[String], context: &Context) -> Result<ExitCode, Error> {
    let names = names
        .iter()
        .map(|name| {
            EnvName::new(name).ok_or_else(|| Error::Usage {
                message: format!(
                    "`{name}` is not a valid environment variable name: use ASCII letters, \
                     digits and `_`, and do not start with a digit"
                ),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let path = context.manifest_to_create();
    let folder = path
        .parent()
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }
        })
        .and_then(|dir| dir.canonicalize().ok())
        .and_then(|dir| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let text = starter(&service_name(&folder), &names);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => Error::ManifestExists { path: path.clone() },
            _ => Error::WriteManifest {
                path: path.clone(),
                source,
            },
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| Error::WriteManifest {
            path: path.clone(),
            source,
        })?;
    let next = match names.first() {
        Some(name) => format!("store a value with: {} set {name}", context.fix),
        None => "add an entry under [secrets], then: with-secrets set NAME".to_owned(),
    };
    crate::note!("with-secrets: wrote {}\n  {next}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// A keyring service name from a folder name: ASCII in lower case, `-` for
/// ASCII punctuation, white space and control characters. Other characters
/// stay as they are: a combining mark is part of the letter before it
/// (Devanagari, Thai, accents written apart), and cutting it out would spell
/// another word.
fn service_name(folder: &str) -> String {
    let name: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c.to_ascii_lowercase()
            } else if c.is_ascii() || c.is_whitespace() || c.is_control() {
                '-'
            } else {
                c
            }
        })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "my-project".to_owned()
    } else {
        name.to_owned()
    }
}

/// `text` as a TOML basic string, quotes included. Not Rust's `{:?}`, whose
/// `\u{...}` escapes TOML does not read: TOML takes any character as it is
/// but `"`, `\` and control characters, which it escapes as `\uXXXX`.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The starter manifest that `init` writes.
fn starter(service: &str, names: &[EnvName]) -> String {
    let service = toml_string(service);
    let mut text = format!(
        r#"# secrets.toml: the environment variables that `with-secrets -- COMMAND` sets,
# and where in your OS keyring each value lives. Check this file in: it holds
# no values, only where to find them.
#
#   with-secrets set NAME     store NAME's value (prompts on a terminal)
#   with-secrets check        see which entries resolve
#   with-secrets -- COMMAND   run COMMAND with every variable set
#
# In CI, a variable the keyring lacks is taken from the environment.

[defaults]
# The keyring service of every entry below that does not name its own.
service = {service}

[secrets]
# NAME = {{ service = "...", username = "...", optional = false, description = "..." }}
"#
    );
    if names.is_empty() {
        text.push_str("# API_TOKEN = { username = \"api-token\" }\n");
    }
    for name in names {
        let username = name.as_str().to_ascii_lowercase().replace('_', "-");
        text.push_str(&format!(
            "{name} = {{ username = {} }}\n",
            toml_string(&username)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_stripped_from_piped_values() {
        for (input, value) in [
            ("abc\n", "abc"),
            ("abc\r\n", "abc"),
            ("abc\n\n", "abc\n"),
            ("abc", "abc"),
            ("", ""),
            ("\n", ""),
        ] {
            let secret = read_value(input.as_bytes()).unwrap();
            assert_eq!(secret.expose(), value.as_bytes(), "{input:?}");
        }
    }

    #[test]
    fn a_long_piped_value_is_read_whole() {
        let value: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let mut input = value.clone();
        input.push(b'\n');
        assert_eq!(read_value(input.as_slice()).unwrap().expose(), value);
    }

    #[test]
    fn the_starter_manifest_parses_with_its_entries() {
        let names = [
            EnvName::new("API_TOKEN").unwrap(),
            EnvName::new("DB_URL").unwrap(),
        ];
        let text = starter("acme", &names);
        let manifest = Manifest::parse(Path::new("secrets.toml"), &text).unwrap();
        let entry = manifest.entry("DB_URL").unwrap();
        assert_eq!(
            (entry.service.as_str(), entry.username.as_str()),
            ("acme", "db-url")
        );
        let empty = Manifest::parse(Path::new("secrets.toml"), &starter("acme", &[])).unwrap();
        assert!(empty.entries.is_empty());
    }

    #[test]
    fn the_starter_manifest_is_real_toml_for_any_folder_name() {
        // Devanagari with combining marks (virama, vowel signs), which `{:?}`
        // escaped as `\u{94d}`, a form TOML does not read.
        for folder in [
            "हिन्दी परियोजना",
            "café",
            "naïve\u{301}",
            "a\"b\\c",
            "tab\there",
        ] {
            let service = service_name(folder);
            let text = starter(&service, &[EnvName::new("API_TOKEN").unwrap()]);
            let manifest = Manifest::parse(Path::new("secrets.toml"), &text)
                .unwrap_or_else(|err| panic!("{folder:?}: {err}\n{text}"));
            assert_eq!(manifest.entries[0].service, service, "{folder:?}");
        }
        assert_eq!(service_name("हिन्दी परियोजना"), "हिन्दी-परियोजना");
        for text in ["\"", "\\", "\u{1b}[31m", "\u{7f}", "\u{9c}", "é\u{301}"] {
            let toml = format!("[defaults]\nservice = {}\n", toml_string(text));
            let manifest = Manifest::parse(
                Path::new("m"),
                &format!("{toml}[secrets]\nA = {{ username = \"u\" }}\n"),
            )
            .unwrap_or_else(|err| panic!("{text:?}: {err}"));
            assert_eq!(manifest.entries[0].service, text);
        }
    }

    #[test]
    fn service_names_come_from_folder_names() {
        assert_eq!(service_name("My Project"), "my-project");
        assert_eq!(service_name("api.v2_x"), "api.v2_x");
        assert_eq!(service_name("/"), "my-project");
        assert_eq!(service_name(""), "my-project");
    }
}
