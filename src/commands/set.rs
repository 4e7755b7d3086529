//! `with-secrets set NAME`: store a value, from a prompt on a terminal or
//! from standard input.

use std::io::{self, IsTerminal, Read};
use std::process::ExitCode;

use super::common::{entry, open, store_error};
use crate::config::Config;
use crate::error::Error;
use crate::resolve;
use crate::secret::Secret;
use crate::store;
use crate::term::printable::printable;

pub(crate) fn run(name: &str, config: &Config) -> Result<ExitCode, Error> {
    let project = config.project()?;
    let entry = entry(config, &project, name, "set")?;
    let key = resolve::key(entry);
    // Said before a value is asked for, which would be typed for nothing.
    if project.store.read_only() {
        return Err(Error::ReadOnlyStore {
            store: project.store.name(),
            name: name.to_owned(),
            fix: config.set_fix(project.store).to_owned(),
        });
    }
    let interactive = io::stdin().is_terminal();
    let value = if interactive {
        let prompt = format!(
            "{name} ({} / {}): ",
            printable(&entry.service),
            printable(&entry.username)
        );
        let typed = crate::term::prompt::password(&prompt).map_err(|source| Error::ReadValue {
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
    let mut store = open(config, &project)?;
    // A run may be generating this value at this moment: see
    // `crate::generate::write_under_lock`.
    crate::generate::write_under_lock(entry, config.timeout, || {
        store.set(key, &store::label(name, key), &value)
    })
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
        crate::secret::reserve_wiped(&mut bytes, 1);
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
}
