//! `postgres://` connection URLs: parse them (for `DATABASE_URL`) and write them (for
//! `dbenv export --format url` and `dbconnect url`), percent-encoding what needs it.

use crate::contract::{Conn, SslMode, REDACTED};
use crate::exit::{Error, Result};

/// Writes a URL; `password` is included only when `reveal` is true (else it is redacted).
pub fn format(conn: &Conn, reveal: bool) -> String {
    let mut url = format!("postgres://{}", encode(&conn.user));
    match (&conn.password, reveal) {
        (Some(password), true) => url.push_str(&format!(":{}", encode(password))),
        (Some(_), false) => url.push_str(&format!(":{REDACTED}")),
        (None, _) => {}
    }
    let host = if conn.host.contains(':') {
        format!("[{}]", conn.host)
    } else {
        conn.host.clone()
    };
    url.push_str(&format!(
        "@{host}:{}/{}?sslmode={}",
        conn.port,
        encode(&conn.dbname),
        conn.sslmode.as_str()
    ));
    if let Some(root) = &conn.sslrootcert {
        url.push_str(&format!("&sslrootcert={}", encode(root)));
    }
    url
}

/// Parses `postgres://user:password@host:port/dbname?sslmode=…&sslrootcert=…`.
pub fn parse(url: &str) -> Result<Conn> {
    let bad = |why: &str| {
        Error::BadInput(format!("connection URL is not usable: {why} (expected postgres://user:password@host:port/dbname)"))
    };
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| bad("it must start with postgres://"))?;
    let (authority, path_query) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(info) => match info.split_once(':') {
            Some((u, p)) => (decode(u)?, Some(decode(p)?)),
            None => (decode(info)?, None),
        },
        None => (String::new(), None),
    };
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in host"))?;
        (host.to_string(), after.strip_prefix(':').unwrap_or(""))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (hostport.to_string(), ""),
        }
    };
    let port = if port.is_empty() {
        5432
    } else {
        port.parse().map_err(|_| bad("the port is not a number"))?
    };
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let mut sslmode = None;
    let mut sslrootcert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => sslmode = Some(SslMode::parse(&decode(value)?)?),
            "sslrootcert" => sslrootcert = Some(decode(value)?),
            // Names only: nothing that changes how or where we connect.
            "application_name" => {}
            other => {
                return Err(bad(&format!(
                    "parameter {other:?} is not supported by dbtools (its TLS is native-tls: no client certificates, CRLs or protocol pins); remove it rather than have it ignored"
                )))
            }
        }
    }
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Conn {
        sslmode: sslmode.unwrap_or(if is_loopback(&host) {
            SslMode::Prefer
        } else {
            SslMode::VerifyFull
        }),
        host,
        port,
        dbname: decode(path)?,
        user,
        password,
        sslrootcert,
    })
}

/// True for hosts that never leave this machine: a loopback address, `localhost`, or a Unix
/// socket directory. A name like `127.example.com` is a DNS name, not loopback.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(
                hex.ok_or_else(|| Error::BadInput("connection URL has a bad %-escape".into()))?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::BadInput("connection URL is not UTF-8 after decoding".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_means_addresses_not_name_prefixes() {
        for host in [
            "localhost",
            "127.0.0.1",
            "127.0.0.2",
            "::1",
            "[::1]",
            "/var/run/postgresql",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "127.example.com",
            "localhost.example.com",
            "10.0.0.1",
            "db.example.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn round_trips_awkward_passwords() {
        let conn = Conn {
            host: "db.example.com".into(),
            port: 6543,
            dbname: "app db".into(),
            user: "u@x".into(),
            password: Some("p:/@?&%'\"".into()),
            sslmode: SslMode::VerifyFull,
            sslrootcert: Some("/certs/rds ca.pem".into()),
        };
        let url = format(&conn, true);
        assert_eq!(parse(&url).unwrap(), conn);
        assert!(!format(&conn, false).contains("p%3A"));
    }

    #[test]
    fn defaults_and_errors() {
        let conn = parse("postgresql://u@localhost/d").unwrap();
        assert_eq!((conn.port, conn.sslmode), (5432, SslMode::Prefer));
        assert_eq!(
            parse("postgres://u@db.example.com/d").unwrap().sslmode,
            SslMode::VerifyFull
        );
        assert!(parse("mysql://x").is_err());
        assert!(parse("postgres://u@h:port/d").is_err());
    }
}
