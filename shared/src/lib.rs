//! The library every dbtools tool is built on. Each concern lives here exactly once: the JSON
//! contract between the tools (`contract`), exit codes and the error type (`exit`), config
//! (`config`), secrets (`secrets`), profile resolution (`resolve`), PostgreSQL connect + TLS
//! (`pg`), local PostgreSQL servers (`server`), output (`output`), stdin (`input`), the common
//! flags and `main` runner (`cli`), and the guard's check point (`guard`).

pub mod cli;
pub mod config;
pub mod contract;
pub mod envvars;
pub mod exit;
pub mod guard;
pub mod identity;
pub mod input;
pub mod names;
pub mod output;
pub mod pg;
pub mod resolve;
pub mod secrets;
pub mod server;
pub mod state;
pub mod url;

pub use exit::{Error, ExitStatus, Result};
