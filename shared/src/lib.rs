//! The library every dbtools tool is built on. Each concern lives here exactly once: the JSON
//! contract between the tools (`contract`), exit codes and the error type (`exit`), config
//! (`config`), secrets (`secrets`), profile resolution (`resolve`), PostgreSQL connect + TLS
//! (`pg`), local PostgreSQL servers (`server`), output (`output`), stdin (`input`), the common
//! flags and `main` runner (`cli`), and the guard (`guard`: protection, audit; `stamp`: the env stamp in each database and who may write it; `owner`: what an instance's owner records outside it). With the
//! `sql` feature, what reads SQL with PostgreSQL's own parser: statement splitting (`sql`), the
//! dbmate migration format (`migration_files`) and the lint (`lint`).

pub mod cli;
pub mod config;
pub mod contract;
pub(crate) mod diag;
pub mod envvars;
pub mod exit;
pub mod guard;
pub mod identity;
pub mod input;
pub mod interrupt;
pub mod links;
#[cfg(feature = "sql")]
pub mod lint;
#[cfg(feature = "sql")]
pub mod migration_files;
pub mod names;
pub mod output;
pub mod owner;
pub mod pg;
pub mod pgpass;
pub(crate) mod pgservice;
pub mod resolve;
pub(crate) mod secret_cache;
pub mod secrets;
pub mod server;
#[cfg(feature = "sql")]
pub mod sql;
pub mod stamp;
pub mod state;
pub mod time;
pub mod url;
#[cfg(windows)]
mod windows;

pub use exit::{Error, ExitStatus, Result};
