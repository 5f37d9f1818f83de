//! `dbconnect doctor`: the chain a person would walk when a connection fails, one step at a
//! time, each one line with what it found and, on failure, the exact fix — stopping at the
//! first failure with its exit code:
//!
//! DNS → TCP (on failure, for an RDS instance: what AWS says — instance status, public
//! accessibility, whether the security group admits this machine's address, via
//! `rdsprov access show`) → TLS (the SSLRequest and handshake alone, so a CA or host-name
//! problem is told apart from a password problem) → authentication (an AWS secret is read
//! again once when refused) → database → env stamp → migrations (`dbmigrate status`).
//!
//! Exit codes: 0 every step passed · 1 migrations pending or changed · 2 the profile's own
//! settings are broken (e.g. a CA file that cannot be read) · 3 the env stamp does not match ·
//! 4 cannot connect (DNS, TCP, TLS, authentication, database).

use dbtools::contract::{Access, Doctor, DoctorStep, MigrateStatus, Profile, StepOutcome};
use dbtools::output::Output;
use dbtools::{pg, resolve, secrets, Error, ExitStatus, Result};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

const TOOL: &str = "dbconnect";

/// The steps walked so far.
struct Walk {
    steps: Vec<DoctorStep>,
}

impl Walk {
    fn ok(&mut self, step: &str, found: impl Into<String>) {
        self.push(step, StepOutcome::Ok, found.into(), None);
    }

    fn skipped(&mut self, step: &str, why: impl Into<String>) {
        self.push(step, StepOutcome::Skipped, why.into(), None);
    }

    fn failed(&mut self, step: &str, found: impl Into<String>, fix: Option<String>) {
        self.push(step, StepOutcome::Failed, found.into(), fix);
    }

    fn push(&mut self, step: &str, outcome: StepOutcome, found: String, fix: Option<String>) {
        self.steps.push(DoctorStep {
            step: step.into(),
            outcome,
            found,
            fix,
        });
    }
}

pub(crate) fn run(out: Output, profile: Profile, timeout: Duration) -> Result<ExitStatus> {
    let mut walk = Walk { steps: Vec::new() };
    let status = diagnose(&mut walk, &profile, timeout);
    let shown = profile.clone();
    let report = Doctor {
        env: profile.env.clone(),
        ok: status == ExitStatus::Success,
        code: status.code(),
        steps: walk.steps,
        profile: shown,
    };
    out.emit(&report, || render(&report))?;
    Ok(status)
}

fn render(report: &Doctor) -> String {
    let mut text = String::new();
    for step in &report.steps {
        let mark = match step.outcome {
            StepOutcome::Ok => "✓",
            StepOutcome::Failed => "✗",
            StepOutcome::Skipped => "-",
        };
        text.push_str(&format!("{mark} {:<11} {}\n", step.step, step.found));
        if let Some(fix) = &step.fix {
            text.push_str(&format!("  {:<11} fix: {fix}\n", ""));
        }
    }
    text.push_str(if report.ok {
        "env is reachable and ready\n"
    } else {
        "stopped at the first failure\n"
    });
    text
}

fn diagnose(walk: &mut Walk, profile: &Profile, timeout: Duration) -> ExitStatus {
    let conn = &profile.conn;
    let target = format!("{}:{}", conn.host, conn.port);

    // DNS.
    let addresses: Vec<SocketAddr> = match (conn.host.as_str(), conn.port).to_socket_addrs() {
        Ok(found) => found.collect(),
        Err(e) => {
            walk.failed(
                "dns",
                format!("{} does not resolve ({e})", conn.host),
                Some(format!(
                    "check host of env {} in dbtools.toml (for RDS: the endpoint `rdsprov status --spec …` prints)",
                    profile.env
                )),
            );
            return ExitStatus::Unreachable;
        }
    };
    let listed: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
    walk.ok("dns", format!("{} → {}", conn.host, listed.join(", ")));

    // TCP.
    let mut last_error = None;
    let mut stream = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, timeout) {
            Ok(open) => {
                stream = Some((open, *address));
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some((stream, address)) = stream else {
        let error = last_error.map(|e| e.kind());
        let (found, fix) = match error {
            Some(std::io::ErrorKind::ConnectionRefused) => (
                format!("{target}: connection refused — nothing listens there"),
                format!(
                    "start the instance (`rdsprov start --env {0}` locally; `rdsprov status` shows it) or fix port of env {0} in dbtools.toml",
                    profile.env
                ),
            ),
            _ => (
                format!(
                    "{target}: no answer within {:.0}s — traffic is dropped on the way",
                    timeout.as_secs_f64()
                ),
                "a security group, firewall or VPN drops it: see the aws line below".to_string(),
            ),
        };
        walk.failed("tcp", found, Some(fix));
        aws_step(walk, profile);
        return ExitStatus::Unreachable;
    };
    walk.ok("tcp", format!("{target} accepts connections ({address})"));

    // TLS.
    match pg::probe_tls(conn, stream, timeout) {
        Ok(pg::TlsProbe::Plain) => walk.ok(
            "tls",
            format!(
                "none (sslmode={}): the password and data travel in the clear",
                conn.sslmode.as_str()
            ),
        ),
        Ok(pg::TlsProbe::Established { verified: true }) => walk.ok(
            "tls",
            format!(
                "established; certificate verified ({}) against {}",
                conn.sslmode.as_str(),
                conn.sslrootcert.as_deref().unwrap_or("the system trust store")
            ),
        ),
        Ok(pg::TlsProbe::Established { verified: false }) => walk.ok(
            "tls",
            format!(
                "established, certificate not checked (sslmode={}): verify-full with sslrootcert also proves the server is the right one",
                conn.sslmode.as_str()
            ),
        ),
        Err(error) => {
            let fix = if error.message().contains("cannot be read") {
                format!(
                    "download the CA bundle that signed the server's certificate and point sslrootcert of env {} at it (for RDS: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem); verify-full needs it to prove the server is the right one",
                    profile.env
                )
            } else if error.message().contains("certificate") {
                // The message names the fix (the CA file, the host name to use).
                String::new()
            } else {
                format!(
                    "something at {target} answers TCP but not PostgreSQL's TLS request: check that the port is PostgreSQL's (not another service, nor a proxy that holds connections)"
                )
            };
            walk.failed("tls", error.message(), Some(fix).filter(|f| !f.is_empty()));
            return error.status();
        }
    }

    // Authentication and database, in one login (the server checks the password first).
    let mut attempts = 0;
    let connected = resolve::connect_fresh(profile, TOOL, |conn| {
        attempts += 1;
        pg::connect(conn, TOOL, timeout)
    });
    let source = profile
        .secret
        .as_ref()
        .map(|s| format!("secret {s}"))
        .unwrap_or_else(|| "the profile".into());
    let mut client = match connected {
        Ok(client) => {
            walk.ok(
                "auth",
                if attempts > 1 {
                    format!(
                        "user {} logged in after reading {source} again: it had changed since the profile was resolved (rotated)",
                        conn.user
                    )
                } else {
                    format!("user {} logged in (password from {source})", conn.user)
                },
            );
            client
        }
        Err(error) if error.message().contains("(3D000)") => {
            walk.ok("auth", format!("user {} logged in", conn.user));
            walk.failed(
                "database",
                format!("database {:?} does not exist on {target}", conn.dbname),
                Some(format!(
                    "`rdsprov apply` creates each env's database (local provider); or fix database of env {} in dbtools.toml",
                    profile.env
                )),
            );
            return ExitStatus::Unreachable;
        }
        Err(error) => {
            let fix = if pg::is_auth_failure(&error) {
                format!(
                    "the password from {source} is not the server's: put the right one in the secret (or reset the role's password: `rdsprov apply` for local envs)"
                )
            } else {
                // The server's own reason, with what to do, is in the message.
                String::new()
            };
            walk.failed("auth", error.message(), Some(fix).filter(|f| !f.is_empty()));
            return error.status();
        }
    };
    let version = client
        .simple_query("SHOW server_version")
        .ok()
        .and_then(|messages| {
            messages.into_iter().find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
        })
        .unwrap_or_default();
    walk.ok(
        "database",
        format!("{} on PostgreSQL {version}", conn.dbname),
    );

    // The env stamp: is this database the env's, and not a copy of another?
    let reading = match dbtools::stamp::read(&mut client) {
        Ok(reading) => reading,
        Err(error) => {
            walk.failed("stamp", error.message(), None);
            return error.status();
        }
    };
    match &reading.stamp {
        Some(stamp) if stamp.env == profile.env && reading.is_logical_copy() => {
            walk.failed(
                "stamp",
                format!(
                    "this database is a copy: its {} stamp was written in {}, so tools that write refuse it",
                    stamp.env,
                    stamp.identity.as_ref().map(|i| i.to_string()).unwrap_or_default()
                ),
                Some(format!(
                    "if env {} is to own this copy, adopt it: `dbguard adopt {}` (with --confirm {} on a protected env); that is recorded in the audit",
                    profile.env, profile.env, profile.env
                )),
            );
            return ExitStatus::Refused;
        }
        Some(stamp) if stamp.env == profile.env => walk.ok(
            "stamp",
            format!(
                "stamped {} ({}, by {} at {})",
                stamp.env,
                stamp.protection.as_str(),
                stamp.stamped_by,
                stamp.stamped_at
            ),
        ),
        Some(stamp) => {
            walk.failed(
                "stamp",
                format!(
                    "this database is stamped {}, but the profile is env {}",
                    stamp.env, profile.env
                ),
                Some(format!(
                    "either the profile points at env {stamped}'s database by mistake: fix host, port and database of env {env} in dbtools.toml; or this is a copy of {stamped}'s database made for {env} (a restored snapshot, a loaded dump): adopt it with `dbguard adopt {env}`, which refuses the real {stamped} database. Re-stamping {stamped}'s own database needs `--confirm {stamped}`",
                    stamped = stamp.env,
                    env = profile.env
                )),
            );
            return ExitStatus::Refused;
        }
        None => {
            walk.failed(
                "stamp",
                "this database carries no env stamp: tools that write refuse it",
                Some(format!(
                    "`dbguard stamp {}` — only if this database really is env {}'s",
                    profile.env, profile.env
                )),
            );
            return ExitStatus::Refused;
        }
    }
    drop(client);

    // Migrations, as `dbmigrate status` sees them.
    migrations_step(walk, profile)
}

/// For an AWS instance (the profile's, or the one an RDS endpoint names): what AWS says about
/// it; otherwise why there is nothing to ask.
fn aws_step(walk: &mut Walk, profile: &Profile) {
    let from_profile = profile
        .instance
        .as_ref()
        .filter(|i| i.provider == dbtools::contract::Provider::Aws)
        .map(|i| (i.id.clone(), i.region.clone()));
    let Some((id, region)) = from_profile.or_else(|| rds_endpoint(&profile.conn.host)) else {
        walk.skipped(
            "aws",
            format!(
                "{} is not an RDS endpoint and the profile names no AWS instance: nothing to ask AWS",
                profile.conn.host
            ),
        );
        return;
    };
    let mut args = vec!["access", "show", "--json", "--instance", &id];
    if let Some(region) = &region {
        args.extend(["--region", region]);
    }
    // The check-IP endpoint may be unreachable for the same reason the database is: then
    // AWS's answer about the instance still helps, without this machine's address.
    let asked = secrets::run_sibling("rdsprov", &args, None).or_else(|error| {
        if error.message().contains("check-IP endpoint") {
            let mut offline = args.clone();
            offline.push("--offline");
            secrets::run_sibling("rdsprov", &offline, None)
        } else {
            Err(error)
        }
    });
    let answer = match asked {
        Ok(text) => serde_json::from_str::<Access>(&text).map_err(|e| {
            Error::Failed(format!(
                "rdsprov access show printed an unreadable answer: {e}"
            ))
        }),
        Err(error) => Err(error),
    };
    let access = match answer {
        Ok(access) => access,
        Err(error) => {
            walk.failed(
                "aws",
                format!("asking AWS about {id} failed: {}", error.message()),
                None,
            );
            return;
        }
    };
    let status = access.status.clone().unwrap_or_default();
    let group = access.security_group.clone().unwrap_or_default();
    let address = access.address.clone().unwrap_or_default();
    if status != "available" {
        walk.failed(
            "aws",
            format!("{id} is {status}"),
            Some(if status == "stopped" {
                format!("start it (`aws rds start-db-instance --db-instance-identifier {id}`; an Aurora cluster: `aws rds start-db-cluster --db-cluster-identifier {id}`; or the console), then `rdsprov wait`")
            } else {
                "wait until it is available (`rdsprov wait`)".into()
            }),
        );
    } else if access.publicly_accessible == Some(false) {
        walk.failed(
            "aws",
            format!("{id} is available but not publicly accessible: nothing outside its VPC reaches it"),
            Some(format!(
                "set publicly_accessible = true for env {} in the spec and `rdsprov apply --spec …` (or connect from inside the VPC)",
                profile.env
            )),
        );
    } else if access.address.is_none() {
        walk.failed(
            "aws",
            format!("{id} is available and public; this machine's public address is unknown (the check-IP endpoint did not answer either): is the network itself down?"),
            Some(format!("check this machine's internet connection, then `rdsprov access show {}`", profile.env)),
        );
    } else if !access.admitted {
        walk.failed(
            "aws",
            format!(
                "{id} is available and public, but security group {group} does not admit this machine's address {address} (the home address changed, or a new machine?)"
            ),
            Some(format!("run `rdsprov access allow-current {}`", profile.env)),
        );
    } else {
        walk.ok(
            "aws",
            format!(
                "{id} is available, public, and {group} admits {address}: the block is elsewhere (a local firewall, a VPN, the ISP)"
            ),
        );
    }
}

/// `<id>.<hash>.<region>.rds.amazonaws.com` (or `<id>.cluster-<hash>.…`): the id and region.
fn rds_endpoint(host: &str) -> Option<(String, Option<String>)> {
    let rest = host.strip_suffix(".rds.amazonaws.com")?;
    let parts: Vec<&str> = rest.split('.').collect();
    match parts.as_slice() {
        [id, _hash, region] => Some((id.to_string(), Some(region.to_string()))),
        _ => None,
    }
}

fn migrations_step(walk: &mut Walk, profile: &Profile) -> ExitStatus {
    let input = match serde_json::to_string(profile) {
        Ok(text) => text,
        Err(e) => {
            walk.failed("migrations", e.to_string(), None);
            return ExitStatus::Failed;
        }
    };
    let status = match secrets::run_sibling("dbmigrate", &["status", "--json"], Some(&input))
        .and_then(|text| {
            serde_json::from_str::<MigrateStatus>(&text).map_err(|e| {
                Error::Failed(format!(
                    "dbmigrate status printed an unreadable answer: {e}"
                ))
            })
        }) {
        Ok(status) => status,
        Err(error) => {
            walk.skipped("migrations", format!("not checked: {}", error.message()));
            return ExitStatus::Success;
        }
    };
    let total = status.migrations.len();
    if status.changed + status.missing > 0 {
        walk.failed(
            "migrations",
            format!(
                "{} changed since applied, {} applied but missing here",
                status.changed, status.missing
            ),
            Some(format!(
                "`dbmigrate status --env {}` lists them",
                profile.env
            )),
        );
        return ExitStatus::Negative;
    }
    if status.pending > 0 {
        walk.failed(
            "migrations",
            format!("{} of {total} pending", status.pending),
            Some(format!("`make migrate ENV={}` (dbmigrate up)", profile.env)),
        );
        return ExitStatus::Negative;
    }
    walk.ok("migrations", format!("all {total} applied"));
    ExitStatus::Success
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rds_endpoints_name_their_instance() {
        assert_eq!(
            rds_endpoint("combine-dev.abc123xyz.eu-west-1.rds.amazonaws.com"),
            Some(("combine-dev".into(), Some("eu-west-1".into())))
        );
        assert_eq!(
            rds_endpoint("intranet.cluster-abc.eu-west-1.rds.amazonaws.com"),
            Some(("intranet".into(), Some("eu-west-1".into())))
        );
        assert_eq!(rds_endpoint("db.example.com"), None);
        assert_eq!(rds_endpoint("127.0.0.1"), None);
    }

    #[test]
    fn a_terminal_gets_one_line_per_step_and_the_fix_under_the_failure() {
        let mut walk = Walk { steps: Vec::new() };
        walk.ok("dns", "db → 127.0.0.1");
        walk.failed("tcp", "refused", Some("start it".into()));
        walk.skipped("aws", "not RDS");
        let profile: Profile = serde_json::from_value(serde_json::json!({
            "kind": "dbtools.profile/v2", "env": "dev", "protection": "open",
            "conn": {"host": "db", "port": 5432, "dbname": "d", "user": "u", "sslmode": "disable"}
        }))
        .unwrap();
        let report = Doctor {
            env: "dev".into(),
            ok: false,
            code: 4,
            steps: walk.steps,
            profile,
        };
        assert_eq!(
            render(&report),
            "✓ dns         db → 127.0.0.1\n✗ tcp         refused\n              fix: start it\n- aws         not RDS\nstopped at the first failure\n"
        );
    }
}
