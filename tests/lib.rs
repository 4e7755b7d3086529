//! End-to-end tests of the built binary. Each test that needs a keyring
//! starts its own private Secret Service (see `support::keyring`). They need
//! a Secret Service and exec, so they build on Linux and the BSDs only.

#![cfg(all(unix, not(target_os = "macos")))]

mod support;

mod agent;
mod agent_recipes;
mod bridge;
mod cache;
mod check_json;
mod contract;
mod daemons;
mod doctor;
mod env_format;
mod ergonomics;
mod examples;
mod fallback;
mod file_store;
mod generate;
mod github_actions;
mod github_env;
mod hardening;
mod keyutils;
mod manage;
mod manifest;
mod mask;
mod profiles;
mod python;
mod recipes;
mod remote;
mod round_trips;
mod run;
mod schema;
mod scripts;
mod store_errors;
mod unlock;
mod vault;
mod windows;
