//! Running real PostgreSQL servers on loopback: finding the server binaries, initdb, TLS files,
//! pg_ctl start/stop. Used by `rdsprov`'s local provider and by the test harness, so both run the
//! server exactly the same way. PostgreSQL refuses to run as root: when we are root, every server
//! command runs as the `postgres` user (`runuser -u postgres --`) and the files it needs are its own.

use crate::envvars;
use crate::exit::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The user servers run as when we are root.
pub const SERVER_USER: &str = "postgres";

const INSTALL_HINT: &str =
    "install the PostgreSQL server (`bash scripts/setup.sh`, or `apt-get install -y postgresql`), or set DBTOOLS_PG_BIN to the directory holding initdb and pg_ctl";

/// Why the local provider does not run on Windows, and what to use there. It starts
/// PostgreSQL as the `postgres` user through `runuser`, hands files over with `chown` and relies
/// on POSIX modes for its keys; none of that exists on Windows, and Windows PostgreSQL builds
/// cannot be exercised on our build machines (README, "Windows").
pub const WINDOWS_REFUSAL: &str = "the local provider (`provider = \"local\"`) runs PostgreSQL on Linux or macOS only: on Windows, use an AWS env (`provider = \"aws\"`, `rdsprov plan/apply --spec`), or run the tools and the local instances inside WSL";

/// The directory with `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub dir: PathBuf,
}

impl PgBinaries {
    /// `DBTOOLS_PG_BIN`, else the newest `/usr/lib/postgresql/<major>/bin`, else `initdb` on PATH.
    /// On Windows: a refusal that says what to use instead (see [`WINDOWS_REFUSAL`]).
    pub fn locate() -> Result<PgBinaries> {
        if cfg!(windows) {
            return Err(Error::BadInput(WINDOWS_REFUSAL.to_string()));
        }
        let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
        if let Some(dir) = std::env::var_os(envvars::DBTOOLS_PG_BIN).filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            if has_server(&dir) {
                return Ok(PgBinaries { dir });
            }
            return Err(Error::BadInput(format!(
                "DBTOOLS_PG_BIN={} has no initdb and pg_ctl: {INSTALL_HINT}",
                dir.display()
            )));
        }
        let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
                Some((major, entry.path().join("bin")))
            })
            .filter(|(_, dir)| has_server(dir))
            .collect();
        majors.sort();
        if let Some((_, dir)) = majors.pop() {
            return Ok(PgBinaries { dir });
        }
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).find(|dir| has_server(dir)))
            .unwrap_or_default();
        on_path.map(|dir| PgBinaries { dir }).ok_or_else(|| {
            Error::BadInput(format!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL_HINT}"
            ))
        })
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The server's version, e.g. "15.18".
    pub fn version(&self) -> Result<String> {
        let output = Command::new(self.tool("postgres"))
            .arg("--version")
            .output()
            .map_err(|e| {
                Error::BadInput(format!(
                    "cannot run {}: {e}; {INSTALL_HINT}",
                    self.tool("postgres").display()
                ))
            })?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        text.split_whitespace()
            .nth(2)
            .map(str::to_string)
            .ok_or_else(|| Error::Failed(format!("unexpected `postgres --version` output: {text}")))
    }
}

/// True when this process runs as root, so servers must run as `postgres`.
#[allow(unsafe_code)]
pub fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// uid and gid of the server user, when we are root and must hand files to it.
#[cfg(unix)]
fn server_owner() -> Result<Option<(u32, u32)>> {
    if !running_as_root() {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let line = passwd
        .lines()
        .find(|line| line.split(':').next() == Some(SERVER_USER))
        .ok_or_else(|| Error::BadInput(format!(
            "running as root, but there is no {SERVER_USER} user to run PostgreSQL as: {INSTALL_HINT} (it creates the user)"
        )))?;
    let fields: Vec<&str> = line.split(':').collect();
    let id = |i: usize| fields.get(i).and_then(|f| f.parse().ok());
    match (id(2), id(3)) {
        (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
        _ => Err(Error::Failed(format!(
            "cannot read the {SERVER_USER} user's ids from /etc/passwd"
        ))),
    }
}

/// Hands a path (recursively) to the server user when we are root; a no-op otherwise (and on
/// Windows, where [`PgBinaries::locate`] refuses before any server file exists).
#[cfg_attr(not(unix), allow(unused_variables))]
pub fn give_to_server_user(path: &Path) -> Result<()> {
    #[cfg(unix)]
    if let Some((uid, gid)) = server_owner()? {
        fn walk(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
            if path.is_dir() && !path.is_symlink() {
                for entry in std::fs::read_dir(path)? {
                    walk(&entry?.path(), uid, gid)?;
                }
            }
            Ok(())
        }
        walk(path, uid, gid).map_err(|e| {
            Error::Failed(format!(
                "cannot hand {} to the {SERVER_USER} user: {e}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

/// A command for a server binary, run as the server user when we are root.
pub fn server_command(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", SERVER_USER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs a command, turning a failure into an error that quotes the tail of its output.
pub fn run(mut command: Command, what: &str) -> Result<Output> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| {
        Error::Failed(format!(
            "{what}: cannot start {:?}: {e}",
            command.get_program()
        ))
    })?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).to_string();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
        return Err(Error::Failed(format!(
            "{what} failed ({}): {tail}",
            output.status
        )));
    }
    Ok(output)
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| Error::Failed(format!("cannot find a free loopback port: {e}")))
}

/// How a cluster authenticates and whether it speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSettings {
    /// Loopback addresses to listen on, e.g. "127.0.0.1".
    pub listen_addresses: &'static str,
    pub port: u16,
    /// `ssl = on` with `server.crt`/`server.key` in the data dir.
    pub tls: bool,
    /// Only `hostssl` lines in pg_hba.conf: plain TCP is rejected.
    pub tls_only: bool,
}

/// One PostgreSQL cluster: a data dir and the binaries that run it.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub bins: PgBinaries,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
}

impl Cluster {
    pub fn new(bins: PgBinaries, data_dir: PathBuf, log_file: PathBuf) -> Cluster {
        Cluster {
            bins,
            data_dir,
            log_file,
        }
    }

    /// initdb with scram-sha-256. `password_file` holds the superuser's password or, better, its
    /// SCRAM verifier (so the plain password never reaches the server's files).
    pub fn init(&self, superuser: &str, password_file: &Path) -> Result<()> {
        let mut command = server_command(&self.bins.tool("initdb"));
        command
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "-U",
                superuser,
                "-E",
                "UTF8",
                "--locale=C",
                "--auth=scram-sha-256",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", password_file.display()))
            .env("TZ", "UTC");
        run(command, "initdb")?;
        Ok(())
    }

    /// Writes our settings: loopback only, the port, TLS, no Unix socket (its path length limit
    /// would break deep project dirs), and pg_hba.conf.
    pub fn configure(&self, settings: ServerSettings) -> Result<()> {
        let conf = format!(
            "# written by dbtools\nlisten_addresses = '{}'\nport = {}\nunix_socket_directories = ''\nssl = {}\npassword_encryption = 'scram-sha-256'\nlog_timezone = 'UTC'\ntimezone = 'UTC'\nfsync = on\n",
            settings.listen_addresses,
            settings.port,
            if settings.tls { "on" } else { "off" }
        );
        let host = if settings.tls_only { "hostssl" } else { "host" };
        let hba = format!(
            "# written by dbtools: loopback only, passwords as SCRAM\nlocal all all scram-sha-256\n{host} all all 127.0.0.1/32 scram-sha-256\n{host} all all ::1/128 scram-sha-256\n"
        );
        self.write_server_file("dbtools.conf", &conf, 0o600)?;
        self.write_server_file("pg_hba.conf", &hba, 0o600)?;
        let main_conf = self.data_dir.join("postgresql.conf");
        let existing = std::fs::read_to_string(&main_conf).unwrap_or_default();
        if !existing.contains("include_if_exists = 'dbtools.conf'") {
            let text = format!("{existing}\ninclude_if_exists = 'dbtools.conf'\n");
            self.write_server_file("postgresql.conf", &text, 0o600)?;
        }
        Ok(())
    }

    /// Writes a file into the data dir, owned by the server user.
    pub(crate) fn write_server_file(&self, name: &str, text: &str, mode: u32) -> Result<()> {
        let path = self.data_dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Error::Failed(format!("cannot write {}: {e}", path.display())))?;
        crate::state::set_mode(&path, mode)?;
        give_to_server_user(&path)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) -> Result<()> {
        let mut command = server_command(&self.bins.tool("pg_ctl"));
        command
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .args(["-w", "-t", "60", "start"]);
        run(command, "pg_ctl start").map_err(|e| {
            let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
            let last: Vec<&str> = log.lines().rev().take(3).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            Error::Failed(format!("{e}; server log: {}", last.join(" / ")))
        })?;
        Ok(())
    }

    /// Stops the server: `fast` rolls back open sessions, `immediate` is for throwaway clusters.
    pub fn stop(&self, mode: &str) -> Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        let mut command = server_command(&self.bins.tool("pg_ctl"));
        command
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "60", "-m", mode, "stop"]);
        run(command, "pg_ctl stop")?;
        Ok(())
    }

    /// True when a postmaster runs on this data dir (`pg_ctl status` exits 0).
    pub fn is_running(&self) -> bool {
        if !self.data_dir.join("postmaster.pid").exists() {
            return false;
        }
        let mut command = server_command(&self.bins.tool("pg_ctl"));
        command
            .arg("-D")
            .arg(&self.data_dir)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command.status().map(|s| s.success()).unwrap_or(false)
    }
}

/// TLS files for loopback servers, made with the `openssl` command (installed with PostgreSQL).
pub mod tls {
    use super::*;

    fn openssl(args: &[&str], dir: &Path, what: &str) -> Result<()> {
        let mut command = Command::new("openssl");
        command.args(args).current_dir(dir);
        run(command, what).map(|_| ()).map_err(|e| match e {
            Error::Failed(m) if m.contains("cannot start") => Error::BadInput(format!(
                "{m}: install openssl (`apt-get install -y openssl`)"
            )),
            other => other,
        })
    }

    /// A fresh P-256 key, unencrypted (the server must read it unattended; it is 0600).
    const NEW_EC_KEY: &[&str] = &[
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];

    /// Makes a CA (`ca.crt`, 0644, and `ca.key`, 0600) in `dir` unless one is there.
    pub fn ensure_ca(dir: &Path) -> Result<(PathBuf, PathBuf)> {
        let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        if cert.is_file() && key.is_file() {
            return Ok((cert, key));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Failed(format!("cannot create {}: {e}", dir.display())))?;
        let args = [
            &["req", "-x509"][..],
            NEW_EC_KEY,
            &[
                "-keyout",
                "ca.key.tmp",
                "-out",
                "ca.crt.tmp",
                "-days",
                "3650",
                "-subj",
                "/CN=dbtools local CA",
            ],
            &[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat();
        openssl(&args, dir, "making the local CA")?;
        crate::state::set_mode(&dir.join("ca.key.tmp"), 0o600)?;
        let rename = |from: &str, to: &Path| {
            std::fs::rename(dir.join(from), to)
                .map_err(|e| Error::Failed(format!("cannot write {}: {e}", to.display())))
        };
        rename("ca.key.tmp", &key)?;
        rename("ca.crt.tmp", &cert)?;
        crate::state::set_mode(&cert, 0o644)?;
        Ok((cert, key))
    }

    /// Issues `server.crt`/`server.key` into `out_dir`, signed by the CA, valid for localhost,
    /// 127.0.0.1 and ::1 (so `verify-full` works for both names).
    pub fn issue_server_cert(ca_cert: &Path, ca_key: &Path, out_dir: &Path) -> Result<()> {
        let work = out_dir.join(".tls-work");
        std::fs::create_dir_all(&work)
            .map_err(|e| Error::Failed(format!("cannot create {}: {e}", work.display())))?;
        crate::state::set_mode(&work, 0o700)?;
        std::fs::write(
            work.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| Error::Failed(format!("cannot write TLS settings: {e}")))?;
        let mut serial = [0u8; 8];
        getrandom::getrandom(&mut serial)
            .map_err(|e| Error::Failed(format!("no random source: {e}")))?;
        let serial = format!(
            "0x{}",
            serial
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let key_args = [
            &["req"][..],
            NEW_EC_KEY,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat();
        let result = openssl(&key_args, &work, "making the server key")
            .and_then(|_| {
                openssl(
                    &[
                        "x509",
                        "-req",
                        "-in",
                        "server.csr",
                        "-CA",
                        &ca_cert.display().to_string(),
                        "-CAkey",
                        &ca_key.display().to_string(),
                        "-set_serial",
                        &serial,
                        "-days",
                        "825",
                        "-extfile",
                        "ext.cnf",
                        "-out",
                        "server.crt",
                    ],
                    &work,
                    "signing the server certificate",
                )
            })
            .and_then(|_| {
                for name in ["server.key", "server.crt"] {
                    std::fs::rename(work.join(name), out_dir.join(name))
                        .map_err(|e| Error::Failed(format!("cannot move {name}: {e}")))?;
                }
                crate::state::set_mode(&out_dir.join("server.key"), 0o600)?;
                give_to_server_user(&out_dir.join("server.key"))?;
                give_to_server_user(&out_dir.join("server.crt"))
            });
        let _ = std::fs::remove_dir_all(&work);
        result
    }
}
