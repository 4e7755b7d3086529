//! `with-secrets env`: the resolved variables as shell `export` lines, a
//! `.env` file or a JSON object.
//!
//! Each format must give back every value exactly, or refuse it by name:
//! a file that some reader reads differently from another is worse than an
//! error, since the difference shows up later as a wrong password.

use std::io::{self, IsTerminal, Write as _};
use std::process::ExitCode;

use zeroize::Zeroizing;

use crate::cli::EnvFormat;
use crate::config::Config;
use crate::error::Error;
use crate::resolve;
use crate::secret::Secret;

/// Prints every variable the run form would give a command, in `format`.
///
/// The ones that come from the environment (the CI fallback) are printed
/// too, although a command would have them anyway: the output then stands
/// on its own, e.g. as a .env file for a container, and it is the same
/// whether a value is in the keyring or set by CI.
pub(crate) fn run(format: EnvFormat, config: &Config) -> Result<ExitCode, Error> {
    // Before any lookup: without the file there is nothing to do, and a
    // value generated on the way would be stored for nothing.
    let github_env = match format {
        EnvFormat::Github => Some(
            std::env::var_os("GITHUB_ENV")
                .filter(|path| !path.is_empty())
                .ok_or_else(|| Error::NoGithubEnv {
                    fix: config.fix.clone(),
                })?,
        ),
        _ => None,
    };
    let project = config.project()?;
    let resolution = resolve::lookup(config, &project, true);
    let resolved =
        resolve::variables(&project.manifest, resolution, config.set_fix(project.store))?;
    if let Some(path) = github_env {
        let variables = resolve::all(&resolved);
        drop(resolved);
        return github(&variables, std::path::Path::new(&path));
    }
    let text = render(format, &resolve::all(&resolved))?;
    drop(resolved);
    if io::stdout().is_terminal() {
        crate::warning!(
            "with-secrets: warning: printing secret values to the terminal, where they stay in \
             its scrollback; pipe them instead, e.g. eval \"$(with-secrets env)\""
        );
    }
    // Straight to the descriptor: std's stdout would keep a copy of the
    // last line in its buffer, never wiped.
    crate::secret::stdout()
        .write_all(&text)
        .map_err(|source| Error::Stdout { source })?;
    Ok(ExitCode::SUCCESS)
}

impl EnvFormat {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Shell => "shell",
            Self::Dotenv => "dotenv",
            Self::Docker => "docker",
            Self::Json => "json",
            Self::Github => "github",
        }
    }
}

/// The whole output, in a buffer that is wiped when dropped.
///
/// The buffer is allocated once, at its exact size, which a first pass
/// counts: a buffer that grew would leave each smaller copy of the values
/// behind in freed memory, unwiped. For the same reason the quoting and
/// escaping are done here, byte by byte into that buffer, rather than by
/// helpers that build strings of their own.
pub(crate) fn render(
    format: EnvFormat,
    variables: &[(String, Secret)],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut texts = Vec::with_capacity(variables.len());
    for (name, value) in variables {
        // Every format here is text; a value that is not UTF-8 would need an
        // encoding that each reader would have to be told about.
        let text = std::str::from_utf8(value.expose())
            .map_err(|_| refuse(name, format, "is not valid UTF-8 text"))?;
        let quote = match format {
            EnvFormat::Dotenv => {
                dotenv_quote(text).map_err(|reason| refuse(name, format, reason))?
            }
            EnvFormat::Docker => match docker_problem(text) {
                Some(reason) => return Err(refuse(name, format, reason)),
                None => Quote::None,
            },
            EnvFormat::Shell | EnvFormat::Json | EnvFormat::Github => Quote::None,
        };
        texts.push((name.as_str(), text, quote));
    }
    let mut size = Sink::Count(0);
    write(format, &texts, &mut size);
    let Sink::Count(size) = size else {
        unreachable!("a count stays a count")
    };
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    write(format, &texts, &mut Sink::Fill(&mut out));
    debug_assert_eq!(out.len(), out.capacity());
    Ok(out)
}

/// Where `write` puts the output: nowhere, counting its bytes, or into a
/// buffer that has room for all of them.
enum Sink<'a> {
    Count(usize),
    Fill(&'a mut Vec<u8>),
}

impl Sink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        match self {
            Self::Count(size) => *size += bytes.len(),
            Self::Fill(out) => {
                assert!(
                    out.capacity() - out.len() >= bytes.len(),
                    "the output outgrew its count"
                );
                out.extend_from_slice(bytes);
            }
        }
    }
}

fn write(format: EnvFormat, variables: &[(&str, &str, Quote)], out: &mut Sink) {
    if format == EnvFormat::Json {
        out.put(b"{");
    }
    for (index, &(name, text, quote)) in variables.iter().enumerate() {
        match format {
            EnvFormat::Shell => {
                out.put(b"export ");
                out.put(name.as_bytes());
                out.put(b"=");
                shell_quote(text, out);
                out.put(b"\n");
            }
            EnvFormat::Dotenv | EnvFormat::Docker => {
                let quote: &[u8] = match quote {
                    Quote::None => b"",
                    Quote::Single => b"'",
                    Quote::Double => b"\"",
                };
                out.put(name.as_bytes());
                out.put(b"=");
                out.put(quote);
                out.put(text.as_bytes());
                out.put(quote);
                out.put(b"\n");
            }
            // Written by `github`, one variable at a time.
            EnvFormat::Github => unreachable!("github is not rendered as one text"),
            EnvFormat::Json => {
                out.put(if index == 0 { b"\n  " } else { b",\n  " });
                json_string(name, out);
                out.put(b": ");
                json_string(text, out);
            }
        }
    }
    if format == EnvFormat::Json {
        out.put(if variables.is_empty() {
            b"}\n"
        } else {
            b"\n}\n"
        });
    }
}

/// `text` as one word that sh, bash and zsh read back literally: as it is
/// when every byte is one that no shell treats specially, else in single
/// quotes, with each `'` as `'\''`. The bare set is short on purpose: `{`,
/// `,` and `~`, for instance, mean something to bash in an `export` word.
fn shell_quote(text: &str, out: &mut Sink) {
    let bare = |byte: &u8| byte.is_ascii_alphanumeric() || b"_@%+:,./-".contains(byte);
    if !text.is_empty() && text.bytes().all(|byte| bare(&byte)) {
        out.put(text.as_bytes());
        return;
    }
    out.put(b"'");
    for (index, piece) in text.split('\'').enumerate() {
        if index > 0 {
            out.put(b"'\\''");
        }
        out.put(piece.as_bytes());
    }
    out.put(b"'");
}

/// `text` as a JSON string, escaped as serde_json escapes it: `"`, `\\` and
/// the control characters, nothing else.
fn json_string(text: &str, out: &mut Sink) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.put(b"\"");
    let bytes = text.as_bytes();
    let mut plain = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.put(&bytes[plain..at]);
        if short.is_empty() {
            out.put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
        } else {
            out.put(short);
        }
        plain = at + 1;
    }
    out.put(&bytes[plain..]);
    out.put(b"\"");
}

/// `env --format github`: appends each variable to the file `$GITHUB_ENV`
/// names, and prints on stdout an `::add-mask::` command for each line of
/// its value, before that value is in the file.
///
/// The runner (actions/runner, `SetEnvFileCommand`) reads that file after
/// the step: a line `NAME<<DELIMITER` starts a value, which is the text up
/// to the line break before the next line that is exactly `DELIMITER`.
/// Every value is written in that form, with a fresh random delimiter that
/// occurs in neither the name nor the value, as `@actions/core`'s
/// `exportVariable` does. The text between is the value as it is, line
/// breaks and all, except on a Windows runner, which takes a `\r` before
/// the final `\n` for part of the line break: a value ending with `\r` is
/// refused. The masks cannot go in that file (a line there is a variable),
/// and the runner masks a value only line by line, so each line of a value
/// (split at `\n` and `\r`) gets its own command, escaped as the runner
/// unescapes command data (`%25`, `%0D`, `%0A`). Lines of white space only
/// get none: the runner refuses to mask them.
///
/// Everything is checked before anything is written, so a refusal leaves
/// the file as it was.
fn github(variables: &[(String, Secret)], path: &std::path::Path) -> Result<ExitCode, Error> {
    let format = EnvFormat::Github;
    let mut texts = Vec::with_capacity(variables.len());
    for (name, value) in variables {
        if let Some(reason) = github_name_problem(name) {
            return Err(refuse(name, format, reason));
        }
        let text = std::str::from_utf8(value.expose())
            .map_err(|_| refuse(name, format, "is not valid UTF-8 text"))?;
        if text.ends_with('\r') {
            return Err(refuse(
                name,
                format,
                "ends with a carriage return, which a Windows runner reads as part of the line break",
            ));
        }
        texts.push((name.as_str(), text));
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|source| Error::GithubEnv {
            path: path.to_owned(),
            source,
        })?;
    for (name, text) in texts {
        let delimiter = delimiter(name, text, random_delimiter)?;
        let masks = exact(|out| github_masks(text, out));
        let block = github_block(name, text, &delimiter);
        crate::secret::stdout()
            .write_all(&masks)
            .map_err(|source| Error::Stdout { source })?;
        file.write_all(&block).map_err(|source| Error::GithubEnv {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `NAME<<DELIMITER`, the value's text, and the delimiter, each line
/// ending in `\n`.
fn github_block(name: &str, text: &str, delimiter: &str) -> Zeroizing<Vec<u8>> {
    exact(|out| {
        for piece in [name, "<<", delimiter, "\n", text, "\n", delimiter, "\n"] {
            out.put(piece.as_bytes());
        }
    })
}

/// What `write` puts, in a buffer of exactly its size, wiped when dropped.
fn exact(write: impl Fn(&mut Sink)) -> Zeroizing<Vec<u8>> {
    let mut size = Sink::Count(0);
    write(&mut size);
    let Sink::Count(size) = size else {
        unreachable!("a count stays a count")
    };
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    write(&mut Sink::Fill(&mut out));
    out
}

/// One `::add-mask::LINE` command per line of `text` that is not white
/// space only, with `%`, `\r` and `\n` escaped as `@actions/core`'s
/// `setSecret` escapes them (there are no `\r` or `\n` left in a line).
fn github_masks(text: &str, out: &mut Sink) {
    for line in text.split(['\n', '\r']) {
        if line.chars().all(char::is_whitespace) {
            continue;
        }
        out.put(b"::add-mask::");
        for (index, piece) in line.split('%').enumerate() {
            if index > 0 {
                out.put(b"%25");
            }
            out.put(piece.as_bytes());
        }
        out.put(b"\n");
    }
}

/// Why the runner would not read `name` back as the name of a
/// `NAME<<DELIMITER` line, if it would not: it takes a line with an `=`
/// before any `<<` for `NAME=VALUE`, splits at the first `<<`, and rejects
/// an empty name. (A manifest's names are letters, digits and `_`, so this
/// only guards the format's own rules.)
fn github_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("has an empty name, which the runner rejects")
    } else if name.contains(['=', '\n', '\r']) || name.contains("<<") {
        Some("has a name with `=`, `<<` or a line break, which the runner would split elsewhere")
    } else {
        None
    }
}

/// A delimiter from `draw` that occurs in neither `name` nor `value`,
/// drawing again while one does.
fn delimiter(
    name: &str,
    value: &str,
    mut draw: impl FnMut() -> Result<String, Error>,
) -> Result<String, Error> {
    loop {
        let delimiter = draw()?;
        if !name.contains(&delimiter) && !value.contains(&delimiter) {
            return Ok(delimiter);
        }
    }
}

/// `ghadelimiter_` and 32 random hex digits, as `@actions/core` makes them.
fn random_delimiter() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|err| Error::GithubDelimiter(err.to_string()))?;
    let mut delimiter = String::from("ghadelimiter_");
    for byte in bytes {
        let _ = std::fmt::Write::write_fmt(&mut delimiter, format_args!("{byte:02x}"));
    }
    Ok(delimiter)
}

fn refuse(name: &str, format: EnvFormat, reason: &'static str) -> Error {
    Error::CannotPrint {
        name: name.to_owned(),
        format: format.name(),
        reason,
    }
}

/// How a `.env` value is written: as it is, or between quotes that add
/// nothing and take nothing away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

/// How to write `value` so that python-dotenv (1.2), dotenvy (0.15) and
/// Node's dotenv (18.0, its regular parser and its `fast` one) each read
/// back exactly `value`, or why no way does. Each reader's rules, from its
/// source:
///
/// - Unquoted, python-dotenv strips white space and a ` #` comment;
///   dotenvy ends the value at white space, takes `#` after it as a
///   comment, and reads `\`, `$`, `'` and `"` anywhere in it as an escape,
///   a variable or a quote; Node's dotenv ends it at `#` and trims it, and
///   reads a leading backtick as a quote. So only characters none of them
///   treats specially go unquoted: no white space, control character, BOM,
///   `#`, `'`, `"`, `` ` ``, `\` or `$`.
/// - In single quotes, dotenvy and Node's dotenv take everything literally
///   up to the next `'`; python-dotenv turns `\\` and `\'` into `\` and `'`.
///   So no `'`, no `\\`, and no `\` at the end (python-dotenv and
///   dotenvy would take it with the closing quote as an escaped quote).
///   Line breaks are fine: all three read a quoted value over lines.
/// - In double quotes, python-dotenv decodes `\n`, `\t`, `\\` and their
///   kin; Node's dotenv only `\n` and `\r`; dotenvy only `\\`, `\'`, `\"`,
///   `\$`, `\ ` and `\n` (anything else is an error), and it expands
///   `$VAR`. A backslash means something different to each, so double
///   quotes take no `"`, `\` or `$`; they are for values with a `'`.
/// - python-dotenv expands `${VAR}` however the value is quoted, and a
///   carriage return is a line break to Node's dotenv (and to Python
///   reading a file), which dotenvy cannot escape: both are refused.
fn dotenv_quote(value: &str) -> Result<Quote, &'static str> {
    if value.contains('\r') {
        return Err(
            "contains a carriage return, which Node's dotenv reads as a line break and \
             dotenvy cannot read back",
        );
    }
    if value.contains("${") {
        return Err("contains `${`, which python-dotenv expands however the value is quoted");
    }
    let bare = |c: char| {
        !(c.is_whitespace() || c.is_control() || c == '\u{feff}' || "#'\"`\\$".contains(c))
    };
    if value.chars().all(bare) {
        return Ok(Quote::None);
    }
    if !value.contains('\'') && !value.contains("\\\\") && !value.ends_with('\\') {
        return Ok(Quote::Single);
    }
    if !value.contains(['"', '\\', '$']) {
        return Ok(Quote::Double);
    }
    Err(if value.contains('\'') {
        "contains a `'`, so it cannot be single-quoted, and a `\"`, `\\` or `$`, which \
         python-dotenv, dotenvy and Node's dotenv read differently in double quotes"
    } else {
        "contains `\\\\` or ends with `\\`, which python-dotenv unescapes in single quotes, \
         and a backslash means something different to each reader in double quotes"
    })
}

/// Why `value` cannot be one `NAME=value` line that python-dotenv and
/// docker's `--env-file` both read as exactly `value`, if it cannot.
///
/// Docker takes everything after the first `=` literally, up to the end of
/// the line, and never unquotes. python-dotenv reads an unquoted value up to
/// `\r` or `\n`, skips white space after `=`, strips it at the end, drops a
/// ` #` comment, unquotes a value that starts with a quote, and expands
/// `${VAR}`. What both read alike is what none of that touches.
fn docker_problem(value: &str) -> Option<&'static str> {
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
        String::from_utf8(render(format, &vars(pairs)).unwrap().to_vec()).unwrap()
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
    fn docker_lines_are_literal() {
        assert_eq!(
            text(EnvFormat::Docker, &[("A", "a b=c#d $HOME \\n"), ("E", "")]),
            "A=a b=c#d $HOME \\n\nE=\n"
        );
    }

    #[test]
    fn dotenv_quotes_only_what_needs_it_and_prefers_single_quotes() {
        assert_eq!(
            text(
                EnvFormat::Dotenv,
                &[
                    ("PLAIN", "abc-123_x.y/z:@%+,=é"),
                    ("EMPTY", ""),
                    ("SPACE", " a #b "),
                    ("PEM", "-----BEGIN KEY-----\nMIIB\n-----END KEY-----\n"),
                    ("DOLLAR", "$HOME \"q\" `x` a\\b"),
                    ("APOSTROPHE", "it's\nfine"),
                ]
            ),
            "PLAIN=abc-123_x.y/z:@%+,=é\nEMPTY=\nSPACE=' a #b '\n\
             PEM='-----BEGIN KEY-----\nMIIB\n-----END KEY-----\n'\n\
             DOLLAR='$HOME \"q\" `x` a\\b'\nAPOSTROPHE=\"it's\nfine\"\n"
        );
    }

    #[test]
    fn dotenv_refuses_what_no_quoting_gives_back_to_every_reader() {
        for (value, reason) in [
            ("cr\r", "contains a carriage return"),
            ("${HOME}", "contains `${`"),
            ("it's $5", "contains a `'`, so it cannot be single-quoted"),
            ("it's \"q\"", "contains a `'`"),
            ("it's a\\b", "contains a `'`"),
            ("a\\\\b", "contains `\\\\` or ends with `\\`"),
            ("trailing\\", "contains `\\\\` or ends with `\\`"),
        ] {
            let err = render(EnvFormat::Dotenv, &vars(&[("TOKEN", value)])).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("cannot print TOKEN as dotenv: its value {reason}")),
                "{value:?}: {message}"
            );
        }
    }

    /// Reads `text` as dotenvy does, with no variable of this process's
    /// environment for `$VAR` to expand to.
    fn dotenvy_reads(text: &str) -> Vec<(String, String)> {
        dotenvy::from_read_iter(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|err| panic!("dotenvy: {err}: {text:?}"))
    }

    #[test]
    fn dotenvy_reads_back_every_value_dotenv_prints() {
        let values = [
            "plain",
            "",
            " lead",
            "trail\t",
            "a #b",
            "'single'",
            "\"double\"",
            "$HOME",
            "$$",
            "`x`",
            "a\\b",
            "two\nlines\n",
            "\n",
            "it's",
            "é ✓ 🎉",
            "\u{a0}nbsp",
            "tab\there",
            "#start",
            "=eq",
            "a=b",
            "\u{feff}bom",
            "ctl\u{1}",
        ];
        let variables: Vec<(String, Secret)> = values
            .iter()
            .enumerate()
            .map(|(i, value)| (format!("V{i}"), Secret::from(*value)))
            .collect();
        let text =
            String::from_utf8(render(EnvFormat::Dotenv, &variables).unwrap().to_vec()).unwrap();
        let expected: Vec<(String, String)> = values
            .iter()
            .enumerate()
            .map(|(i, value)| (format!("V{i}"), (*value).to_owned()))
            .collect();
        assert_eq!(dotenvy_reads(&text), expected, "{text}");
    }

    proptest::proptest! {
        #[test]
        fn whatever_dotenv_prints_dotenvy_reads_back(
            value in "[a-zA-Z0-9 \t\n'\"`$#=\\\\{}é\u{a0}\u{1}]{0,24}"
        ) {
            let variables = vec![("V".to_owned(), Secret::from(value.as_str()))];
            if let Ok(out) = render(EnvFormat::Dotenv, &variables) {
                let text = String::from_utf8(out.to_vec()).unwrap();
                proptest::prop_assert_eq!(
                    dotenvy_reads(&text),
                    vec![("V".to_owned(), value.clone())],
                    "{:?}", text
                );
            }
        }
    }

    #[test]
    fn docker_refuses_what_its_readers_would_read_differently() {
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
            let err = render(EnvFormat::Docker, &vars(&[("TOKEN", value)])).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with("cannot print TOKEN as docker: its value "),
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
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        for text in [every_ascii.as_str(), "ü 🎉 \u{2028} \u{feff}", ""] {
            let mut out = Vec::with_capacity(1024);
            json_string(text, &mut Sink::Fill(&mut out));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
    }

    #[test]
    fn shell_words_bash_would_expand_are_quoted() {
        assert_eq!(
            text(
                EnvFormat::Shell,
                &[("A", "x{b,c}"), ("B", "a:~"), ("C", "a,b@c%d")]
            ),
            "export A='x{b,c}'\nexport B='a:~'\nexport C=a,b@c%d\n"
        );
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_by_name_in_every_format() {
        let variables = vec![("BIN".to_owned(), Secret::new(vec![0xff, 0xfe]))];
        for format in [
            EnvFormat::Shell,
            EnvFormat::Dotenv,
            EnvFormat::Docker,
            EnvFormat::Json,
        ] {
            let message = render(format, &variables).unwrap_err().to_string();
            assert!(message.contains("cannot print BIN as"), "{message}");
            assert!(message.contains("not valid UTF-8"), "{message}");
        }
    }

    #[test]
    fn github_masks_every_line_but_blank_ones_and_escapes_percent() {
        let masks = exact(|out| github_masks("a%0A%b\r\n \t\n\nlast", out));
        assert_eq!(
            String::from_utf8(masks.to_vec()).unwrap(),
            "::add-mask::a%250A%25b\n::add-mask::last\n"
        );
        assert!(exact(|out| github_masks("", out)).is_empty());
        assert!(exact(|out| github_masks("\n\n", out)).is_empty());
    }

    #[test]
    fn github_blocks_are_heredocs_with_the_value_as_it_is() {
        let block = github_block("A", "x\r\ny\n", "D");
        assert_eq!(&block[..], b"A<<D\nx\r\ny\n\nD\n");
        assert_eq!(&github_block("E", "", "D")[..], b"E<<D\n\nD\n");
    }

    #[test]
    fn a_delimiter_found_in_the_name_or_value_is_drawn_again() {
        let mut draws = vec!["in", "ALUE", "third"];
        let mut drawn = 0;
        let delimiter = delimiter("NAME_in", "a VALUE", || {
            drawn += 1;
            Ok(draws.remove(0).to_owned())
        });
        assert_eq!(delimiter.unwrap(), "third");
        assert_eq!(drawn, 3);
        let random = random_delimiter().unwrap();
        assert!(random.starts_with("ghadelimiter_"), "{random}");
        assert_eq!(random.len(), "ghadelimiter_".len() + 32);
        assert_ne!(random, random_delimiter().unwrap());
    }

    #[test]
    fn github_refuses_names_the_runner_would_split_elsewhere() {
        for name in ["", "A=B", "A<<B", "A\nB", "A\rB"] {
            assert!(github_name_problem(name).is_some(), "{name:?}");
        }
        assert_eq!(github_name_problem("API_TOKEN"), None);
    }

    #[test]
    fn github_refuses_what_the_runner_cannot_give_back_before_opening_the_file() {
        let nowhere = std::path::Path::new("/nonexistent/github-env");
        for (value, reason) in [
            (vec![0xff, 0xfe], "is not valid UTF-8 text"),
            (b"ends\r".to_vec(), "ends with a carriage return"),
        ] {
            let variables = vec![
                ("FINE".to_owned(), Secret::from("fine")),
                ("BAD".to_owned(), Secret::new(value)),
            ];
            let message = github(&variables, nowhere).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("cannot print BAD as github: its value {reason}")),
                "{message}"
            );
        }
    }

    #[test]
    fn github_leaves_no_unwiped_copy_of_a_value() {
        const CANARY: &[u8] = b"canary-7f31c0-github";
        let value: String = (0..40)
            .map(|i| format!("{}%{i}\n", std::str::from_utf8(CANARY).unwrap()))
            .collect();
        let found = crate::secret::watch::unwiped_copies(CANARY, || {
            let masks = exact(|out| github_masks(&value, out));
            let block = github_block("NAME", &value, "ghadelimiter_x");
            let shown = |out: &[u8]| out.windows(CANARY.len()).filter(|w| *w == CANARY).count();
            assert_eq!((shown(&masks), shown(&block)), (40, 40));
        });
        assert_eq!(found, 0);
    }

    #[test]
    fn rendering_leaves_no_unwiped_copy_of_a_value() {
        const CANARY: &[u8] = b"canary-60d2aa-env";
        let mut copies: Vec<(&str, usize)> = Vec::new();
        for format in [
            EnvFormat::Shell,
            EnvFormat::Dotenv,
            EnvFormat::Docker,
            EnvFormat::Json,
        ] {
            // Quotes, backslashes and non-ASCII text, to be escaped or
            // quoted (each value as the format can take it, single- and
            // double-quoted for dotenv), and enough variables to fill any
            // buffer that grows.
            let tails: [&str; 2] = match format {
                EnvFormat::Dotenv => [" \"q\" \\ ü $x\n", " it's ü\n"],
                EnvFormat::Docker => [" \"q\" \\ ü $x", "it's ü"],
                EnvFormat::Shell | EnvFormat::Json | EnvFormat::Github => {
                    [" it's \"q\" \\ ü $x\n", "'"]
                }
            };
            let variables: Vec<(String, Secret)> = (0..40)
                .map(|i| {
                    let value = [CANARY, tails[i % 2].as_bytes()].concat();
                    (format!("NAME_{i}"), Secret::new(value))
                })
                .collect();
            let found = crate::secret::watch::unwiped_copies(CANARY, || {
                let out = render(format, &variables).unwrap();
                let shown = out.windows(CANARY.len()).filter(|w| *w == CANARY).count();
                assert_eq!(shown, 40);
            });
            copies.push((format.name(), found));
        }
        // Each format's count of unwiped copies of a value that were freed.
        assert_eq!(
            copies,
            [("shell", 0), ("dotenv", 0), ("docker", 0), ("json", 0)]
        );
    }
}
