//! End-to-end tests of the built binary. Each test that needs a keyring
//! starts its own private Secret Service (see `support::keyring`).

mod support;

mod manage;
mod manifest;
mod run;
