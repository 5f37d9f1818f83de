//! dbconnect against throwaway clusters: the witness over verified TLS, and every way a
//! connection fails — wrong password, closed port, no TLS when TLS is required, wrong CA,
//! missing database — each exit 4 with a message that says what to do.

use dbtools::contract::SslMode;
use harness::{PgCluster, Tls, Tool};
use std::time::{Duration, Instant};

fn check(profile: String) -> harness::Run {
    Tool::new("dbconnect").args(["check"]).stdin(profile).run()
}

#[test]
fn witness_over_verify_full_tls() {
    let pg = PgCluster::start(Tls::Required);
    let witness = check(pg.profile("dev", &pg.conn(SslMode::VerifyFull)))
        .expect(0)
        .json();
    assert_eq!(witness["kind"], "dbtools.witness/v1");
    assert_eq!(witness["ssl"]["in_use"], true);
    assert!(witness["ssl"]["version"]
        .as_str()
        .unwrap()
        .starts_with("TLSv1."));
    // The server is the major the pass asked for (make test runs this suite on several).
    if let Some(major) = harness::expected_major() {
        assert!(
            witness["server_version"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{major}.")),
            "{} where the pass asked for PostgreSQL {major}",
            witness["server_version"]
        );
    }
    assert_eq!(witness["database"], "postgres");
    assert_eq!(witness["server_addr"], format!("127.0.0.1:{}", pg.port));
    assert!(witness["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        witness["profile"]["env"], "dev",
        "the witness carries the profile on"
    );
}

#[test]
fn plain_tcp_when_explicitly_disabled() {
    let pg = PgCluster::start(Tls::None);
    let witness = check(pg.profile("dev", &pg.conn(SslMode::Disable)))
        .expect(0)
        .json();
    assert_eq!(witness["ssl"]["in_use"], false);
}

#[test]
fn wrong_password_is_exit_4_and_never_echoes_the_password() {
    let pg = PgCluster::start(Tls::Required);
    // The profile's secret is PGPASSWORD; the tool's holds the wrong one.
    let run = Tool::new("dbconnect")
        .args(["check"])
        .env("PGPASSWORD", "wrong-password-123")
        .stdin(pg.profile("dev", &pg.conn(SslMode::VerifyFull)))
        .run();
    run.expect_error(
        "dbconnect",
        4,
        "authentication failed for user \"postgres\"",
    );
    assert!(!run.stderr.contains("wrong-password-123"));
}

#[test]
fn unreachable_host_fails_fast_with_exit_4() {
    let port = harness::closed_port();
    let profile = format!(
        r#"{{"kind":"dbtools.profile/v2","env":"dev","protection":"open","conn":{{"host":"127.0.0.1","port":{port},"dbname":"d","user":"u","sslmode":"verify-full"}}}}"#
    );
    let started = Instant::now();
    check(profile).expect_error("dbconnect", 4, "connection refused: nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A listener that accepts TCP (the kernel does, from its backlog) and never says a word: a
/// half-open proxy or a black-holed port forward. The TCP connect succeeds, so only an overall
/// deadline stops the TLS/startup exchange from waiting forever.
#[test]
fn a_silent_listener_times_out_at_the_deadline() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let profile = format!(
        r#"{{"kind":"dbtools.profile/v2","env":"dev","protection":"open","conn":{{"host":"127.0.0.1","port":{port},"dbname":"d","user":"u","sslmode":"verify-full"}}}}"#
    );
    let started = Instant::now();
    Tool::new("dbconnect")
        .args(["check", "--timeout", "1"])
        .stdin(profile.clone())
        .run()
        .expect_error("dbconnect", 4, "no answer within 1.0s");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "check must give up at its deadline, took {:?}",
        started.elapsed()
    );
    let waited = Tool::new("dbconnect")
        .args(["wait", "--timeout", "2"])
        .stdin(profile)
        .run();
    waited.expect_error("dbconnect", 4, "gave up after 2.");
    drop(silent);
}

#[test]
fn tls_required_but_server_has_none() {
    let pg = PgCluster::start(Tls::None);
    let mut conn = pg.conn(SslMode::Require);
    conn.sslrootcert = None;
    check(pg.profile("dev", &conn)).expect_error(
        "dbconnect",
        4,
        "the server offers no TLS but sslmode=require requires it",
    );
}

#[test]
fn wrong_ca_with_verify_full_is_refused() {
    let pg = PgCluster::start(Tls::Required);
    let other_ca = harness::TempDir::new("otherca");
    let (cert, _) = dbtools::server::tls::ensure_ca(&other_ca.path).unwrap();
    let mut conn = pg.conn(SslMode::VerifyFull);
    conn.sslrootcert = Some(cert.display().to_string());
    check(pg.profile("dev", &conn)).expect_error(
        "dbconnect",
        4,
        "the server's certificate is not signed by a CA in",
    );
}

#[test]
fn verify_full_checks_the_host_name() {
    let pg = PgCluster::start(Tls::Required);
    let mut conn = pg.conn(SslMode::VerifyFull);
    conn.host = "127.0.0.2".into(); // loopback too, but not in the certificate
    check(pg.profile("dev", &conn)).expect_error(
        "dbconnect",
        4,
        "the certificate does not name 127.0.0.2 (verify-full checks the host name)",
    );
    // verify-ca accepts the same server: the chain is right, only the name differs.
    conn.sslmode = SslMode::VerifyCa;
    check(pg.profile("dev", &conn)).expect(0);
}

#[test]
fn missing_database_is_named() {
    let pg = PgCluster::start(Tls::Offered);
    let mut conn = pg.conn(SslMode::VerifyFull);
    conn.dbname = "no_such_db".into();
    check(pg.profile("dev", &conn)).expect_error(
        "dbconnect",
        4,
        "database \"no_such_db\" does not exist",
    );
}

#[test]
fn wait_gives_up_at_the_timeout_with_progress_on_stderr() {
    let port = harness::closed_port();
    let profile = format!(
        r#"{{"kind":"dbtools.profile/v2","env":"dev","protection":"open","conn":{{"host":"127.0.0.1","port":{port},"dbname":"d","user":"u","sslmode":"disable"}}}}"#
    );
    let started = Instant::now();
    let run = Tool::new("dbconnect")
        .args(["wait", "--timeout", "1.5"])
        .stdin(profile)
        .run();
    run.expect(4);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(6),
        "{elapsed:?}"
    );
    assert!(
        run.stderr.contains("waiting for dev at 127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.lines().last().unwrap().contains("gave up after"),
        "{}",
        run.stderr
    );
}

#[test]
fn wait_returns_the_witness_once_the_server_is_up() {
    let pg = PgCluster::start(Tls::Required);
    pg.stop();
    let profile = pg.profile("dev", &pg.conn(SslMode::VerifyFull));
    let cluster = pg.cluster.clone();
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        cluster.start().unwrap();
    });
    let run = Tool::new("dbconnect")
        .args(["wait", "--timeout", "30"])
        .stdin(profile)
        .run();
    starter.join().unwrap();
    assert_eq!(run.expect(0).json()["ssl"]["in_use"], true);
    assert!(run.stderr.contains("waiting for dev"), "{}", run.stderr);
}

#[test]
fn url_is_redacted_unless_revealed() {
    let pg = PgCluster::start(Tls::None);
    let profile = pg.profile("dev", &pg.conn(SslMode::Disable));
    let run = Tool::new("dbconnect")
        .args(["url"])
        .stdin(profile.clone())
        .run();
    assert!(
        run.expect(0).stdout.contains(":********@127.0.0.1"),
        "{}",
        run.stdout
    );
    let run = Tool::new("dbconnect")
        .args(["url", "--reveal"])
        .stdin(profile)
        .run();
    assert!(
        run.expect(0).stdout.contains(harness::SUPERUSER_PASSWORD),
        "{}",
        run.stdout
    );
}

#[test]
fn psql_runs_with_the_password_in_its_environment_only() {
    let pg = PgCluster::start(Tls::Required);
    // psql stays a moment (pg_sleep) so the sampler sees it: its command line and environment.
    let (run, processes) = harness::sample_processes(&["psql"], || {
        Tool::new("dbconnect")
            .args([
                "psql",
                "--",
                "-XAt",
                "-c",
                "select pg_sleep(0.5)",
                "-c",
                "select current_user || ' ' || ssl from pg_stat_ssl where pid = pg_backend_pid()",
            ])
            .stdin(pg.profile("dev", &pg.conn(SslMode::VerifyFull)))
            .run()
    });
    assert_eq!(run.expect(0).stdout.trim(), "postgres true");
    let password = harness::SUPERUSER_PASSWORD;
    let psql: Vec<_> = processes.iter().filter(|p| p.runs("psql")).collect();
    assert!(
        psql.iter().all(|p| !p.cmdline.contains(password)),
        "psql had the password on its command line: {psql:?}"
    );
    assert!(
        psql.iter()
            .any(|p| p.environ.contains(&format!("PGPASSWORD={password}"))),
        "psql had the password in its environment"
    );
}
