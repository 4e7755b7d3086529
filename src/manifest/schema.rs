//! The manifest's JSON Schema (schema/secrets.schema.json), built in: for
//! editors (Taplo, and the "Even Better TOML" extension on it), which find
//! it through a `#:schema` line at the top of `secrets.toml`. `init` writes
//! it beside the manifest and `with-secrets schema` prints it. The unit
//! tests in `parse::schema_tests` hold it to the parser, and the
//! end-to-end tests (tests/schema.rs) to real validators.

/// The schema, as in the repository.
pub(crate) const SCHEMA: &str = include_str!("../../schema/secrets.schema.json");

/// The file name `init` writes it under, beside the manifest.
pub(crate) const FILE_NAME: &str = "secrets.schema.json";

/// The directive that points Taplo at it, as the manifest's first line: a
/// path relative to the manifest.
pub(crate) const DIRECTIVE: &str = "#:schema ./secrets.schema.json";
