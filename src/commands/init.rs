//! `with-secrets init [NAMES]`: write a commented starter manifest.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::error::Error;
use crate::manifest::EnvName;
use crate::manifest::schema;
use crate::term::printable::printable_path;

pub(crate) fn run(names: &[String], config: &Config) -> Result<ExitCode, Error> {
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
    let path = config.manifest_to_create();
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
        Some(name) => format!("store a value with: {} set {name}", config.fix),
        None => "add an entry under [secrets], then: with-secrets set NAME".to_owned(),
    };
    crate::note!("with-secrets: wrote {}\n  {next}", path.display());
    write_schema(&path.with_file_name(schema::FILE_NAME));
    Ok(ExitCode::SUCCESS)
}

/// Writes the schema the manifest's `#:schema` line names, beside it, for
/// editors. Never over a file that is there: one that differs from this
/// version's is named with the command that refreshes it. The manifest is
/// written by then, and works without the schema, so a failure here is a
/// warning, not an error.
fn write_schema(path: &Path) {
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut file| {
            file.write_all(schema::SCHEMA.as_bytes())
                .and_then(|()| file.sync_all())
        });
    match written {
        Ok(()) => crate::note!(
            "with-secrets: wrote {} (the manifest's schema, for editors)",
            path.display()
        ),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            if std::fs::read(path).ok().as_deref() != Some(schema::SCHEMA.as_bytes()) {
                crate::warning!(
                    "with-secrets: warning: {} is there and is not this version's schema; \
                     refresh it with: with-secrets schema > {}",
                    path.display(),
                    shell_words::quote(&printable_path(path))
                );
            }
        }
        Err(err) => crate::warning!(
            "with-secrets: warning: could not write the manifest's schema, for editors, to \
             {}: {err}",
            path.display()
        ),
    }
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
    let directive = schema::DIRECTIVE;
    let mut text = format!(
        r#"{directive}
# secrets.toml: the environment variables that `with-secrets -- COMMAND` sets,
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
    text.push_str(PROFILES);
    text
}

/// How to say more in a starter manifest, commented out.
const PROFILES: &str = r#"
# A value nobody needs to know (a local database password, a signing key)
# can be made on first use and stored, then read by every later run:
#   SESSION_KEY = { username = "session-key", generate = true }
#   DB_PASSWORD = { username = "db-password", generate = { length = 24, charset = "hex" } }

# Profiles: other environments in this same file. `--profile staging` (or
# WITH_SECRETS_PROFILE=staging) starts from [secrets] above and replaces or
# adds entries by name; a profile may also name its own store.
#
#   [profiles.staging]
#   store = "file"
#
#   [profiles.staging.secrets]
#   API_TOKEN = { username = "api-token-staging" }
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    #[test]
    fn the_starter_manifest_parses_with_its_entries() {
        let names = [
            EnvName::new("API_TOKEN").unwrap(),
            EnvName::new("DB_URL").unwrap(),
        ];
        let text = starter("acme", &names);
        // The directive first, at the top where Taplo looks for it.
        assert_eq!(text.lines().next(), Some(schema::DIRECTIVE));
        let manifest = Manifest::parse(Path::new("secrets.toml"), &text).unwrap();
        let entry = manifest.entry("DB_URL").unwrap();
        assert_eq!(
            (entry.service.as_str(), entry.username.as_str()),
            ("acme", "db-url")
        );
        let empty = Manifest::parse(Path::new("secrets.toml"), &starter("acme", &[])).unwrap();
        assert!(empty.entries.is_empty());
        assert!(
            empty.profiles.is_empty(),
            "profiles are explained, not added"
        );
    }

    #[test]
    fn the_commented_examples_parse_when_uncommented() {
        let text = starter("acme", &[EnvName::new("API_TOKEN").unwrap()]);
        // Uncommented in place: the generate lines go under [secrets].
        let base = text.strip_suffix(PROFILES).expect("the examples come last");
        let examples: String = PROFILES
            .lines()
            .map(|line| match line.strip_prefix("#   ") {
                Some(example) => example,
                None => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let uncommented = format!("{base}{examples}");
        let manifest = Manifest::parse(Path::new("secrets.toml"), &uncommented).unwrap();
        let names: Vec<&str> = manifest.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["API_TOKEN", "SESSION_KEY", "DB_PASSWORD"]);
        let (staging, store) = manifest.with_profile("staging", "--profile").unwrap();
        assert_eq!(
            staging.entry("API_TOKEN").unwrap().username,
            "api-token-staging"
        );
        assert_eq!(store, Some(crate::store::StoreKind::File));
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
