//! `with-secrets schema`: print the manifest's JSON Schema, built into the
//! binary, so `with-secrets schema > secrets.schema.json` refreshes the copy
//! an editor reads after an upgrade.

use std::process::ExitCode;

use super::completions::print;
use crate::error::Error;
use crate::manifest::schema::SCHEMA;

/// Prints the schema.
pub(crate) fn run() -> Result<ExitCode, Error> {
    print(SCHEMA.as_bytes())
}
