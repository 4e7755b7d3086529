//! `with-secrets env`: the resolved variables as shell `export` lines, a
//! `.env` file or a JSON object.
//!
//! Each format must give back every value exactly, or refuse it by name:
//! a file that some reader reads differently from another is worse than an
//! error, since the difference shows up later as a wrong password.

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write as _};
use std::process::ExitCode;

use zeroize::Zeroizing;

use crate::Context;
use crate::cli::EnvFormat;
use crate::error::Error;
use crate::secret::Secret;
use crate::variables;

/// Prints every variable the run form would give a command, in `format`.
///
/// The ones that come from the environment (the CI fallback) are printed
/// too, although a command would have them anyway: the output then stands
/// on its own, e.g. as a .env file for a container, and it is the same
/// whether a value is in the keyring or set by CI.
pub fn run(format: EnvFormat, context: &Context) -> Result<ExitCode, Error> {
    let manifest = variables::load_manifest(context)?;
    let resolution = variables::lookup(context, &manifest);
    let resolved = variables::resolve(context, &manifest, resolution)?;
    let text = render(format, &variables::all(&resolved))?;
    drop(resolved);
    let mut stdout = io::stdout().lock();
    if stdout.is_terminal() {
        crate::warning!(
            "with-secrets: warning: printing secret values to the terminal, where they stay in \
             its scrollback; pipe them instead, e.g. eval \"$(with-secrets env)\""
        );
    }
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| Error::Stdout { source })?;
    Ok(ExitCode::SUCCESS)
}

impl EnvFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Shell => "shell",
            Self::Dotenv => "dotenv",
            Self::Json => "json",
        }
    }
}

/// The whole output, in a buffer that is wiped when dropped.
pub fn render(
    format: EnvFormat,
    variables: &[(String, Secret)],
) -> Result<Zeroizing<String>, Error> {
    let mut out = Zeroizing::new(String::new());
    if format == EnvFormat::Json {
        out.push('{');
    }
    for (index, (name, value)) in variables.iter().enumerate() {
        // Every format here is text; a value that is not UTF-8 would need an
        // encoding that each reader would have to be told about.
        let text = std::str::from_utf8(value.expose())
            .map_err(|_| refuse(name, format, "is not valid UTF-8 text"))?;
        match format {
            EnvFormat::Shell => {
                // Single quotes keep everything literal in sh, bash and zsh,
                // newlines included; shell_words writes a ' as '\''.
                let quoted = Zeroizing::new(shell_words::quote(text).into_owned());
                let _ = writeln!(out, "export {name}={}", quoted.as_str());
            }
            EnvFormat::Dotenv => {
                if let Some(reason) = dotenv_problem(text) {
                    return Err(refuse(name, format, reason));
                }
                let _ = writeln!(out, "{name}={text}");
            }
            EnvFormat::Json => {
                let value = Zeroizing::new(serde_json::Value::String(text.to_owned()).to_string());
                let comma = if index == 0 { "" } else { "," };
                let _ = write!(out, "{comma}\n  {}: {}", json_string(name), value.as_str());
            }
        }
    }
    if format == EnvFormat::Json {
        out.push_str(if variables.is_empty() { "}\n" } else { "\n}\n" });
    }
    Ok(out)
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

fn refuse(name: &str, format: EnvFormat, reason: &'static str) -> Error {
    Error::CannotPrint {
        name: name.to_owned(),
        format: format.name(),
        reason,
    }
}

/// Why `value` cannot be one `NAME=value` line that python-dotenv and
/// docker's `--env-file` both read as exactly `value`, if it cannot.
///
/// Docker takes everything after the first `=` literally, up to the end of
/// the line, and never unquotes. python-dotenv reads an unquoted value up to
/// `\r` or `\n`, skips white space after `=`, strips it at the end, drops a
/// ` #` comment, unquotes a value that starts with a quote, and expands
/// `${VAR}`. What both read alike is what none of that touches.
fn dotenv_problem(value: &str) -> Option<&'static str> {
    if value.contains(['\n', '\r']) {
        return Some("contains a line break, which docker's --env-file cannot hold");
    }
    if value.starts_with(python_space) || value.ends_with(python_space) {
        return Some(
            "starts or ends with white space, which python-dotenv strips and docker keeps",
        );
    }
    if value.starts_with(['\'', '"']) {
        return Some("starts with a quote, which python-dotenv removes and docker keeps");
    }
    let mut previous_space = false;
    for c in value.chars() {
        if c == '#' && previous_space {
            return Some(
                "has white space before a `#`, which python-dotenv reads as a comment and docker does not",
            );
        }
        previous_space = python_space(c);
    }
    if value.contains("${") {
        return Some("contains `${`, which python-dotenv expands and docker does not");
    }
    None
}

/// White space as Python's `str.isspace` and `re`'s `\s` see it: Unicode's,
/// plus the ASCII separators 0x1C to 0x1F.
fn python_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, Secret)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), Secret::from(*value)))
            .collect()
    }

    fn text(format: EnvFormat, pairs: &[(&str, &str)]) -> String {
        render(format, &vars(pairs)).unwrap().to_string()
    }

    #[test]
    fn shell_lines_single_quote_whatever_needs_it() {
        assert_eq!(
            text(
                EnvFormat::Shell,
                &[("A", "plain"), ("B", "it's $HOME\n`x`"), ("C", "")]
            ),
            "export A=plain\nexport B='it'\\''s $HOME\n`x`'\nexport C=''\n"
        );
    }

    #[test]
    fn dotenv_lines_are_literal() {
        assert_eq!(
            text(EnvFormat::Dotenv, &[("A", "a b=c#d $HOME \\n"), ("E", "")]),
            "A=a b=c#d $HOME \\n\nE=\n"
        );
    }

    #[test]
    fn dotenv_refuses_what_its_readers_would_read_differently() {
        for value in [
            "two\nlines",
            "cr\r",
            " lead",
            "trail\t",
            "'quoted'",
            "\"quoted\"",
            "a #comment",
            "${HOME}",
            "nbsp\u{a0}",
        ] {
            let err = render(EnvFormat::Dotenv, &vars(&[("TOKEN", value)])).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with("cannot print TOKEN as dotenv: its value "),
                "{message}"
            );
            assert!(!message.contains(value), "{message}");
        }
    }

    #[test]
    fn json_is_one_object_in_manifest_order() {
        assert_eq!(
            text(EnvFormat::Json, &[("B", "q\"\n\\"), ("A", "ü")]),
            "{\n  \"B\": \"q\\\"\\n\\\\\",\n  \"A\": \"ü\"\n}\n"
        );
        assert_eq!(text(EnvFormat::Json, &[]), "{}\n");
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_by_name_in_every_format() {
        let variables = vec![("BIN".to_owned(), Secret::new(vec![0xff, 0xfe]))];
        for format in [EnvFormat::Shell, EnvFormat::Dotenv, EnvFormat::Json] {
            let message = render(format, &variables).unwrap_err().to_string();
            assert!(message.contains("cannot print BIN as"), "{message}");
            assert!(message.contains("not valid UTF-8"), "{message}");
        }
    }
}
