//! This machine's public address as the internet sees it: one GET to a check-IP endpoint that
//! answers the caller's address as text (AWS's https://checkip.amazonaws.com/ by default;
//! `DBTOOLS_CHECKIP_URL` or `[access] checkip_url` choose another). HTTPS, verified against
//! the OS's trust store; plain HTTP only to a loopback host (a local relay, or a test's
//! server). The answer must be one public IPv4 or IPv6 address: anything else — garbage, an
//! HTML page, a private or loopback address from a misconfigured proxy — is an error, and the
//! caller changes no rule.

use dbtools::config::Config;
use dbtools::{envvars, Error, Result};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

pub(crate) const DEFAULT_URL: &str = "https://checkip.amazonaws.com/";
const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_ANSWER: u64 = 64 * 1024;

/// The endpoint to ask: the environment's, the config's, or AWS's.
pub(crate) fn endpoint(config: Option<&Config>) -> String {
    std::env::var(envvars::DBTOOLS_CHECKIP_URL)
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| config.and_then(|c| c.access.checkip_url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

struct Url<'a> {
    tls: bool,
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse_url(url: &str) -> Result<Url<'_>> {
    let bad = || {
        Error::BadInput(format!(
            "check-IP endpoint {url:?}: use an https:// URL (http:// only to a loopback host)"
        ))
    };
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad());
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    // `host`, `host:port`, `[v6]`, `[v6]:port`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(port) => (host, port.parse().map_err(|_| bad())?),
                None if after.is_empty() => (host, if tls { 443 } else { 80 }),
                None => return Err(bad()),
            }
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
            None => (authority, if tls { 443 } else { 80 }),
        },
    };
    if host.is_empty() {
        return Err(bad());
    }
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !tls && !loopback {
        return Err(bad());
    }
    Ok(Url {
        tls,
        host,
        port,
        path,
    })
}

/// Asks `url` for this machine's public address.
pub(crate) fn public_address(url: &str) -> Result<IpAddr> {
    let parsed = parse_url(url)?;
    let unreachable = |why: String| {
        Error::Unreachable(format!(
            "check-IP endpoint {url} cannot be reached ({why}): no rule was changed; check the network, or point DBTOOLS_CHECKIP_URL at another endpoint"
        ))
    };
    let address = (parsed.host, parsed.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("no address for its host".into()))?;
    let stream =
        TcpStream::connect_timeout(&address, TIMEOUT).map_err(|e| unreachable(e.to_string()))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| unreachable(e.to_string()))?;
    let host_header = if parsed.host.contains(':') {
        format!("[{}]", parsed.host)
    } else {
        parsed.host.to_string()
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: dbtools-rdsprov\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
        parsed.path
    );
    let mut answer = Vec::new();
    let exchange = |stream: &mut dyn ReadWrite, answer: &mut Vec<u8>| -> std::io::Result<()> {
        stream.write_all(request.as_bytes())?;
        stream.take(MAX_ANSWER).read_to_end(answer)?;
        Ok(())
    };
    if parsed.tls {
        let connector = native_tls::TlsConnector::new().map_err(|e| unreachable(e.to_string()))?;
        let mut tls = connector
            .connect(parsed.host, stream)
            .map_err(|e| unreachable(format!("TLS: {e}")))?;
        exchange(&mut tls, &mut answer).map_err(|e| unreachable(e.to_string()))?;
    } else {
        let mut plain = stream;
        exchange(&mut plain, &mut answer).map_err(|e| unreachable(e.to_string()))?;
    }
    let body = http_body(&answer).map_err(|why| garbage(url, &why))?;
    parse_address(url, &body)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn garbage(url: &str, why: &str) -> Error {
    Error::BadInput(format!(
        "check-IP endpoint {url} answered {why}, not this machine's address: no rule was changed"
    ))
}

/// The body of a 200 answer (plain or chunked), decoded as UTF-8 at the end (lossily: a
/// non-text answer is garbage either way).
fn http_body(answer: &[u8]) -> std::result::Result<String, String> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| "something that is not HTTP".to_string())?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let body = &answer[split + 4..];
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{:?}", shorten(status)));
    }
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    if !chunked {
        return Ok(String::from_utf8_lossy(body).into_owned());
    }
    let broken = || "a broken chunked body".to_string();
    let mut decoded = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(broken)?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| broken())?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        let chunk = rest.get(..size).ok_or_else(broken)?;
        decoded.extend_from_slice(chunk);
        rest = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
    Ok(String::from_utf8_lossy(&decoded).into_owned())
}

fn shorten(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() > 60 {
        format!("{}…", clean.chars().take(60).collect::<String>())
    } else {
        clean
    }
}

/// One public address, or why not.
fn parse_address(url: &str, body: &str) -> Result<IpAddr> {
    let text = body.trim();
    // An IPv4 address written as ::ffff:a.b.c.d is the IPv4 address (a /128 rule for it
    // would never match).
    let ip: IpAddr = text
        .parse::<IpAddr>()
        .map_err(|_| garbage(url, &format!("{:?}", shorten(text))))?
        .to_canonical();
    match not_public(&ip) {
        None => Ok(ip),
        Some(kind) => Err(Error::BadInput(format!(
            "check-IP endpoint {url} answered {ip}, a {kind} address: a security group rule for it would admit nobody from the internet (a proxy or VPN in the way?); no rule was changed"
        ))),
    }
}

/// What makes an address useless as a home network's public address.
pub(crate) fn not_public(ip: &IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_private() {
                Some("private")
            } else if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if a == 100 && (64..128).contains(&b) {
                Some("carrier-grade NAT (shared)")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || a == 0 {
                Some("non-unicast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("non-unicast")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if let Some(v4) = v6.to_ipv4_mapped() {
                not_public(&IpAddr::V4(v4))
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for public in ["203.0.113.7", "8.8.8.8", "2001:db8::7"] {
            assert_eq!(not_public(&public.parse().unwrap()), None, "{public}");
        }
        for (private, kind) in [
            ("192.168.1.20", "private"),
            ("10.0.0.1", "private"),
            ("127.0.0.1", "loopback"),
            ("100.64.1.1", "carrier-grade NAT (shared)"),
            ("fd00::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("::ffff:10.1.2.3", "private"),
        ] {
            assert_eq!(
                not_public(&private.parse().unwrap()),
                Some(kind),
                "{private}"
            );
        }
    }

    #[test]
    fn answers_are_read_strictly() {
        let url = "http://127.0.0.1:1/";
        assert_eq!(
            parse_address(url, "203.0.113.7\n").unwrap().to_string(),
            "203.0.113.7"
        );
        let html = parse_address(url, "<html>captive portal</html>").unwrap_err();
        assert!(html
            .to_string()
            .contains("answered \"<html>captive portal</html>\", not this machine's address"));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n203.0.113.7\r\n0\r\n\r\n";
        assert_eq!(http_body(chunked).unwrap(), "203.0.113.7");
        assert!(http_body(b"HTTP/1.1 503 Busy\r\n\r\n")
            .unwrap_err()
            .contains("503"));
        assert!(
            parse_url("http://checkip.example.com/").is_err(),
            "plain http off loopback"
        );
        assert!(parse_url("ftp://x/").is_err());
        let https = parse_url("https://checkip.amazonaws.com/").unwrap();
        assert!(https.tls && https.port == 443 && https.path == "/");
        let local = parse_url("http://127.0.0.1:8080").unwrap();
        assert!(!local.tls && local.port == 8080 && local.path == "/");
        let v6 = parse_url("http://[::1]/ip").unwrap();
        assert!(v6.host == "::1" && v6.port == 80 && v6.path == "/ip");
        assert_eq!(parse_url("https://[2001:db8::1]:8443/").unwrap().port, 8443);
        // A chunk boundary inside a multi-byte character, and bytes that are not UTF-8.
        let split = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\xc3\r\n2\r\n\xa9\xff\r\n0\r\n\r\n";
        assert_eq!(http_body(split).unwrap(), "\u{e9}\u{fffd}");
        assert!(
            http_body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc").is_err()
        );
        assert_eq!(
            parse_address(url, "::ffff:203.0.113.7")
                .unwrap()
                .to_string(),
            "203.0.113.7"
        );
    }
}
