//! The one test harness: throwaway PostgreSQL clusters (with and without TLS), temporary
//! projects with their own `dbtools.toml` and state dir, and the real binaries run with piped
//! stdin and captured stdout, stderr and exit code. Every later tool's tests reuse it.
//!
//! A test that needs PostgreSQL never skips: when the server binaries are missing it fails with
//! the install command. Binaries are found next to the test executable (`target/<profile>/`);
//! `make test` builds them first.

use dbtools::contract::{Conn, SslMode};
use dbtools::server::{self, Cluster, PgBinaries, ServerSettings};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory removed when dropped, readable by the `postgres` user (clusters live in it).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "dbtools-{label}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        dbtools::state::set_mode(&path, 0o755).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The directory holding the built binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    let mut dir = exe.parent().expect("test dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The path of a tool binary; panics with what to run when it is not built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What a finished command left.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as one JSON object.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts the exit code, showing everything when it differs.
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts an error of a command whose stdout is text for a shell or a file: one
    /// `<tool>: …` stderr line containing `needle`, and nothing at all on stdout.
    pub fn expect_text_error(&self, tool: &str, code: i32, needle: &str) -> &Run {
        self.expect(code);
        assert_eq!(self.stdout, "", "stdout of a text command must stay clean");
        let line = self.stderr.trim_end();
        assert!(!line.contains('\n'), "more than one stderr line: {line}");
        assert!(
            line.starts_with(&format!("{tool}: ")),
            "not prefixed: {line}"
        );
        assert!(line.contains(needle), "stderr lacks {needle:?}: {line}");
        self
    }

    /// Asserts an error: the exit code, stderr lines all prefixed `<tool>: ` whose last one (the
    /// error; earlier ones are progress) contains `needle`, and the error object on stdout.
    pub fn expect_error(&self, tool: &str, code: i32, needle: &str) -> &Run {
        self.expect(code);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(!lines.is_empty(), "no stderr line");
        for line in &lines {
            assert!(
                line.starts_with(&format!("{tool}: ")),
                "stderr not prefixed with {tool}: {line}"
            );
        }
        let last = lines[lines.len() - 1];
        assert!(last.contains(needle), "stderr lacks {needle:?}: {last}");
        let error = self.json();
        assert_eq!(error["kind"], "dbtools.error/v1");
        assert_eq!(error["code"], code);
        self
    }
}

/// A command builder for a tool with a clean environment (no DBTOOLS_*, PG*, DATABASE_URL, AWS_*
/// leaking in from the developer's shell).
pub struct Tool {
    command: Command,
    stdin: Option<Vec<u8>>,
    stdin_mode: StdinMode,
}

/// What a tool's stdin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StdinMode {
    /// A pipe: the bytes given (none by default), then closed.
    Pipe,
    /// `/dev/null`, as cron, CI and `ssh -n` give.
    Null,
    /// A pipe kept open, never written, until the tool exits (a runner that never closes it).
    HeldOpen,
}

impl Tool {
    /// A dbtools binary. Its `PGPASSWORD` is the harness password, which the profiles
    /// [`PgCluster::profile`] makes name as their secret (as libpq would read it).
    pub fn new(name: &str) -> Tool {
        Tool::program(bin(name)).env("PGPASSWORD", SUPERUSER_PASSWORD)
    }

    pub fn program(path: impl AsRef<Path>) -> Tool {
        let mut command = Command::new(path.as_ref());
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().to_string();
            // DBTOOLS_PG_BIN stays: it is the test pass's choice of PostgreSQL (make test runs
            // the suites again on other majors), which the servers the tools start must use.
            if (key.starts_with("DBTOOLS_") && key != "DBTOOLS_PG_BIN")
                || key.starts_with("PG")
                || key.starts_with("AWS_")
                || key == "DATABASE_URL"
            {
                command.env_remove(&key);
            }
        }
        command.env("AWS_EC2_METADATA_DISABLED", "true");
        if let Some(mark) = SAMPLE_MARK.with(|m| m.borrow().clone()) {
            command.env(SAMPLE_MARK_VAR, mark);
        }
        // Outside any project unless a test says otherwise: the repository's own dbtools.toml
        // must not decide what a test sees.
        command.current_dir(std::env::temp_dir());
        Tool {
            command,
            stdin: None,
            stdin_mode: StdinMode::Pipe,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    /// `--flag PATH`.
    pub fn arg_path_flag(mut self, flag: &str, path: &Path) -> Tool {
        self.command.arg(flag).arg(path);
        self
    }

    pub fn arg_path(mut self, path: &Path) -> Tool {
        self.command.arg(path);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Tool {
        self.command.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Tool {
        self.command.current_dir(dir);
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Tool {
        self.stdin = Some(bytes.into());
        self
    }

    /// [`Tool::run`], killed (and the test failed, saying so) if it runs past `limit`: for a
    /// tool that once never finished, so the test fails rather than hangs the suite. A hang
    /// guard many times the expected run, not a timing.
    pub fn run_within(self, limit: std::time::Duration, what: &str) -> Run {
        let (sender, receiver) = std::sync::mpsc::channel();
        let pid = std::sync::Arc::new(std::sync::Mutex::new(None::<u32>));
        let (reported, started) = (pid.clone(), std::time::Instant::now());
        std::thread::spawn(move || {
            let _ = sender.send(self.run_reporting(&reported));
        });
        match receiver.recv_timeout(limit) {
            Ok(run) => run,
            Err(_) => {
                if let Some(pid) = *pid.lock().unwrap() {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
                panic!("{what} did not finish in {:?} (killed)", started.elapsed());
            }
        }
    }

    /// stdin from `/dev/null` instead of a pipe.
    pub fn stdin_null(mut self) -> Tool {
        self.stdin_mode = StdinMode::Null;
        self
    }

    /// stdin a pipe that stays open and empty until the tool exits.
    pub fn stdin_held_open(mut self) -> Tool {
        self.stdin_mode = StdinMode::HeldOpen;
        self
    }

    pub fn run(self) -> Run {
        self.run_reporting(&std::sync::Mutex::new(None))
    }

    /// Runs the tool with a terminal for stdin, stdout and stderr (util-linux `script` makes
    /// the pseudo-terminal), as a person at a shell sees it: the returned `stdout` is both
    /// streams as the terminal showed them, line ends as `\n`.
    pub fn run_on_terminal(self) -> Run {
        let quote =
            |text: &std::ffi::OsStr| format!("'{}'", text.to_string_lossy().replace('\'', "'\\''"));
        let mut line = quote(self.command.get_program());
        for arg in self.command.get_args() {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        let mut script = Command::new("script");
        script.args(["-qec", &line, "/dev/null"]);
        for (key, value) in self.command.get_envs() {
            match value {
                Some(value) => script.env(key, value),
                None => script.env_remove(key),
            };
        }
        if let Some(dir) = self.command.get_current_dir() {
            script.current_dir(dir);
        }
        let output = script
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("this test needs util-linux's `script` for a terminal ({e}): apt-get install -y util-linux"));
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n"),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts the tool in the background, its stdin the bytes given (then closed): for a test
    /// that acts while it runs (a signal, a lock let go).
    pub fn spawn(mut self) -> Running {
        self.command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("spawn tool");
        if let Some(mut pipe) = child.stdin.take() {
            let input = self.stdin.unwrap_or_default();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        Running { child }
    }

    fn run_reporting(mut self, pid: &std::sync::Mutex<Option<u32>>) -> Run {
        let stdin = match self.stdin_mode {
            StdinMode::Null => Stdio::null(),
            StdinMode::Pipe | StdinMode::HeldOpen => Stdio::piped(),
        };
        self.command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("spawn tool");
        *pid.lock().unwrap() = Some(child.id());
        let pipe = child.stdin.take();
        let held = match self.stdin_mode {
            StdinMode::HeldOpen => pipe,
            StdinMode::Pipe | StdinMode::Null => {
                let input = self.stdin.unwrap_or_default();
                if let Some(mut pipe) = pipe {
                    std::thread::spawn(move || {
                        let _ = pipe.write_all(&input);
                    });
                }
                None
            }
        };
        let output = child.wait_with_output().expect("wait for tool");
        drop(held);
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A tool running in the background ([`Tool::spawn`]).
pub struct Running {
    child: std::process::Child,
}

impl Running {
    /// Sends `signal` (`INT`, `TERM`, `KILL`) to the tool.
    pub fn signal(&self, signal: &str) {
        Tool::program("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .run()
            .expect(0);
    }

    /// Waits for the tool; killed (and the test failed, saying so) past `limit`, a hang guard.
    pub fn wait_within(self, limit: std::time::Duration, what: &str) -> Run {
        let pid = self.child.id();
        let (sender, receiver) = std::sync::mpsc::channel();
        let child = self.child;
        std::thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        match receiver.recv_timeout(limit) {
            Ok(output) => {
                let output = output.expect("wait for tool");
                Run {
                    code: output.status.code().unwrap_or(-1),
                    stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                }
            }
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("{what} did not finish in {limit:?} (killed)");
            }
        }
    }
}

/// The example config: local dev (open) and test (confirm) instances, one app role each.
pub const LOCAL_DEV_TEST: &str = r#"app = "combine"
[env.dev]
protection = "open"
instance = "combine-dev"
database = "combine_dev"
user = "combine_app"
[env.test]
protection = "confirm"
instance = "combine-test"
database = "combine_test"
user = "combine_app"
[instance.combine-dev]
provider = "local"
[instance.combine-test]
provider = "local"
"#;

/// A temporary project: a directory with `dbtools.toml` and its `.dbtools` state dir. Local
/// instances it provisions are stopped when it is dropped.
pub struct Project {
    pub dir: TempDir,
}

impl Project {
    pub fn new(config: &str) -> Project {
        let dir = TempDir::new("project");
        std::fs::write(dir.path.join("dbtools.toml"), config).unwrap();
        Project { dir }
    }

    /// The example config: local dev (open) and test (confirm) instances.
    pub fn local_dev_test() -> Project {
        Project::new(LOCAL_DEV_TEST)
    }

    pub fn path(&self) -> &Path {
        &self.dir.path
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path.join(".dbtools")
    }

    /// A tool run inside the project.
    pub fn tool(&self, name: &str) -> Tool {
        Tool::new(name).current_dir(self.path())
    }

    /// `rdsprov apply`, asserted to succeed.
    pub fn apply(&self) -> Value {
        self.tool("rdsprov").args(["apply"]).run().expect(0).json()
    }

    /// A profile for an env, asserted to resolve.
    pub fn profile(&self, env: &str) -> String {
        let run = self.tool("dbenv").args(["resolve", env]).run();
        run.expect(0);
        run.stdout
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        stop_local_instances(&self.state());
    }
}

/// Stops every local instance under a state dir (tests clean up after `rdsprov apply`). First it
/// reads each instance's major from its data directory (`PG_VERSION`, written by the initdb that
/// made it; a server refuses a data directory of another major) and fails the test unless it is
/// the one the pass asked for ([`expected_major`]): a pass on PostgreSQL 18 whose tool-started
/// servers ran on the system's 15 would prove nothing about 18. Running or stopped alike.
pub fn stop_local_instances(state: &Path) {
    let Ok(entries) = std::fs::read_dir(state.join("local")) else {
        return;
    };
    let mut wrong = Vec::new();
    let mut dirs = Vec::new();
    for entry in entries.flatten() {
        let data = entry.path().join("data");
        // `.ID.partial-PID` is an instance being made (or one whose making was killed): no
        // server has run on it yet, and its initdb may not have written PG_VERSION.
        if !data.is_dir() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if let Some(expected) = expected_major() {
            let found = std::fs::read_to_string(data.join("PG_VERSION"))
                .ok()
                .and_then(|v| v.trim().parse::<u32>().ok());
            if found != Some(expected) {
                wrong.push(format!(
                    "{} holds PostgreSQL {found:?}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
        dirs.push(entry.path());
    }
    if let Ok(bins) = PgBinaries::locate() {
        for dir in &dirs {
            let data = dir.join("data");
            if data.join("postmaster.pid").exists() {
                let _ = Cluster::new(bins.clone(), data, dir.join("server.log")).stop("immediate");
            }
        }
    }
    assert!(
        wrong.is_empty() || std::thread::panicking(),
        "this pass asked for PostgreSQL {:?} (DBTOOLS_TEST_PG_MAJOR), but {}",
        expected_major(),
        wrong.join(", ")
    );
}

/// The PostgreSQL major this test pass runs on (`DBTOOLS_TEST_PG_MAJOR`, set by make test for
/// each pass); None when a developer runs the tests without saying.
/// Set but empty or not a number is a broken pass, and fails rather than checking nothing.
pub fn expected_major() -> Option<u32> {
    let value = std::env::var("DBTOOLS_TEST_PG_MAJOR").ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| {
        panic!("DBTOOLS_TEST_PG_MAJOR={value:?} is no PostgreSQL major: the pass cannot say what it runs on")
    }))
}

/// The major of the server on loopback `port`, read from the server (`server_version_num`).
pub fn server_major(port: u16, user: &str, password: &str) -> Option<u32> {
    let run = Tool::program("psql")
        .args(["-XAtq", "-c", "show server_version_num"])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGUSER", user)
        .env("PGPASSWORD", password)
        .env("PGDATABASE", "postgres")
        .env("PGSSLMODE", "prefer")
        .run();
    let num = run.stdout.trim().parse::<u32>().ok();
    assert!(
        num.is_some(),
        "cannot ask the server on port {port} its version: {}",
        run.stderr
    );
    num.map(|num| num / 10000)
}

/// Fails the test unless the server on `port` runs the major the pass asked for.
pub fn assert_server_major(port: u16, user: &str, password: &str) {
    if let Some(expected) = expected_major() {
        assert_eq!(
            server_major(port, user, password),
            Some(expected),
            "this pass asked for PostgreSQL {expected} (DBTOOLS_TEST_PG_MAJOR): the server on port {port} says otherwise"
        );
    }
}

/// The password of every throwaway cluster's superuser (tests only; never a real secret).
pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = "harness-only-password";

/// What kind of throwaway cluster a test wants.
#[derive(Debug, Clone, Copy)]
pub enum Tls {
    /// `ssl = off`.
    None,
    /// `ssl = on`, plain TCP still accepted.
    Offered,
    /// `ssl = on` and only `hostssl` lines.
    Required,
}

/// A throwaway PostgreSQL cluster on a free loopback port, stopped and deleted when dropped.
pub struct PgCluster {
    pub cluster: Cluster,
    pub port: u16,
    pub ca_cert: Option<PathBuf>,
    _dir: TempDir,
}

impl PgCluster {
    pub fn start(tls: Tls) -> PgCluster {
        let bins = PgBinaries::locate()
            .unwrap_or_else(|e| panic!("this test needs the PostgreSQL server: {e}"));
        let dir = TempDir::new("pg");
        let data = dir.path.join("data");
        std::fs::create_dir_all(&data).unwrap();
        dbtools::state::set_mode(&data, 0o700).unwrap();
        let pwfile = dir.path.join("pwfile");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).unwrap();
        server::give_to_server_user(&dir.path).unwrap();
        let cluster = Cluster::new(bins, data.clone(), dir.path.join("server.log"));
        cluster.init(SUPERUSER, &pwfile).expect("initdb");
        let mut ca_cert = None;
        if !matches!(tls, Tls::None) {
            let (cert, key) = server::tls::ensure_ca(&dir.path.join("ca")).expect("CA");
            server::tls::issue_server_cert(&cert, &key, &data).expect("server cert");
            ca_cert = Some(cert);
        }
        let mut last_error = None;
        for _ in 0..5 {
            let port = server::free_port().unwrap();
            cluster
                .configure(ServerSettings {
                    // A second loopback address lets tests reach the server by a name its
                    // certificate does not carry.
                    listen_addresses: "127.0.0.1,127.0.0.2",
                    port,
                    tls: !matches!(tls, Tls::None),
                    tls_only: matches!(tls, Tls::Required),
                })
                .unwrap();
            match cluster.start() {
                Ok(()) => {
                    // Made first, so a failed check still stops the server (Drop).
                    let started = PgCluster {
                        cluster,
                        port,
                        ca_cert,
                        _dir: dir,
                    };
                    assert_server_major(port, SUPERUSER, SUPERUSER_PASSWORD);
                    return started;
                }
                Err(e) => last_error = Some(e),
            }
        }
        panic!("cannot start a throwaway cluster: {:?}", last_error);
    }

    /// Superuser connection settings for this cluster.
    pub fn conn(&self, sslmode: SslMode) -> Conn {
        Conn {
            host: "127.0.0.1".into(),
            port: self.port,
            dbname: "postgres".into(),
            user: SUPERUSER.into(),
            password: Some(SUPERUSER_PASSWORD.into()),
            sslmode,
            sslrootcert: self.ca_cert.as_ref().map(|p| p.display().to_string()),
        }
    }

    /// Runs SQL on database `db` as the superuser with psql; returns its trimmed output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let run = Tool::program("psql")
            .args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", SUPERUSER)
            .env("PGPASSWORD", SUPERUSER_PASSWORD)
            .env("PGDATABASE", db)
            .run();
        run.expect(0);
        run.stdout.trim().to_string()
    }

    /// A dbtools.toml whose envs (name, protection) are the databases `db_<env>` of this
    /// cluster, each env as its own superuser `<env>_admin` (see [`PgCluster::login_role`]) over
    /// plain loopback TCP, the password from `$PW`.
    pub fn envs_config(&self, envs: &[(&str, &str)]) -> String {
        envs.iter()
            .map(|(env, protection)| {
                let user = self.login_role(&format!("{env}_admin"));
                format!(
                    "[env.{env}]\nprotection = \"{protection}\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"db_{env}\"\nuser = \"{user}\"\nsecret = \"env:PW\"\nsslmode = \"disable\"\n",
                    self.port
                )
            })
            .collect()
    }

    /// A superuser login `name` with the harness password (created once): envs of different
    /// protection on one cluster need roles of their own, or the config is refused.
    pub fn login_role(&self, name: &str) -> String {
        self.psql(
            "postgres",
            &format!(
                "DO $harness$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN \
                 CREATE ROLE {name} LOGIN SUPERUSER PASSWORD '{SUPERUSER_PASSWORD}'; END IF; END $harness$"
            ),
        );
        name.to_string()
    }

    /// Stamps database `dbname` with `env` (`dbguard stamp`), as the guard wants before writes.
    pub fn stamp(&self, dbname: &str, env: &str) {
        let mut conn = self.conn(if self.ca_cert.is_some() {
            SslMode::VerifyFull
        } else {
            SslMode::Disable
        });
        conn.dbname = dbname.into();
        Tool::new("dbguard")
            .args(["stamp"])
            .stdin(self.profile(env, &conn))
            .run()
            .expect(0);
    }

    /// A profile JSON for this cluster; its password is libpq's `PGPASSWORD`, which [`Tool::new`]
    /// sets to the harness password.
    pub fn profile(&self, env: &str, conn: &Conn) -> String {
        serde_json::json!({
            "kind": "dbtools.profile/v2", "env": env, "protection": "open", "app": "harness", "conn": conn,
            "secret": {"source": "env", "ref": "PGPASSWORD"},
        })
        .to_string()
    }

    pub fn stop(&self) {
        self.cluster.stop("immediate").unwrap();
    }

    /// Waits until no session of `application` is left on the server (a killed client's
    /// backend ends once the server notices), failing the test past 20 s: after it, nothing
    /// that session held can still commit.
    pub fn wait_until_no_session(&self, application: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let query = format!(
            "select count(*) from pg_stat_activity where application_name = '{application}'"
        );
        while self.psql("postgres", &query) != "0" {
            assert!(
                std::time::Instant::now() < deadline,
                "a {application} session outlived its client by 20 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl PgCluster {
    /// Waits until a session of `application` sleeps in `pg_sleep` on the server (failing the
    /// test past 20 s): a kill sent then lands in the middle of the work, not before or after.
    pub fn wait_until_sleeping(&self, application: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let query = format!(
            "select count(*) from pg_stat_activity where application_name = '{application}' and wait_event = 'PgSleep'"
        );
        while self.psql("postgres", &query) == "0" {
            assert!(
                std::time::Instant::now() < deadline,
                "no {application} session reached its pg_sleep within 20 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Kills `child` with SIGKILL and asserts the kill is what ended it: it was still running, and
/// its exit status is the signal (a child that had already finished would prove nothing).
pub fn kill_9(child: &mut std::process::Child, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        child.try_wait().unwrap().is_none(),
        "{what} had already finished before the kill"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "{what} ended by {status:?}, not the kill"
    );
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop("immediate");
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    server::free_port().unwrap()
}

/// moto's standalone AWS server on a free loopback port, behind the AWS double
/// (`tests/support/aws_fault_proxy.py` with no fault rules: where moto is more lenient than
/// AWS, it answers as AWS does), both killed when dropped. Tools run against it get
/// `AWS_ENDPOINT_URL` (the double), fake credentials and `AWS_EC2_METADATA_DISABLED=true` from
/// [`MotoServer::env`], so nothing ever reaches AWS or the instance-metadata endpoint.
pub struct MotoServer {
    pub port: u16,
    child: std::process::Child,
    double: Option<FaultyAws>,
}

pub const AWS_REGION: &str = "eu-west-1";

impl MotoServer {
    pub fn start() -> MotoServer {
        let port = server::free_port().unwrap();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test needs moto's server ({e}): pip install 'moto[server]' (bash scripts/setup-test.sh does)")
            });
        let mut moto = MotoServer {
            port,
            child,
            double: None,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not listen on {port} within 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        moto.double = Some(FaultyAws::start(&moto, serde_json::json!([])));
        moto
    }

    /// Where tools reach AWS: the double in front of moto.
    pub fn endpoint(&self) -> String {
        match &self.double {
            Some(double) => format!("http://127.0.0.1:{}", double.port),
            None => self.upstream(),
        }
    }

    /// moto itself, behind the double.
    fn upstream(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a tool needs to talk to this moto and nothing else.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", AWS_REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/nonexistent".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
        ]
    }

    /// Creates a secret with boto3 (installed with moto), as a user's console or script would.
    /// The value travels on stdin, never argv.
    pub fn create_secret(&self, name: &str, value: &str) -> String {
        let script = "import sys, boto3\n\
            c = boto3.client('secretsmanager', endpoint_url=sys.argv[1], region_name=sys.argv[2])\n\
            print(c.create_secret(Name=sys.argv[3], SecretString=sys.stdin.read())['ARN'])\n";
        let mut tool = Tool::program("python3")
            .args(["-c", script, &self.endpoint(), AWS_REGION, name])
            .stdin(value);
        for (key, val) in self.env() {
            tool = tool.env(key, val);
        }
        let run = tool.run();
        run.expect(0);
        run.stdout.trim().to_string()
    }
}

impl MotoServer {
    /// Runs a boto3 call against this moto (through its double), as an independent client
    /// would, and returns its answer as JSON:
    /// `moto.call("ec2", "describe_security_groups", json!({"GroupIds": [id]}))`.
    pub fn call(&self, service: &str, operation: &str, arguments: Value) -> Value {
        boto3(self, &self.endpoint(), service, operation, arguments)
    }
}

fn boto3(
    moto: &MotoServer,
    endpoint: &str,
    service: &str,
    operation: &str,
    arguments: Value,
) -> Value {
    let script = "import sys, json, boto3\n\
        c = boto3.client(sys.argv[3], endpoint_url=sys.argv[1], region_name=sys.argv[2])\n\
        print(json.dumps(getattr(c, sys.argv[4])(**json.loads(sys.stdin.read())), default=str))\n";
    let mut tool = Tool::program("python3")
        .args(["-c", script, endpoint, AWS_REGION, service, operation])
        .stdin(arguments.to_string());
    for (key, val) in moto.env() {
        tool = tool.env(key, val);
    }
    let run = tool.run();
    run.expect(0);
    serde_json::from_str(&run.stdout).unwrap()
}

/// An HTTP proxy in front of a moto server that makes chosen AWS operations fail or stall
/// (`tests/support/aws_fault_proxy.py`): throttling, 5xx, slow answers — what a real AWS
/// endpoint does now and then, which moto itself never does. All else passes through.
pub struct FaultyAws {
    pub port: u16,
    log: PathBuf,
    child: std::process::Child,
    _dir: TempDir,
}

impl FaultyAws {
    /// `rules`: a JSON list, e.g. `[{"operation": "PutMetricAlarm", "status": 503}]`.
    pub fn start(moto: &MotoServer, rules: Value) -> FaultyAws {
        let dir = TempDir::new("aws-fault");
        let log = dir.path.join("requests.log");
        let port = server::free_port().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/aws_fault_proxy.py");
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(moto.upstream())
            .arg(rules.to_string())
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("this test needs python3 for {}: {e}", script.display()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !log.is_file() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the AWS fault proxy did not listen on {port} within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        FaultyAws {
            port,
            log,
            child,
            _dir: dir,
        }
    }

    /// The (operation, HTTP status) of every request that reached the proxy, in order. Each is
    /// logged before its answer goes out, so once a tool has finished none is missing; a
    /// missing log (the proxy never started, or died) fails the test rather than reading as
    /// "no calls".
    pub fn requests(&self) -> Vec<(String, u16)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| {
                panic!(
                    "the AWS fault proxy's log {} is unreadable ({e}): the proxy did not run",
                    self.log.display()
                )
            })
            .lines()
            // "(Operation by AWS) 200": what the double did by itself, not the tool's call.
            .filter(|line| !line.starts_with('('))
            .filter_map(|line| {
                let (op, status) = line.split_once(' ')?;
                Some((op.to_string(), status.parse().ok()?))
            })
            .collect()
    }
}

impl FaultyAws {
    /// Moves the double's clock `seconds` forward (cumulative): AWS's own moves due by then
    /// (`{"move": …}` rules) show in what it answers.
    pub fn advance(&self, seconds: u64) {
        let mut path = self.log.clone().into_os_string();
        path.push(".clock");
        let moved: u64 = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        std::fs::write(&path, (moved + seconds).to_string()).unwrap();
    }

    /// The parameters of each form-encoded request of `operation` (RDS, EC2, CloudWatch, SNS
    /// speak the Query protocol), in order: what the tool sent, whatever moto kept of it.
    pub fn params(&self, operation: &str) -> Vec<Value> {
        let mut path = self.log.clone().into_os_string();
        path.push(".params");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["operation"] == operation)
            .map(|entry| entry["params"].clone())
            .collect()
    }
}

impl FaultyAws {
    /// A boto3 call through this double, as a colleague's console or script would make it
    /// (AWS's own moves then follow it: a stopped instance starts by itself seven days later).
    pub fn call(
        &self,
        moto: &MotoServer,
        service: &str,
        operation: &str,
        arguments: Value,
    ) -> Value {
        boto3(
            moto,
            &format!("http://127.0.0.1:{}", self.port),
            service,
            operation,
            arguments,
        )
    }
}

impl Drop for FaultyAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tool {
    /// Points the tool at a moto server.
    pub fn aws(mut self, moto: &MotoServer) -> Tool {
        for (key, value) in moto.env() {
            self = self.env(key, value);
        }
        self
    }

    /// Points the tool at a moto server through a fault proxy.
    pub fn aws_through(self, moto: &MotoServer, faults: &FaultyAws) -> Tool {
        self.aws(moto).env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", faults.port),
        )
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.double = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One process seen by [`sample_processes`]: its command line and its environment, each with
/// NULs as spaces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sampled {
    pub cmdline: String,
    pub environ: String,
}

impl Sampled {
    /// Whether this process is `program`: its argv[0]'s file name, or, for `runuser … --
    /// PROGRAM …` (servers run as postgres), the program after `--`.
    pub fn runs(&self, program: &str) -> bool {
        let words: Vec<&str> = self.cmdline.split(' ').collect();
        let is = |word: &str| Path::new(word).file_name().is_some_and(|n| n == program);
        match words.first() {
            Some(first) if is(first) => true,
            Some(first) if first.ends_with("runuser") => words
                .iter()
                .position(|w| *w == "--")
                .and_then(|i| words.get(i + 1))
                .is_some_and(|w| is(w)),
            _ => false,
        }
    }
}

thread_local! {
    /// The marker of the sampling that runs on this thread: [`Tool`] puts it in the environment
    /// of what it starts, so the sampler counts this test's processes only (tests run side by
    /// side in one process).
    static SAMPLE_MARK: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The environment variable carrying [`SAMPLE_MARK`].
const SAMPLE_MARK_VAR: &str = "HARNESS_SAMPLE_MARK";

/// Every distinct process (command line and environment from /proc) seen while `work` runs.
/// Fails the test unless a process of each of `expected` was seen: a sampler that saw nothing
/// proves nothing about what it guards.
pub fn sample_processes<T>(
    expected: &[&str],
    work: impl FnOnce() -> T,
) -> (T, std::collections::BTreeSet<Sampled>) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mark = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let needle = format!("{SAMPLE_MARK_VAR}={mark}");
    SAMPLE_MARK.with(|m| *m.borrow_mut() = Some(mark));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let sampler = {
        let (done, seen) = (done.clone(), seen.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) else {
                        continue;
                    };
                    if bytes.is_empty() {
                        continue;
                    }
                    let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
                    let environ = String::from_utf8_lossy(&environ).replace('\0', " ");
                    // Only this sampling's processes (another test's may run beside it).
                    if !environ.split(' ').any(|var| var == needle) {
                        continue;
                    }
                    seen.lock().unwrap().insert(Sampled {
                        cmdline: String::from_utf8_lossy(&bytes).replace('\0', " "),
                        environ,
                    });
                }
            }
        })
    };
    let result = work();
    SAMPLE_MARK.with(|m| *m.borrow_mut() = None);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    sampler.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    for program in expected {
        assert!(
            seen.iter().any(|p| p.runs(program)),
            "the sampler never saw {program} run, so it checked nothing about it"
        );
    }
    (result, seen)
}

/// Every distinct /proc/*/cmdline seen while `work` runs; fails unless each of `expected` was
/// seen (see [`sample_processes`]).
pub fn sample_cmdlines<T>(
    expected: &[&str],
    work: impl FnOnce() -> T,
) -> (T, std::collections::BTreeSet<String>) {
    let (result, seen) = sample_processes(expected, work);
    (result, seen.into_iter().map(|p| p.cmdline).collect())
}

/// Every password in a state dir's local secret store.
pub fn secret_passwords(state: &Path) -> Vec<String> {
    let mut passwords = Vec::new();
    let mut stack = vec![state.join("secrets")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            } else {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                let value: Value = serde_json::from_str(&text).unwrap();
                passwords.push(value["password"].as_str().unwrap().to_string());
            }
        }
    }
    passwords
}

/// A TCP forwarder on loopback whose connections a test can cut at any moment, as a dropped
/// home-network link would.
pub struct CutProxy {
    pub port: u16,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl CutProxy {
    pub fn start(target_port: u16) -> CutProxy {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let streams = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let registry = streams.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let mut all = registry.lock().unwrap();
                all.push(client.try_clone().unwrap());
                all.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CutProxy { port, streams }
    }

    /// Cuts every connection through the proxy, both ways.
    pub fn cut(&self) {
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// A check-IP endpoint on loopback (plain HTTP, which `rdsprov` accepts from loopback only):
/// answers every GET with what `set` last gave it, as checkip.amazonaws.com answers with the
/// caller's public address. `set` a new address to play an ISP that changed it, or garbage.
pub struct CheckIp {
    pub port: u16,
    answer: std::sync::Arc<std::sync::Mutex<(u16, String)>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CheckIp {
    pub fn start(address: &str) -> CheckIp {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = std::sync::Arc::new(std::sync::Mutex::new((200, format!("{address}\n"))));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (shared, stopping) = (answer.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut request = [0u8; 2048];
                let _ = std::io::Read::read(&mut stream, &mut request);
                let (status, body) = shared.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        CheckIp { port, answer, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// What the next GETs get (200).
    pub fn set(&self, body: &str) {
        *self.answer.lock().unwrap() = (200, body.to_string());
    }
}

impl Drop for CheckIp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
