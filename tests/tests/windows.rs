//! The Windows smoke suite: the tools built as Windows programs (`scripts/windows/build.sh`,
//! x86_64-pc-windows-gnu) run under wine against real PostgreSQL on loopback (wine uses this
//! machine's sockets). Config discovery, `dbenv resolve/export` (PowerShell), the JSON contract
//! through a pipe and as UTF-16, `dbmigrate` and `dbseed` with CRLF files, the guard's refusals
//! and their exit codes, a secret file's access list read back, TLS `verify-full` with
//! Windows' own certificate engine (an RDS-like chain, its revocation checked by OCSP on
//! loopback, a revoked certificate and a wrong name refused), and the local provider's refusal.
//!
//! What wine cannot show (README, "Windows"): that Windows enforces the access list it stores,
//! and how Windows itself treats a chain whose revocation is unknown (wine refuses it; Windows,
//! asked by schannel to ignore an unknown status, accepts it).

use dbtools::contract::SslMode;
use harness::{PgCluster, Project, TempDir, Tls, Tool, SUPERUSER_PASSWORD};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Windows binaries and the wine prefix `scripts/windows/build.sh` made.
struct Windows {
    dir: PathBuf,
    prefix: PathBuf,
}

fn windows() -> Windows {
    let target = harness::bin_dir()
        .parent()
        .expect("target dir")
        .to_path_buf();
    let dir = target.join("x86_64-pc-windows-gnu").join("windows-smoke");
    for file in [
        "dbenv.exe",
        "dbconnect.exe",
        "dbmigrate.exe",
        "dbseed.exe",
        "dbguard.exe",
        "rdsprov.exe",
        "file_access.exe",
        "bcryptprimitives.dll",
    ] {
        assert!(
            dir.join(file).is_file(),
            "{} is not built: run `bash scripts/windows/build.sh` first (make test does)",
            dir.join(file).display()
        );
    }
    let wine = Command::new("wine")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    assert!(
        wine.is_ok_and(|s| s.success()),
        "this test needs wine: bash scripts/setup-test.sh (apt-get install -y wine wine64)"
    );
    Windows {
        dir,
        prefix: target.join("wine-prefix"),
    }
}

impl Windows {
    /// `TOOL.exe` under wine, with a clean environment (as [`Tool::program`] gives).
    fn tool(&self, name: &str) -> Tool {
        Tool::program("wine")
            .arg_path(&self.dir.join(format!("{name}.exe")))
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
    }

    /// `TOOL.exe` run in `dir` (a project), the envs' password in `$PW` as their configs say.
    fn in_dir(&self, name: &str, dir: &Path) -> Tool {
        self.tool(name)
            .env("PW", SUPERUSER_PASSWORD)
            .current_dir(dir)
    }

    /// The access list of `path` as SDDL, read back by a Windows program.
    fn access_list(&self, path: &Path) -> String {
        let run = self.tool("file_access").arg_path(path).run();
        run.expect(0);
        run.stdout.trim().to_string()
    }
}

/// `path` as a Windows program names it: wine maps `/` to drive Z:.
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

fn utf16le_with_bom(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

/// A cluster without TLS holding `db_<env>` for each env, stamped, and a project whose
/// config names them (password from `$PW`).
fn plain_project(envs: &[(&str, &str)]) -> (PgCluster, Project) {
    let pg = PgCluster::start(Tls::None);
    let config = pg.envs_config(envs);
    for (env, _) in envs {
        pg.psql("postgres", &format!("create database db_{env}"));
        pg.stamp(&format!("db_{env}"), env);
    }
    let project = Project::new(&format!("app = \"winsmoke\"\n{config}"));
    (pg, project)
}

#[test]
fn windows_tools_find_the_config_export_for_powershell_and_pass_profiles_through_pipes() {
    let win = windows();
    let (pg, project) = plain_project(&[("dev", "open")]);
    let deep = project.path().join("src").join("deep");
    std::fs::create_dir_all(&deep).unwrap();

    // Config discovery: dbtools.toml found upward from a subdirectory.
    let resolved = win.in_dir("dbenv", &deep).args(["resolve", "dev"]).run();
    let profile = resolved.expect(0).json();
    assert_eq!(profile["env"], "dev");
    assert_eq!(profile["conn"]["port"], pg.port);
    assert!(!resolved.stdout.contains(SUPERUSER_PASSWORD));

    // PowerShell's export: quoted PowerShell's way, the password in a private file only.
    let export = win
        .in_dir("dbenv", &deep)
        .args(["export", "dev", "--format", "powershell"])
        .run();
    export.expect(0);
    assert!(!export.stdout.contains(SUPERUSER_PASSWORD));
    let lines: Vec<&str> = export.stdout.lines().collect();
    assert!(lines.contains(&"$env:PGHOST = '127.0.0.1'"), "{lines:?}");
    assert!(
        lines.contains(&format!("$env:PGPORT = '{}'", pg.port).as_str()),
        "{lines:?}"
    );
    assert!(lines.contains(&"$env:PGDATABASE = 'db_dev'"), "{lines:?}");
    assert_eq!(
        lines.last(),
        Some(&"Remove-Item Env:PGPASSWORD, Env:PGHOSTADDR, Env:PGSERVICE, Env:PGSSLROOTCERT -ErrorAction SilentlyContinue")
    );
    let passfile = lines
        .iter()
        .find_map(|l| l.strip_prefix("$env:PGPASSFILE = '"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("a PGPASSFILE line");
    assert!(passfile.starts_with("Z:\\"), "a Windows path: {passfile}");
    let unix_passfile = PathBuf::from(passfile.trim_start_matches("Z:").replace('\\', "/"));
    let stored = std::fs::read_to_string(&unix_passfile).unwrap();
    assert!(stored.trim_end().ends_with(SUPERUSER_PASSWORD));
    // The password file's access list, read back by a Windows program: the current user
    // with full access and no entry for Everyone (WD), where a file the tools did not protect
    // (dbtools.toml) has one. Wine 8 keeps no descriptor of its own: it turns the list the
    // tool sets into Unix mode bits and renders those back (server/file.c, file_set_sd), so
    // the protected flag (`D:P`) and Windows' enforcement are for a Windows machine to show.
    let acl = win.access_list(&unix_passfile);
    let user = win
        .access_list(&project.path().join("dbtools.toml"))
        .split("(A;;FA;;;")
        .filter_map(|ace| ace.split_once(')').map(|(sid, _)| sid.to_string()))
        .find(|sid| sid.starts_with("S-1-5-21-"))
        .expect("the owner's entry on an ordinary file");
    assert!(acl.contains(&format!("(A;;FA;;;{user})")), "{acl}");
    assert!(
        !acl.contains(";WD)"),
        "Everyone may read the password file: {acl}"
    );
    assert!(
        win.access_list(&project.path().join("dbtools.toml"))
            .contains(";WD)"),
        "the comparison file shows an Everyone entry"
    );

    // The contract through a pipe: the Windows dbenv's profile into the Windows dbconnect,
    // as UTF-8 and as UTF-16 (what Windows PowerShell 5.1 can send), and into the Linux one.
    let check = win
        .in_dir("dbconnect", &deep)
        .args(["check"])
        .stdin(resolved.stdout.clone())
        .run();
    let witness = check.expect(0).json();
    assert_eq!(witness["database"], "db_dev");
    assert_eq!(witness["stamp"]["env"], "dev");
    let utf16 = win
        .in_dir("dbconnect", &deep)
        .args(["check"])
        .stdin(utf16le_with_bom(&resolved.stdout))
        .run();
    assert_eq!(utf16.expect(0).json()["database"], "db_dev", "UTF-16 stdin");
    let linux = Tool::new("dbconnect")
        .args(["check"])
        .env("PW", SUPERUSER_PASSWORD)
        .current_dir(&deep)
        .stdin(resolved.stdout.clone())
        .run();
    assert_eq!(linux.expect(0).json()["database"], "db_dev");
}

#[test]
fn windows_migrate_and_seed_read_crlf_files_as_linux_does() {
    let win = windows();
    let (pg, project) = plain_project(&[("dev", "open")]);
    let migrations = project.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("20260101000001_create_agents.sql"),
        "-- migrate:up\r\ncreate table agents (handle text primary key, name text not null);\r\n\r\n-- migrate:down\r\ndrop table agents;\r\n",
    )
    .unwrap();
    let seeds = project.path().join("seeds").join("dev");
    std::fs::create_dir_all(&seeds).unwrap();
    std::fs::write(
        seeds.join("010_agents.csv"),
        "handle,name\r\nada,Ada\r\ngrace,\"Hopper, Grace\"\r\n",
    )
    .unwrap();

    let up = win
        .in_dir("dbmigrate", project.path())
        .args(["up", "--env", "dev"])
        .run();
    assert_eq!(
        up.expect(0).json()["migrations"][0]["state"],
        "applied",
        "{}",
        up.stdout
    );
    // The Windows status and the Linux one agree the CRLF file is applied, unchanged.
    for status in [
        win.tool("dbmigrate"),
        Tool::program(harness::bin("dbmigrate")),
    ] {
        let status = status
            .args(["status", "--env", "dev", "--exit-code"])
            .env("PW", SUPERUSER_PASSWORD)
            .current_dir(project.path())
            .run();
        let states: Vec<String> = status.expect(0).json()["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["state"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(states, ["applied"]);
    }

    let seed = win
        .in_dir("dbseed", project.path())
        .args(["apply", "--env", "dev"])
        .run();
    assert_eq!(
        seed.expect(0).json()["seeds"][0]["rows"],
        2,
        "{}",
        seed.stdout
    );
    assert_eq!(
        pg.psql(
            "db_dev",
            "select string_agg(name, '|' order by handle) from agents"
        ),
        "Ada|Hopper, Grace",
        "no \\r kept in a value"
    );
}

#[test]
fn windows_guard_refusals_keep_their_exit_codes() {
    let win = windows();
    let (pg, project) = plain_project(&[("dev", "open"), ("test", "confirm")]);
    let migrations = project.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("20260101000001_t.sql"),
        "-- migrate:up\ncreate table t (id int);\n-- migrate:down\ndrop table t;\n",
    )
    .unwrap();
    let run = |tool: &str, args: &[&str]| win.in_dir(tool, project.path()).args(args).run();
    run("dbmigrate", &["up", "--env", "test"]).expect(0);
    // Destructive on a confirm env without --confirm: refused, exit 3, nothing reverted.
    run("dbmigrate", &["down", "--env", "test"]).expect_error("dbmigrate", 3, "--confirm test");
    assert_eq!(pg.psql("db_test", "select count(*) from t"), "0");
    run("dbguard", &["check", "--env", "test", "--action", "reset"]).expect_error(
        "dbguard",
        3,
        "--confirm test",
    );
    // A database stamped for another env: refused whatever the profile says.
    let mut conn = pg.conn(SslMode::Disable);
    conn.dbname = "db_test".into();
    let lying = pg.profile("dev", &conn);
    win.tool("dbmigrate")
        .args(["up"])
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .current_dir(project.path())
        .stdin(lying)
        .run()
        .expect_error("dbmigrate", 3, "stamp");
    // Bad input: exit 2, naming what the config knows.
    run("dbenv", &["resolve", "Test"]).expect_error("dbenv", 2, "knows dev, test");
    // Which env without --env: NUL (a character device) is nothing piped, so dev; an empty
    // pipe is the command before `|` having failed, never a fallback to dev.
    let from_nul = win
        .in_dir("dbconnect", project.path())
        .args(["check"])
        .stdin_null()
        .run();
    assert_eq!(from_nul.expect(0).json()["env"], "dev");
    win.in_dir("dbconnect", project.path())
        .args(["check"])
        .stdin("")
        .run()
        .expect_error("dbconnect", 2, "empty pipe");
}

/// openssl, run in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `NAME.key` and `NAME.crt` in `dir`: a new key, its certificate for `subject` signed by the CA
/// `CA.crt`/`CA.key`, with the extensions of section `extensions` of `ext.cnf`.
fn issue(dir: &Path, name: &str, subject: &str, ca: &str, extensions: &str) {
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ],
    );
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-extensions",
            extensions,
        ],
    );
}

/// An OCSP responder (`openssl ocsp`) for one CA on a free loopback port, killed when dropped.
struct Responder {
    child: std::process::Child,
}

impl Responder {
    fn start(dir: &Path, ca: &str, index: &str, port: u16) -> Responder {
        use std::io::BufRead;
        let mut child = Command::new("openssl")
            .args(["ocsp", "-index", index, "-CA", &format!("{ca}.crt")])
            .args([
                "-rsigner",
                &format!("{ca}.crt"),
                "-rkey",
                &format!("{ca}.key"),
            ])
            // Wine's OCSP reader takes neither embedded certificates nor responses without
            // a next update.
            .args(["-port", &port.to_string(), "-nmin", "5", "-resp_no_certs"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl ocsp");
        // Ready once it says so: a connection that sends no request would stall it (it serves
        // one connection at a time and waits on that one), so no probe.
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line
                .expect("openssl ocsp stderr")
                .contains("waiting for OCSP client connections")
            {
                std::thread::spawn(move || lines.for_each(drop));
                return Responder { child };
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("openssl ocsp did not start on port {port}");
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn index_line(dir: &Path, cert: &str, status: &str) -> String {
    let read = |flag: &str| {
        let out = Command::new("openssl")
            .args(["x509", "-in", cert, "-noout", flag])
            .current_dir(dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        text.split_once('=')
            .map(|(_, v)| v.to_string())
            .unwrap_or(text)
    };
    let serial = read("-serial");
    // openssl's index wants the dates as YYMMDDHHMMSSZ: far enough either way.
    let revoked = if status == "R" { "260101000000Z" } else { "" };
    format!("{status}\t491231235959Z\t{revoked}\t{serial}\tunknown\t/CN=x\n")
}

#[test]
fn windows_verify_full_checks_an_rds_like_chain_and_its_revocation() {
    let win = windows();
    let pg = PgCluster::start(Tls::Offered);
    let pki = TempDir::new("pki");
    let dir = &pki.path;
    let (root_port, inter_port) = (
        dbtools::server::free_port().unwrap(),
        dbtools::server::free_port().unwrap(),
    );
    // Like RDS: a root, an intermediate, the server's certificate; each below the root names
    // an OCSP responder (on loopback here).
    std::fs::write(
        dir.join("ext.cnf"),
        format!(
            "[root]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n\
             [inter]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:{root_port}/\n\
             [leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nauthorityKeyIdentifier=keyid\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:{inter_port}/\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.crt",
            "-days",
            "30",
            "-subj",
            "/CN=dbtools test root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    issue(
        dir,
        "inter",
        "/CN=dbtools test intermediate",
        "root",
        "inter",
    );
    for leaf in ["good", "revoked"] {
        issue(dir, leaf, "/CN=localhost", "inter", "leaf");
    }
    std::fs::write(dir.join("root.idx"), index_line(dir, "inter.crt", "V")).unwrap();
    std::fs::write(
        dir.join("inter.idx"),
        index_line(dir, "good.crt", "V") + &index_line(dir, "revoked.crt", "R"),
    )
    .unwrap();
    let _root_responder = Responder::start(dir, "root", "root.idx", root_port);
    let _inter_responder = Responder::start(dir, "inter", "inter.idx", inter_port);

    // The server presents its certificate and the intermediate, as RDS does.
    let serve = |leaf: &str| {
        let data = &pg.cluster.data_dir;
        let chain = std::fs::read_to_string(dir.join(format!("{leaf}.crt"))).unwrap()
            + &std::fs::read_to_string(dir.join("inter.crt")).unwrap();
        std::fs::write(data.join("server.crt"), chain).unwrap();
        std::fs::copy(dir.join(format!("{leaf}.key")), data.join("server.key")).unwrap();
        dbtools::state::set_mode(&data.join("server.key"), 0o600).unwrap();
        dbtools::server::give_to_server_user(data).unwrap();
        pg.psql("postgres", "select pg_reload_conf()");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let check = |host: &str| {
        let config = format!(
            "app = \"winsmoke\"\n[env.dev]\nprotection = \"open\"\nhost = \"{host}\"\nport = {}\ndatabase = \"postgres\"\nuser = \"postgres\"\nsecret = \"env:PW\"\nsslmode = \"verify-full\"\nsslrootcert = '{}'\n",
            pg.port,
            windows_path(&dir.join("root.crt"))
        );
        let project = Project::new(&config);
        win.in_dir("dbconnect", project.path())
            .args(["check", "--env", "dev"])
            .run()
    };

    serve("good");
    let good = check("localhost");
    let witness = good.expect(0).json();
    assert_eq!(witness["ssl"]["in_use"], true);
    assert_eq!(witness["profile"]["conn"]["sslmode"], "verify-full");
    // The same chain under a name the certificate does not carry: refused.
    check("127.0.0.2").expect_error("dbconnect", 4, "does not name 127.0.0.2");
    // A certificate its CA revoked (OCSP says so): refused.
    serve("revoked");
    check("localhost").expect_error("dbconnect", 4, "is revoked");
}

#[test]
fn windows_local_provider_refuses_and_a_chain_without_revocation_data_is_explained() {
    let win = windows();
    let project = Project::local_dev_test();
    win.tool("rdsprov")
        .args(["status"])
        .current_dir(project.path())
        .run()
        .expect_error(
            "rdsprov",
            2,
            "or run the tools and the local instances inside WSL",
        );

    // The harness's CA names no CRL or OCSP responder. Windows accepts that for a chain to the
    // sslrootcert (schannel asks it to ignore an unknown revocation status); wine's crypt32
    // ignores that request, so here the refusal is asserted, with its explanation.
    let pg = PgCluster::start(Tls::Required);
    let config = format!(
        "app = \"winsmoke\"\n[env.dev]\nprotection = \"open\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"postgres\"\nuser = \"postgres\"\nsecret = \"env:PW\"\nsslmode = \"verify-full\"\nsslrootcert = '{}'\n",
        pg.port,
        windows_path(pg.ca_cert.as_ref().unwrap())
    );
    let tls_project = Project::new(&config);
    let run = |mode: &str| {
        let edited = config.replace("verify-full", mode);
        std::fs::write(tls_project.path().join("dbtools.toml"), edited).unwrap();
        win.in_dir("dbconnect", tls_project.path())
            .args(["check", "--env", "dev"])
            .run()
    };
    run("verify-full").expect_error(
        "dbconnect",
        4,
        "could not learn whether the server's certificate is revoked",
    );
    // Encryption without verification (sslmode=require, no chain check) works under wine.
    let without_root = config
        .replace("verify-full", "require")
        .lines()
        .filter(|l| !l.starts_with("sslrootcert"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(tls_project.path().join("dbtools.toml"), without_root).unwrap();
    let require = win
        .in_dir("dbconnect", tls_project.path())
        .args(["check", "--env", "dev"])
        .run();
    assert_eq!(require.expect(0).json()["ssl"]["in_use"], true);
}
