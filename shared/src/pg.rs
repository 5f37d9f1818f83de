//! PostgreSQL connect with TLS, the one place that turns a profile's `conn` into a client.
//!
//! sslmode follows libpq: `disable` (plain), `prefer` (TLS when offered, unverified), `require`
//! (TLS, unverified), `verify-ca` (TLS, chain checked against `sslrootcert`), `verify-full` (also
//! the host name, or IP address, in the certificate). A `sslrootcert` file may hold a bundle (the
//! RDS CA bundle holds over a hundred certificates); `system` means the OS's trust store.
//! Connection failures come back as exit-4 errors that say what to do; never with the password.

use crate::contract::{Conn, SslMode};
use crate::exit::{Error, Result};
use native_tls::{Certificate, TlsConnector};
use postgres_native_tls::MakeTlsConnector;
use std::time::Duration;

pub use postgres::Client;

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection for `conn`, as application `application`: one attempt, which gives up
/// when `timeout` has passed — TCP connect, TLS handshake and authentication together.
pub fn connect(conn: &Conn, application: &str, timeout: Duration) -> Result<Client> {
    let tls = tls_connector(conn)?;
    connect_within(client_config(conn, application, timeout), tls, timeout)
        .map_err(|failure| describe_failure(conn, failure))
}

/// Why one connect attempt failed: the driver's error, or no answer before the deadline.
enum Failure {
    Driver(postgres::Error),
    NoAnswer(Duration),
}

/// The driver's `connect_timeout` bounds the TCP connect only; a listener that accepts and
/// then stays silent (a half-open proxy, a blackholed port forward) would hang the TLS and
/// startup exchange forever. The attempt runs on its own thread so the caller keeps the
/// deadline; an abandoned attempt dies with the process.
fn connect_within(
    config: postgres::Config,
    tls: MakeTlsConnector,
    timeout: Duration,
) -> std::result::Result<Client, Failure> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(config.connect(tls));
    });
    match receiver.recv_timeout(timeout) {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => Err(Failure::Driver(error)),
        Err(_) => Err(Failure::NoAnswer(timeout)),
    }
}

fn describe_failure(conn: &Conn, failure: Failure) -> Error {
    match failure {
        Failure::Driver(error) => describe_connect_error(conn, &error),
        Failure::NoAnswer(after) => Error::Unreachable(format!(
            "cannot connect to {}:{}: no answer within {:.1}s (TCP connect, TLS handshake and login together): a firewall or security group dropping traffic, or something that is not PostgreSQL on that port",
            conn.host,
            conn.port,
            after.as_secs_f64()
        )),
    }
}

/// [`connect`], with `on_notice` hearing each NOTICE the server sends while statements run
/// (as they arrive, not when the statement ends): how a long batch reports its progress.
pub fn connect_with_notices(
    conn: &Conn,
    application: &str,
    timeout: Duration,
    on_notice: impl Fn(&str) + Send + Sync + 'static,
) -> Result<Client> {
    let tls = tls_connector(conn)?;
    let mut config = client_config(conn, application, timeout);
    config.notice_callback(move |notice| on_notice(notice.message()));
    connect_within(config, tls, timeout).map_err(|failure| describe_failure(conn, failure))
}

/// Sends PostgreSQL's cancel request for whatever `token`'s session is running, over a new
/// connection made the way `conn` says (the same TLS); the session's statement then fails with
/// SQLSTATE 57014. Best effort, as in libpq: the server may have finished already.
pub fn cancel(conn: &Conn, token: &postgres::CancelToken) -> Result<()> {
    token.cancel_query(tls_connector(conn)?).map_err(|e| {
        Error::Unreachable(format!(
            "cannot send the cancel request: {}",
            error_chain(&e)
        ))
    })
}

fn client_config(conn: &Conn, application: &str, timeout: Duration) -> postgres::Config {
    let mut config = postgres::Config::new();
    config
        .host(&conn.host)
        .port(conn.port)
        .dbname(&conn.dbname)
        .user(&conn.user)
        .application_name(application)
        .connect_timeout(timeout)
        .ssl_mode(match effective_sslmode(conn) {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
    if let Some(password) = &conn.password {
        config.password(password);
    }
    config
}

/// `prefer` falls back to plain TCP when the server offers no TLS; off this machine that would
/// send the password in the clear without anyone asking for it, so there it means `require`.
/// Plain TCP to a remote host happens only with an explicit `disable`.
pub fn effective_sslmode(conn: &Conn) -> SslMode {
    match conn.sslmode {
        SslMode::Prefer if !crate::url::is_loopback(&conn.host) => SslMode::Require,
        mode => mode,
    }
}

fn tls_connector(conn: &Conn) -> Result<MakeTlsConnector> {
    Ok(MakeTlsConnector::new(native_connector(conn)?))
}

/// How the server's certificate is checked: as the sslmode says, except that `require` with
/// an `sslrootcert` checks the chain like `verify-ca` — libpq's rule ("if a root CA file
/// exists, sslmode=require behaves like verify-ca"), so the tools are never looser than the
/// psql shell `dbenv export` sets up.
fn verification(conn: &Conn) -> SslMode {
    match (conn.sslmode, conn.sslrootcert.as_deref()) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        (mode, _) => mode,
    }
}

/// The TLS connector for `conn`'s sslmode and sslrootcert (what verifies the server).
fn native_connector(conn: &Conn) -> Result<TlsConnector> {
    let mut builder = TlsConnector::builder();
    let mode = verification(conn);
    match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => {
            builder
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
        SslMode::VerifyCa => {
            builder.danger_accept_invalid_hostnames(true);
        }
        SslMode::VerifyFull => {}
    }
    let verifying = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull);
    match conn.sslrootcert.as_deref() {
        Some(path) if verifying && path != "system" => {
            for certificate in read_root_certs(path)? {
                builder.add_root_certificate(certificate);
            }
            builder.disable_built_in_roots(true);
        }
        _ => {}
    }
    // OpenSSL loads its whole default bundle (~140 certificates, tens of milliseconds of CPU)
    // into every connector it builds, even one that will trust only `sslrootcert` or nothing.
    // Pointing the default at the one file we trust while the connector is built keeps every
    // tool's connect fast; the variables are restored at once, so children never see them.
    let only_file = match conn.sslrootcert.as_deref() {
        Some(path) if verifying && path != "system" => Some(path),
        _ if !verifying => Some("/dev/null"),
        _ => None,
    };
    let _defaults = only_file
        .map(|file| ScopedEnv::set(&[("SSL_CERT_FILE", file), ("SSL_CERT_DIR", "/nonexistent")]));
    builder
        .build()
        .map_err(|e| Error::BadInput(format!("cannot set up TLS: {e}")))
}

/// What the TLS step of a connection found: the protocol in use, or that none was asked for.
pub enum TlsProbe {
    /// `verified`: the certificate was checked (verify-ca, verify-full).
    Established { verified: bool },
    /// sslmode=disable (or prefer on loopback with a server that offers none): plain TCP.
    Plain,
}

/// The TLS step alone, on an open TCP connection to the server: PostgreSQL's SSLRequest, then
/// the handshake with the same verification a connect would do — so `dbconnect doctor` can
/// tell a TLS problem (no TLS offered, untrusted CA, wrong host name, missing CA file) from
/// a password or database problem.
pub fn probe_tls(
    conn: &Conn,
    mut stream: std::net::TcpStream,
    timeout: Duration,
) -> Result<TlsProbe> {
    use std::io::{Read, Write};
    let mode = effective_sslmode(conn);
    if mode == SslMode::Disable {
        return Ok(TlsProbe::Plain);
    }
    let connector = native_connector(conn)?;
    let io = |e: std::io::Error| {
        Error::Unreachable(format!(
            "{}:{} closed the connection during the TLS request ({e}): is it PostgreSQL?",
            conn.host, conn.port
        ))
    };
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(io)?;
    // SSLRequest: length 8, code 1234.5679.
    stream
        .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .map_err(io)?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).map_err(io)?;
    match answer[0] {
        b'S' => {}
        b'N' if mode == SslMode::Prefer => return Ok(TlsProbe::Plain),
        b'N' => {
            return Err(Error::Unreachable(format!(
                "{}:{} offers no TLS but sslmode={} requires it: enable ssl on the server (plain TCP only with an explicit sslmode=disable)",
                conn.host,
                conn.port,
                conn.sslmode.as_str()
            )))
        }
        other => {
            return Err(Error::Unreachable(format!(
                "{}:{} answered the TLS request with {other:#04x}: it is not PostgreSQL",
                conn.host, conn.port
            )))
        }
    }
    connector.connect(&conn.host, stream).map_err(|e| {
        let text = error_chain(&e);
        let why = certificate_problem(conn, &text).unwrap_or_else(|| text.clone());
        Error::Unreachable(format!(
            "TLS handshake with {}:{} failed: {why} [{text}]",
            conn.host, conn.port
        ))
    })?;
    Ok(TlsProbe::Established {
        verified: matches!(verification(conn), SslMode::VerifyCa | SslMode::VerifyFull),
    })
}

/// What a failed certificate check means, from the TLS library's error text: a host name the
/// certificate does not carry, or a CA that is not trusted. `None` for anything else. One
/// reading for `dbconnect check` and `doctor` alike.
fn certificate_problem(conn: &Conn, text: &str) -> Option<String> {
    let schannel = schannel_code(text);
    if schannel == Some(CERT_E_REVOCATION_FAILURE)
        || schannel == Some(CRYPT_E_NO_REVOCATION_CHECK)
        || schannel == Some(CRYPT_E_REVOCATION_OFFLINE)
    {
        return Some(format!(
            "Windows could not learn whether the server's certificate is revoked (HRESULT {:#010x}): no CRL or OCSP responder named in the chain answered. Windows accepts a chain to your sslrootcert whose revocation is unknown; wine's crypt32 does not (README, \"Windows\")",
            schannel.unwrap_or_default()
        ));
    }
    if schannel == Some(CRYPT_E_REVOKED) || schannel == Some(CERT_E_REVOKED) {
        return Some(format!("the server's certificate (or one above it) is revoked by its CA (HRESULT {:#010x}): do not connect; the server needs a new certificate", schannel.unwrap_or_default()));
    }
    if text.contains("ostname mismatch")
        || text.contains("IP address mismatch")
        || schannel == Some(CERT_E_CN_NO_MATCH)
    {
        Some(format!(
            "the certificate does not name {} (verify-full checks the host name): connect with the name the certificate carries (for RDS: the instance endpoint, not an IP or alias)",
            conn.host
        ))
    } else if text.contains("certificate verify failed")
        || text.contains("certificate")
        || schannel == Some(CERT_E_UNTRUSTEDROOT)
        || schannel == Some(CERT_E_CHAINING)
    {
        Some(format!(
            "the server's certificate is not signed by a CA in {} (sslmode={}): point sslrootcert at the CA that signed it (for RDS: the global bundle, https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)",
            conn.sslrootcert.as_deref().unwrap_or("the system trust store"),
            conn.sslmode.as_str()
        ))
    } else {
        None
    }
}

// Windows' certificate errors (winerror.h), as schannel reports them through native-tls:
// "OS Error -2146762482 (…)", the HRESULT as a signed 32-bit number.
const CERT_E_REVOCATION_FAILURE: u32 = 0x800B_010E;
const CRYPT_E_NO_REVOCATION_CHECK: u32 = 0x8009_2012;
const CRYPT_E_REVOCATION_OFFLINE: u32 = 0x8009_2013;
const CRYPT_E_REVOKED: u32 = 0x8009_2010;
const CERT_E_REVOKED: u32 = 0x800B_010C;
const CERT_E_CN_NO_MATCH: u32 = 0x800B_010F;
const CERT_E_UNTRUSTEDROOT: u32 = 0x800B_0109;
const CERT_E_CHAINING: u32 = 0x800B_010A;

/// The HRESULT in a schannel error text, when there is one. Windows words it as the system's
/// message then `(os error -2146885616)`; where the message is missing (wine), std writes
/// `OS Error -2146762482 (FormatMessageW() returned error 317) (os error -2146762482)`. Both
/// end with the `(os error N)` read here.
fn schannel_code(text: &str) -> Option<u32> {
    let at = text.rfind("(os error ")? + "(os error ".len();
    let number: String = text[at..]
        .chars()
        .take_while(|c| *c == '-' || c.is_ascii_digit())
        .collect();
    // Only HRESULTs (negative as i32): a positive number is a Win32 or errno code.
    number
        .parse::<i32>()
        .ok()
        .filter(|code| *code < 0)
        .map(|code| code as u32)
}

/// Prepares the environment of a libpq program (psql, pg_dump) for `conn`. The password goes in
/// the child's environment only, never on its command line; variables that would point libpq
/// elsewhere (a service, a host address, another pgpass file) are removed.
pub fn libpq_environment(command: &mut std::process::Command, conn: &Conn, application: &str) {
    use crate::envvars::*;
    command
        .env(PGHOST, &conn.host)
        .env(PGPORT, conn.port.to_string())
        .env(PGDATABASE, &conn.dbname)
        .env(PGUSER, &conn.user)
        .env(PGSSLMODE, effective_sslmode(conn).as_str())
        .env(PGAPPNAME, application);
    for stray in [PGPASSFILE, PGHOSTADDR, PGSERVICE] {
        command.env_remove(stray);
    }
    match libpq_sslrootcert(conn) {
        Some(root) => command.env(PGSSLROOTCERT, root),
        None => command.env_remove(PGSSLROOTCERT),
    };
    match &conn.password {
        Some(password) => command.env(PGPASSWORD, password),
        None => command.env_remove(PGPASSWORD),
    };
}

/// Where libpq finds the trusted roots for `conn`. `system` (the OS store) is understood by
/// libpq 16 and later only; older clients, like PostgreSQL 15's psql, would look for a file
/// named `system`, so they are given the OS bundle's path instead.
pub fn libpq_sslrootcert(conn: &Conn) -> Option<String> {
    match conn.sslrootcert.as_deref()? {
        "system" => Some(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .into_iter()
            .find(|path| std::path::Path::new(path).is_file())
            .unwrap_or("system")
            .to_string(),
        ),
        path => Some(path.to_string()),
    }
}

/// Environment variables set for a scope and put back as they were when dropped.
struct ScopedEnv {
    saved: Vec<(&'static str, Option<std::ffi::OsString>)>,
}

impl ScopedEnv {
    fn set(vars: &[(&'static str, &str)]) -> ScopedEnv {
        let saved = vars
            .iter()
            .map(|(key, _)| (*key, std::env::var_os(key)))
            .collect();
        for (key, value) in vars {
            std::env::set_var(key, value);
        }
        ScopedEnv { saved }
    }
}

impl Drop for ScopedEnv {
    fn drop(&mut self) {
        for (key, value) in &self.saved {
            match value {
                Some(value) => std::env::set_var(key, value),
                None => std::env::remove_var(key),
            }
        }
    }
}

/// Reads every certificate of a PEM file (a bundle is many BEGIN/END blocks).
fn read_root_certs(path: &str) -> Result<Vec<Certificate>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::BadInput(format!(
            "sslrootcert {path} cannot be read ({e}): point sslrootcert at the CA bundle (for RDS: the global bundle from AWS's RDS documentation)"
        ))
    })?;
    const END: &str = "-----END CERTIFICATE-----";
    let mut certificates = Vec::new();
    for block in text
        .split_inclusive(END)
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
    {
        let certificate = Certificate::from_pem(block.trim().as_bytes()).map_err(|e| {
            Error::BadInput(format!(
                "sslrootcert {path}: a certificate does not parse: {e}"
            ))
        })?;
        certificates.push(certificate);
    }
    if certificates.is_empty() {
        return Err(Error::BadInput(format!(
            "sslrootcert {path} holds no PEM certificate"
        )));
    }
    Ok(certificates)
}

/// The full cause chain of an error, joined, e.g. "error connecting to server: Connection refused".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn describe_connect_error(conn: &Conn, error: &postgres::Error) -> Error {
    let target = format!("{}:{}", conn.host, conn.port);
    if let Some(db) = error.as_db_error() {
        let hint = match db.code().code() {
            "28000" => format!(
                "the server refused this connection: {} (sslmode={})",
                db.message(),
                conn.sslmode.as_str()
            ),
            "28P01" => format!(
                "authentication failed for user {:?}: the password is wrong or stale",
                conn.user
            ),
            "3D000" => format!("database {:?} does not exist on {target}", conn.dbname),
            "57P03" => "the server is starting up: retry, or use `dbconnect wait`".to_string(),
            _ => db.message().to_string(),
        };
        let message = format!("cannot connect to {target}: {hint} ({})", db.code().code());
        return match db.code().code() {
            "28P01" => Error::AuthFailed(message),
            _ => Error::Unreachable(message),
        };
    }
    let chain = error_chain(error);
    let hint = if chain.contains("server does not support TLS") {
        format!(
            "the server offers no TLS but sslmode={} requires it: enable TLS on the server (plain TCP only with an explicit sslmode=disable)",
            conn.sslmode.as_str()
        )
    } else if let Some(problem) = certificate_problem(conn, &chain) {
        problem
    } else if chain.contains("Connection refused") {
        "connection refused: nothing listens there".to_string()
    } else if chain.contains("timed out") || chain.contains("timeout") {
        "timed out: the host does not answer (firewall or security group?)".to_string()
    } else {
        chain.clone()
    };
    let detail = if hint == chain {
        String::new()
    } else {
        format!(" [{chain}]")
    };
    Error::Unreachable(format!("cannot connect to {target}: {hint}{detail}"))
}

/// True when `error` is a connect refused for its password (SQLSTATE 28P01).
pub fn is_auth_failure(error: &Error) -> bool {
    matches!(error, Error::AuthFailed(_))
}

/// Maps an error from a statement to exit 5, with SQLSTATE and position when the server gave them.
pub fn statement_error(what: &str, error: &postgres::Error) -> Error {
    match error.as_db_error() {
        Some(db) => Error::Failed(format!("{what}: {} ({})", db.message(), db.code().code())),
        None if error.is_closed() => {
            Error::Unreachable(format!("{what}: the connection was closed (the network or the server dropped it); its open transaction was rolled back: run the same command again"))
        }
        None => Error::Unreachable(format!("{what}: {}", error_chain(error))),
    }
}

/// True when a connect error may go away by waiting (server starting, not listening yet, no
/// route yet); false for errors waiting cannot fix (wrong password, untrusted certificate).
fn is_transient(error: &postgres::Error) -> bool {
    if let Some(db) = error.as_db_error() {
        return matches!(db.code().code(), "57P03" | "53300" | "08006" | "08001");
    }
    let chain = error_chain(error);
    !(chain.contains("certificate")
        || chain.contains("does not support TLS")
        || chain.contains("TLS handshake"))
}

/// Connects, retrying transient failures with backoff (100 ms doubling to 2 s) until `deadline`
/// passes. `on_retry(elapsed, error)` is called after each failed attempt that will be retried.
/// Returns the client and how long the attempt that succeeded took (TCP, TLS and login).
pub fn connect_with_retry(
    conn: &Conn,
    application: &str,
    timeout: std::time::Duration,
    mut on_retry: impl FnMut(std::time::Duration, &Error),
) -> Result<(Client, Duration)> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let attempt = std::time::Instant::now();
        let tls = tls_connector(conn)?;
        let remaining = timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(200));
        let attempt_timeout = remaining.min(DEFAULT_CONNECT_TIMEOUT);
        let config = client_config(conn, application, attempt_timeout);
        match connect_within(config, tls, attempt_timeout) {
            Ok(client) => return Ok((client, attempt.elapsed())),
            Err(failure) => {
                let transient = match &failure {
                    Failure::Driver(raw) => is_transient(raw),
                    Failure::NoAnswer(_) => true,
                };
                let error = describe_failure(conn, failure);
                let elapsed = started.elapsed();
                let remaining = timeout.saturating_sub(elapsed);
                if !transient || remaining.is_zero() {
                    let waited = if elapsed >= Duration::from_millis(500) {
                        format!(" (gave up after {:.1}s)", elapsed.as_secs_f64())
                    } else {
                        String::new()
                    };
                    return Err(Error::Unreachable(format!("{}{waited}", error.message())));
                }
                on_retry(elapsed, &error);
                // The last attempt lands on the deadline, not a backoff step before it.
                std::thread::sleep(pause.min(remaining));
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// One row of a simple-query answer, as text.
pub type TextRow = Vec<Option<String>>;

/// The rows of each result set in a simple-query answer, in order (a message often carries
/// several: the guard's assertion first, then the tool's own statements).
pub fn result_sets(messages: &[postgres::SimpleQueryMessage]) -> Vec<Vec<TextRow>> {
    let mut sets: Vec<Vec<TextRow>> = Vec::new();
    for message in messages {
        match message {
            postgres::SimpleQueryMessage::RowDescription(_) => sets.push(Vec::new()),
            postgres::SimpleQueryMessage::Row(row) => {
                if let Some(set) = sets.last_mut() {
                    set.push(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_string))
                            .collect(),
                    );
                }
            }
            _ => {}
        }
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_never_falls_back_to_plain_tcp_off_this_machine() {
        let mut conn = Conn {
            host: "db.example.com".into(),
            port: 5432,
            dbname: "d".into(),
            user: "u".into(),
            password: None,
            sslmode: SslMode::Prefer,
            sslrootcert: None,
        };
        assert_eq!(effective_sslmode(&conn), SslMode::Require);
        conn.host = "127.0.0.1".into();
        assert_eq!(effective_sslmode(&conn), SslMode::Prefer);
        conn.host = "db.example.com".into();
        conn.sslmode = SslMode::Disable;
        assert_eq!(
            effective_sslmode(&conn),
            SslMode::Disable,
            "explicit disable is honoured"
        );
    }

    #[test]
    fn schannel_errors_are_read_by_their_hresult() {
        let conn = Conn {
            host: "db.example.com".into(),
            port: 5432,
            dbname: "d".into(),
            user: "u".into(),
            password: None,
            sslmode: SslMode::VerifyFull,
            sslrootcert: Some("ca.crt".into()),
        };
        // What native-tls on Windows says, verbatim (seen under wine).
        let text = "error performing TLS handshake: OS Error -2146762482 (FormatMessageW() returned error 317) (os error -2146762482)";
        assert_eq!(schannel_code(text), Some(CERT_E_REVOCATION_FAILURE));
        let said = certificate_problem(&conn, text).unwrap();
        assert!(
            said.contains("0x800b010e") && said.contains("revoked"),
            "{said}"
        );
        // What Windows itself says: the system's message, then the code.
        let windows = |message: &str, code: u32| {
            format!(
                "error performing TLS handshake: {message} (os error {})",
                code as i32
            )
        };
        for code in [CRYPT_E_REVOKED, CERT_E_REVOKED] {
            let revoked = windows("The certificate is revoked.", code);
            assert!(certificate_problem(&conn, &revoked)
                .unwrap()
                .contains("is revoked"));
        }
        let name = windows(
            "The certificate's CN name does not match the passed value.",
            CERT_E_CN_NO_MATCH,
        );
        assert!(certificate_problem(&conn, &name)
            .unwrap()
            .contains("does not name db.example.com"));
        let root = windows("A certificate chain processed, but terminated in a root certificate which is not trusted by the trust provider.", CERT_E_UNTRUSTEDROOT);
        assert!(certificate_problem(&conn, &root)
            .unwrap()
            .contains("not signed by a CA in ca.crt"));
        assert_eq!(schannel_code("connection refused"), None);
        assert_eq!(schannel_code("Connection refused (os error 111)"), None);
    }
}
