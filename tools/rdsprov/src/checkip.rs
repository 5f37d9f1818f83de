//! This machine's public address as the internet sees it: one GET to a check-IP endpoint that
//! answers the caller's address as text (AWS's https://checkip.amazonaws.com/ by default;
//! `DBTOOLS_CHECKIP_URL` or `[access] checkip_url` choose another). HTTPS, verified against
//! the OS's trust store; plain HTTP only to a loopback host (a local relay, or a test's
//! server). The answer must be one public IPv4 or IPv6 address: anything else — garbage, an
//! HTML page, a private or loopback address from a misconfigured proxy — is an error, and the
//! caller changes no rule.

use dbtools::config::Config;
use dbtools::{envvars, Error, Result};
use std::net::IpAddr;
use std::time::Duration;
use ureq::http::Uri;
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

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

/// `https://…`, or `http://…` to a loopback host only.
fn checked_url(url: &str) -> Result<Uri> {
    let bad = || {
        Error::BadInput(format!(
            "check-IP endpoint {url:?}: use an https:// URL (http:// only to a loopback host)"
        ))
    };
    let uri: Uri = url.parse().map_err(|_| bad())?;
    let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(bad)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if loopback => Ok(uri),
        _ => Err(bad()),
    }
}

/// Asks `url` for this machine's public address: HTTPS through native-tls with the OS's trust
/// store, redirects not followed (an answer must come from the endpoint named).
pub(crate) fn public_address(url: &str) -> Result<IpAddr> {
    let uri = checked_url(url)?;
    let unreachable = |why: String| {
        Error::Unreachable(format!(
            "check-IP endpoint {url} cannot be reached ({why}): no rule was changed; check the network, or point DBTOOLS_CHECKIP_URL at another endpoint"
        ))
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent("dbtools-rdsprov")
        .tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::NativeTls)
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into();
    let mut answer = agent
        .get(uri)
        .header("Accept", "text/plain")
        .call()
        .map_err(|e| unreachable(e.to_string()))?;
    if answer.status() != 200 {
        let status = answer.status();
        return Err(garbage(
            url,
            &format!(
                "\"{} {}\"",
                status.as_u16(),
                status.canonical_reason().unwrap_or_default()
            ),
        ));
    }
    let body = answer
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER)
        .lossy_utf8(true)
        .read_to_string()
        .map_err(|e| garbage(url, &format!("an unreadable body ({e})")))?;
    parse_address(url, &body)
}

fn garbage(url: &str, why: &str) -> Error {
    Error::BadInput(format!(
        "check-IP endpoint {url} answered {why}, not this machine's address: no rule was changed"
    ))
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
        assert_eq!(
            parse_address(url, "::ffff:203.0.113.7")
                .unwrap()
                .to_string(),
            "203.0.113.7"
        );
    }

    #[test]
    fn only_https_or_loopback_http_is_asked() {
        for refused in [
            "http://checkip.example.com/",
            "ftp://x/",
            "checkip.amazonaws.com",
            "http:///ip",
            "http://127.0.0.1.example.com/",
        ] {
            assert!(checked_url(refused).is_err(), "{refused}");
        }
        for accepted in [
            "https://checkip.amazonaws.com/",
            "http://127.0.0.1:8080",
            "http://[::1]/ip",
            "http://localhost:9/",
            "https://[2001:db8::1]:8443/",
        ] {
            assert!(checked_url(accepted).is_ok(), "{accepted}");
        }
    }
}
