//! The run form, `with-secrets -- COMMAND` or `-c STRING`: resolve every
//! variable, then run the command with them (in our place, or under
//! `--mask` as our child).

use std::process::ExitCode;

use crate::config::Config;
use crate::error::Error;
use crate::process::{exec, mask};
use crate::resolve;
use crate::secret;
use crate::store;

/// `-c STRING` as argv: split into words as sh would (quotes, backslashes),
/// but with no shell to expand variables, globs or `~`.
pub(crate) fn split_command_line(line: &str) -> Result<Vec<std::ffi::OsString>, Error> {
    let words = shell_words::split(line).map_err(|_| Error::Usage {
        message: format!(
            "-c: cannot split the command into words: a quote is not closed in: {line}"
        ),
    })?;
    Ok(words.into_iter().map(Into::into).collect())
}

/// The main job: resolve every variable, then run the command with them.
pub(crate) fn run(
    argv: &[std::ffi::OsString],
    mask: bool,
    config: &Config,
) -> Result<ExitCode, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Usage {
            message: "nothing to run: give a command after `--`, e.g. with-secrets -- cargo test, \
                 or as one string with -c\n  see: with-secrets --help"
                .to_owned(),
        });
    };
    // Find the command before touching the keyring, so a typo never costs an
    // unlock prompt, and load the manifest before that, so a bad manifest is
    // reported even when the command is also wrong.
    let project = config.project()?;
    let path = exec::find(program, &config.cwd)?;
    let resolution = resolve::lookup(config, &project, true);
    let resolved =
        resolve::variables(&project.manifest, resolution, config.set_fix(project.store))?;
    let added = resolve::from_store(&resolved);
    let mask = mask.then(|| values_to_mask(&resolved));
    drop(resolved);
    exec::run(
        program,
        &path,
        args,
        added,
        &store::UNLOCK_VARIABLES,
        mask.as_deref(),
        &config.fix,
    )
}

/// What `--mask` hides: every value, from the store or the environment (in
/// CI those are the secrets), less the ones too short to mask, which a
/// warning names.
fn values_to_mask(resolved: &[resolve::Variable]) -> Vec<(String, secret::Secret)> {
    let (short, values): (Vec<_>, Vec<_>) = resolve::all(resolved)
        .into_iter()
        .partition(|(_, value)| mask::is_short(value.expose()));
    if !short.is_empty() {
        let names: Vec<&str> = short.iter().map(|(name, _)| name.as_str()).collect();
        crate::warning!(
            "with-secrets: warning: --mask leaves {} unmasked: values shorter than {} characters \
             are not masked, as that would mask ordinary text",
            names.join(", "),
            mask::MIN_LENGTH
        );
    }
    crate::explain!(
        "--mask: masking {} value{} in the command's output",
        values.len(),
        if values.len() == 1 { "" } else { "s" }
    );
    values
}
