//! The benchmarks' latency proxy (`scripts/bench/latency_proxy.py`), which README's figures rest
//! on: it relays both ways in order, counts a client's turns exactly, passes a real PostgreSQL
//! session through, and refuses any target that is not loopback.

use harness::{PgCluster, Tls, Tool};
use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

struct Proxy {
    child: Child,
    port: u16,
    stderr: std::io::BufReader<std::process::ChildStderr>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let port = dbtools::server::free_port().unwrap();
        let mut child = Command::new("python3")
            .arg(harness::repo_root().join("scripts/bench/latency_proxy.py"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--target", &format!("127.0.0.1:{target}")])
            .args(["--delay-ms", "2", "--count"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "listening");
        Proxy {
            child,
            port,
            stderr,
        }
    }

    /// Stops it (SIGTERM) and returns the turns it counted.
    fn turns(mut self) -> u64 {
        Tool::program("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .run()
            .expect(0);
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        assert!(self.child.wait().unwrap().success(), "{rest}");
        rest.lines()
            .find_map(|l| l.strip_prefix("turns="))
            .unwrap_or_else(|| panic!("no turns= line: {rest}"))
            .parse()
            .unwrap()
    }
}

/// An upper-casing server on loopback: it answers each line once the line is complete, so a
/// client may send a line in several pieces before the one answer.
fn shouting_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let answer = format!("{}\n", line.to_ascii_uppercase());
                    if writer.write_all(answer.as_bytes()).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// Sends `pieces` (a pause between them, so each reaches the proxy as a chunk of its own) and
/// reads the one answer line.
fn exchange(stream: &mut TcpStream, pieces: &[&str]) -> String {
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        stream.write_all(piece.as_bytes()).unwrap();
    }
    let mut answer = String::new();
    std::io::BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut answer)
        .unwrap();
    answer.trim_end().to_string()
}

#[test]
fn the_proxy_relays_in_order_and_counts_each_client_turn() {
    let proxy = Proxy::start(shouting_server());
    let mut first = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    assert_eq!(exchange(&mut first, &["ping\n"]), "PING");
    // One turn in three pieces: the client speaks again only after the server did.
    assert_eq!(exchange(&mut first, &["po", "n", "g\n"]), "PONG");
    assert_eq!(
        exchange(&mut first, &["a longer third message\n"]),
        "A LONGER THIRD MESSAGE"
    );
    let mut second = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    assert_eq!(exchange(&mut second, &["again\n"]), "AGAIN");
    drop((first, second));
    assert_eq!(
        proxy.turns(),
        4,
        "three turns on one connection, one on the other"
    );
}

#[test]
fn a_postgres_session_passes_through() {
    let pg = PgCluster::start(Tls::Offered);
    let proxy = Proxy::start(pg.port);
    let run = Tool::program("psql")
        .args(["-XAtq", "-c", "select 41 + 1"])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", proxy.port.to_string())
        .env("PGUSER", harness::SUPERUSER)
        .env("PGPASSWORD", harness::SUPERUSER_PASSWORD)
        .env("PGDATABASE", "postgres")
        .env("PGSSLMODE", "require")
        .run();
    assert_eq!(run.expect(0).stdout.trim(), "42");
    // TLS request, TLS handshake, startup, SCRAM (two), the query: several turns, counted.
    assert!(proxy.turns() >= 4);
}

#[test]
fn a_target_off_loopback_is_refused() {
    for target in ["192.0.2.1:5432", "127.evil.example:5432"] {
        let run = Tool::program("python3")
            .arg_path(&harness::repo_root().join("scripts/bench/latency_proxy.py"))
            .args(["--listen", "127.0.0.1:1", "--target", target])
            .run();
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("loopback addresses only"),
            "{}",
            run.stderr
        );
    }
}
