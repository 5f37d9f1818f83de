//! `rdsprov access` against moto, with a check-IP endpoint on loopback playing the internet:
//! the home address changes and `allow-current` moves this machine's rule (one per machine,
//! the spec's rules untouched, `plan` still clean); a second machine gets its own rule; a
//! machine with the same name is refused; `revoke`; a locked env needs break-glass; a broken
//! or lying check-IP endpoint, a full security group — each refused with no rule changed; and
//! the local provider needs no rule at all.

use harness::{CheckIp, MotoServer, TempDir, Tool};
use serde_json::json;

const SPEC: &str = r#"
[env.dev]
id = "combine-dev"
class = "db.t4g.micro"
ingress = ["10.0.1.0/24"]
publicly_accessible = true
[env.prod]
id = "combine-prod"
class = "db.t4g.micro"
ingress = ["10.0.1.0/24"]
publicly_accessible = true
"#;

/// One machine: its name, its state dir (where it records what it added), its view of the
/// internet.
struct Machine<'a> {
    moto: &'a MotoServer,
    spec: std::path::PathBuf,
    name: &'a str,
    state: TempDir,
    checkip: &'a CheckIp,
}

impl Machine<'_> {
    fn rdsprov(&self, args: &[&str]) -> harness::Run {
        Tool::new("rdsprov")
            .args(args)
            .arg_path_flag("--spec", &self.spec)
            .aws(self.moto)
            .env("DBTOOLS_MACHINE_NAME", self.name)
            .env("DBTOOLS_CHECKIP_URL", self.checkip.url())
            .env("XDG_STATE_HOME", &self.state.path)
            .env("RDSPROV_POLL_SECONDS", "0.2")
            .run()
    }
}

/// The rules on 5432 of the instance's group: (source, description).
fn rules(moto: &MotoServer, group: &str) -> Vec<(String, String)> {
    let answer = moto.call(
        "ec2",
        "describe_security_groups",
        json!({"GroupIds": [group]}),
    );
    let mut rules: Vec<(String, String)> = answer["SecurityGroups"][0]["IpPermissions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["IpRanges"].as_array().unwrap().clone())
        .map(|r| {
            (
                r["CidrIp"].as_str().unwrap().to_string(),
                r["Description"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    rules.sort();
    rules
}

#[test]
fn allow_current_follows_the_home_address_one_rule_per_machine() {
    let moto = MotoServer::start();
    let dir = TempDir::new("access");
    let spec = dir.path.join("rds.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let home = CheckIp::start("203.0.113.7");
    let ada = Machine {
        moto: &moto,
        spec: spec.clone(),
        name: "ada@laptop",
        state: TempDir::new("access-ada"),
        checkip: &home,
    };
    let applied = ada.rdsprov(&["apply"]).expect(0).json();
    let group = applied["instances"][0]["security_group"]
        .as_str()
        .unwrap()
        .to_string();

    let shown = ada.rdsprov(&["access", "show", "dev"]).expect(0).json();
    assert_eq!(shown["kind"], "dbtools.access/v1");
    assert_eq!(shown["address"], "203.0.113.7");
    assert_eq!(shown["admitted"], false);
    assert_eq!(shown["publicly_accessible"], true);
    assert_eq!(shown["rules"][0]["origin"], "spec");
    assert!(shown["note"]
        .as_str()
        .unwrap()
        .contains("run `rdsprov access allow-current`"));

    let allowed = ada.rdsprov(&["access", "allow-current", "dev"]);
    let answer = allowed.expect(0).json();
    assert_eq!(answer["admitted"], true);
    assert_eq!(
        answer["changes"],
        json!([format!(
            "allowed 203.0.113.7/32 (dbtools:ada@laptop) on 5432 in {group}"
        )])
    );
    assert_eq!(
        rules(&moto, &group),
        [
            ("10.0.1.0/24".to_string(), "rdsprov:spec".to_string()),
            ("203.0.113.7/32".into(), "dbtools:ada@laptop".into())
        ]
    );
    let again = ada.rdsprov(&["access", "allow-current", "dev"]);
    assert_eq!(again.expect(0).json()["changes"], json!([]));
    assert_eq!(
        ada.rdsprov(&["plan"]).expect(0).json()["up_to_date"],
        true,
        "a machine rule is not drift"
    );

    // The ISP hands out a new address: the rule moves, the old one goes.
    home.set("198.51.100.23\n");
    let shown = ada.rdsprov(&["access", "show", "dev"]).expect(0).json();
    assert_eq!(shown["admitted"], false);
    let moved = ada
        .rdsprov(&["access", "allow-current", "dev"])
        .expect(0)
        .json();
    assert_eq!(moved["changes"].as_array().unwrap().len(), 2, "{moved}");
    assert_eq!(
        rules(&moto, &group),
        [
            ("10.0.1.0/24".to_string(), "rdsprov:spec".to_string()),
            ("198.51.100.23/32".into(), "dbtools:ada@laptop".into())
        ]
    );

    // A second machine on another network: its own rule, ada's stays.
    let office = CheckIp::start("192.0.2.44");
    let bob = Machine {
        moto: &moto,
        spec: spec.clone(),
        name: "bob@desktop",
        state: TempDir::new("access-bob"),
        checkip: &office,
    };
    bob.rdsprov(&["access", "allow-current", "dev"]).expect(0);
    assert_eq!(rules(&moto, &group).len(), 3);

    // A third machine that also calls itself ada@laptop, elsewhere: refused, nothing changed.
    let cafe = CheckIp::start("192.0.2.99");
    let twin = Machine {
        moto: &moto,
        spec: spec.clone(),
        name: "ada@laptop",
        state: TempDir::new("access-twin"),
        checkip: &cafe,
    };
    twin.rdsprov(&["access", "allow-current", "dev"])
        .expect_error(
        "rdsprov",
        2,
        "a rule named dbtools:ada@laptop admits 198.51.100.23/32, which this machine did not add",
    );
    assert_eq!(rules(&moto, &group).len(), 3);

    // A machine behind the same NAT as ada: already admitted by ada's rule, nothing added.
    let same_nat = Machine {
        moto: &moto,
        spec: spec.clone(),
        name: "cy@tablet",
        state: TempDir::new("access-cy"),
        checkip: &home,
    };
    let shared = same_nat
        .rdsprov(&["access", "allow-current", "dev"])
        .expect(0)
        .json();
    assert_eq!(
        shared["changes"],
        json!(["198.51.100.23/32 is already admitted by the rule dbtools:ada@laptop: no rule of its own needed"])
    );
    assert_eq!(shared["admitted"], true);
    assert_eq!(rules(&moto, &group).len(), 3);

    // revoke another machine's rules by name.
    let revoked = ada
        .rdsprov(&["access", "revoke", "dev", "--machine", "bob@desktop"])
        .expect(0)
        .json();
    assert_eq!(
        revoked["changes"],
        json!([format!(
            "removed 192.0.2.44/32 (dbtools:bob@desktop) from {group}"
        )])
    );
    assert!(rules(&moto, &group)
        .iter()
        .all(|(_, description)| description != "dbtools:bob@desktop"));

    // prod is locked: changing who may connect needs --confirm and --break-glass, audited.
    ada.rdsprov(&["access", "allow-current", "prod"])
        .expect_error("rdsprov", 3, "access on env prod (locked) refused");
    ada.rdsprov(&["access", "allow-current", "prod", "--confirm", "prod"])
        .expect_error("rdsprov", 3, "--break-glass");
    ada.rdsprov(&[
        "access",
        "allow-current",
        "prod",
        "--confirm",
        "prod",
        "--break-glass",
        "home office move",
    ])
    .expect(0);
    // Naming an open env with --instance does not sidestep the locked env that instance is.
    let config = ada.state.path.join("dbtools.toml");
    std::fs::write(
        &config,
        "[instance.combine-prod]\nprovider = \"aws\"\nregion = \"eu-west-1\"\n[env.prod]\ninstance = \"combine-prod\"\nhost = \"db.example.com\"\ndatabase = \"app\"\nuser = \"app\"\n[env.dev]\nhost = \"127.0.0.1\"\ndatabase = \"app\"\nuser = \"app\"\n",
    )
    .unwrap();
    Tool::new("rdsprov")
        .args([
            "access",
            "allow-current",
            "dev",
            "--instance",
            "combine-prod",
        ])
        .aws(&moto)
        .env("DBTOOLS_CONFIG", &config)
        .env("DBTOOLS_MACHINE_NAME", "ada@laptop")
        .env("DBTOOLS_CHECKIP_URL", home.url())
        .env("XDG_STATE_HOME", &ada.state.path)
        .run()
        .expect_error("rdsprov", 3, "access on env prod (locked) refused");
    let audit = std::fs::read_to_string(ada.state.path.join("dbtools").join("audit.log")).unwrap();
    assert!(
        audit.contains("\"action\":\"access\"") && audit.contains("home office move"),
        "{audit}"
    );
}

/// A check-IP endpoint that cannot be reached, answers garbage, or answers a private address;
/// a security group at AWS's rule quota: each a clear error, and no rule changed.
#[test]
fn a_broken_endpoint_or_a_full_group_changes_no_rule() {
    let moto = MotoServer::start();
    let dir = TempDir::new("access-bad");
    let spec = dir.path.join("rds.toml");
    std::fs::write(&spec, SPEC.split("[env.prod]").next().unwrap()).unwrap();
    let internet = CheckIp::start("203.0.113.7");
    let ada = Machine {
        moto: &moto,
        spec,
        name: "ada@laptop",
        state: TempDir::new("access-bad-ada"),
        checkip: &internet,
    };
    let applied = ada.rdsprov(&["apply"]).expect(0).json();
    let group = applied["instances"][0]["security_group"]
        .as_str()
        .unwrap()
        .to_string();
    let before = rules(&moto, &group);

    internet.set("<html><body>Please log in to the hotel wifi</body></html>");
    ada.rdsprov(&["access", "allow-current", "dev"]).expect_error(
        "rdsprov",
        2,
        "answered \"<html><body>Please log in to the hotel wifi</body></html>\", not this machine's address: no rule was changed",
    );
    internet.set("192.168.1.20");
    ada.rdsprov(&["access", "allow-current", "dev"])
        .expect_error("rdsprov", 2, "answered 192.168.1.20, a private address");
    let closed = dbtools::server::free_port().unwrap();
    let unreachable = Tool::new("rdsprov")
        .args(["access", "allow-current", "dev"])
        .arg_path_flag("--spec", &ada.spec)
        .aws(&moto)
        .env("DBTOOLS_MACHINE_NAME", "ada@laptop")
        .env("DBTOOLS_CHECKIP_URL", format!("http://127.0.0.1:{closed}/"))
        .env("XDG_STATE_HOME", &ada.state.path)
        .run();
    unreachable.expect_error("rdsprov", 4, "cannot be reached");
    // HTTPS is verified against the OS's trust store: a self-signed endpoint is refused.
    let key = dir.path.join("checkip.key");
    let cert = dir.path.join("checkip.crt");
    Tool::program("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg_path_flag("-keyout", &key)
        .arg_path_flag("-out", &cert)
        .run()
        .expect(0);
    let port = dbtools::server::free_port().unwrap();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &port.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("this test needs openssl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "openssl s_server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let untrusted = Tool::new("rdsprov")
        .args(["access", "allow-current", "dev"])
        .arg_path_flag("--spec", &ada.spec)
        .aws(&moto)
        .env("DBTOOLS_MACHINE_NAME", "ada@laptop")
        .env("DBTOOLS_CHECKIP_URL", format!("https://127.0.0.1:{port}/"))
        .env("XDG_STATE_HOME", &ada.state.path)
        .run();
    let _ = server.kill();
    let _ = server.wait();
    untrusted.expect_error("rdsprov", 4, "cannot be reached");
    assert!(
        untrusted.stderr.contains("certificate"),
        "{}",
        untrusted.stderr
    );
    assert_eq!(rules(&moto, &group), before);

    // Fill the group to AWS's quota of 60 inbound rules.
    let others: Vec<serde_json::Value> = (0..59)
        .map(|n| json!({"CidrIp": format!("198.18.{n}.0/24"), "Description": "someone's"}))
        .collect();
    moto.call(
        "ec2",
        "authorize_security_group_ingress",
        json!({"GroupId": group, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": others}]}),
    );
    internet.set("203.0.113.7");
    ada.rdsprov(&["access", "allow-current", "dev"])
        .expect_error(
            "rdsprov",
            2,
            "is at its quota of inbound rules (60 per group by default)",
        );
    assert_eq!(rules(&moto, &group).len(), 60);
}

/// A local instance listens on loopback: nothing to allow, and `access` says so.
#[test]
fn the_local_provider_needs_no_rule() {
    let dir = TempDir::new("access-local");
    std::fs::write(
        dir.path.join("dbtools.toml"),
        "[instance.combine-dev]\nprovider = \"local\"\n[env.dev]\ninstance = \"combine-dev\"\ndatabase = \"combine_dev\"\nuser = \"combine_app\"\n",
    )
    .unwrap();
    let shown = Tool::new("rdsprov")
        .args(["access", "show", "dev"])
        .current_dir(&dir.path)
        .run()
        .expect(0)
        .json();
    assert_eq!(shown["provider"], "local");
    assert_eq!(shown["admitted"], true);
    assert!(shown["note"]
        .as_str()
        .unwrap()
        .contains("listens on loopback (127.0.0.1) and needs no rule"));
}
