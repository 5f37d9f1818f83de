//! rdsprov's AWS provider against moto's standalone server: plan on an empty account, apply,
//! plan again (nothing), a class change planned as a modify and applied, a second apply that
//! changes nothing; security-group ingress exactly the listed CIDRs; the master password never
//! on stdout, stderr or any command line; bad specs refused before any AWS call; missing
//! credentials fail fast; CloudWatch alarms to an SNS topic; throttling and 5xx answers (from a
//! fault proxy in front of moto) retried, then a partial failure named and completed by a
//! rerun; Ctrl-C during the wait for `available`.

use harness::{FaultyAws, MotoServer, TempDir, Tool};
use serde_json::json;

const SPEC: &str = r#"
tags = { app = "combine" }
[env.dev]
id = "combine-dev"
class = "db.t4g.micro"
ingress = ["203.0.113.7/32", "198.51.100.0/24"]
publicly_accessible = true
[env.test]
id = "combine-test"
class = "db.t4g.small"
ingress = ["10.0.1.0/24"]
"#;

/// rdsprov with `spec` written to a file in `dir`, polling fast; the caller points it at AWS.
fn rdsprov_tool(dir: &TempDir, spec: &str, args: &[&str]) -> Tool {
    let path = dir.path.join("rds.toml");
    std::fs::write(&path, spec).unwrap();
    Tool::new("rdsprov")
        .args(args)
        .arg_path_flag("--spec", &path)
        .env("RDSPROV_POLL_SECONDS", "0.2")
        .env("RDSPROV_SETTLE_SECONDS", "0.5")
}

fn rdsprov(moto: &MotoServer, dir: &TempDir, spec: &str, args: &[&str]) -> harness::Run {
    rdsprov_tool(dir, spec, args).aws(moto).run()
}

/// rdsprov with SPEC, its audit log in `state` (guarded commands write one).
fn rdsprov_audited(
    moto: &MotoServer,
    dir: &TempDir,
    state: &TempDir,
    args: &[&str],
) -> harness::Run {
    rdsprov_tool(dir, SPEC, args)
        .aws(moto)
        .env("XDG_STATE_HOME", &state.path)
        .run()
}

fn change<'a>(plan: &'a serde_json::Value, resource: &str, env: &str) -> &'a serde_json::Value {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["resource"] == resource && c["env"] == env)
        .unwrap_or_else(|| panic!("no {resource} for {env} in {plan}"))
}

#[test]
fn plan_apply_plan_modify_and_a_second_apply_changes_nothing() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-spec");

    let plan = rdsprov(&moto, &dir, SPEC, &["plan"]).expect(0).json();
    assert_eq!(plan["kind"], "dbtools.plan/v1");
    assert_eq!(plan["up_to_date"], false);
    for resource in ["security-group", "parameter-group", "secret", "db-instance"] {
        assert_eq!(
            change(&plan, resource, "dev")["action"],
            "create",
            "{resource}"
        );
    }
    assert_eq!(plan["cost"]["label"], "estimate");
    // db.t4g.micro 0.016 x 730 + 20 GB x 0.115 + 4 alarms x 0.10 = 14.38;
    // db.t4g.small 0.032 x 730 + 2.30 + 0.40 = 26.06
    assert_eq!(plan["cost"]["monthly_usd"], 40.44);

    let (applied, cmdlines) =
        harness::sample_cmdlines(&["rdsprov"], || rdsprov(&moto, &dir, SPEC, &["apply"]));
    let resources = applied.expect(0).json();
    let instances = resources["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    let dev = &instances[0];
    assert_eq!(dev["id"], "combine-dev");
    assert_eq!(dev["status"], "available");
    assert_eq!(
        dev["endpoint"]["host"],
        "combine-dev.aaaaaaaaaa.eu-west-1.rds.amazonaws.com"
    );
    assert_eq!(dev["class"], "db.t4g.micro");
    assert_eq!(dev["parameter_group"], "rdsprov-combine-dev");
    assert!(dev["master_secret"]["ref"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:secretsmanager:eu-west-1:"));

    // Ingress is exactly the listed CIDRs, on 5432.
    let group = dev["security_group"].as_str().unwrap();
    let groups = moto.call(
        "ec2",
        "describe_security_groups",
        json!({"GroupIds": [group]}),
    );
    let permissions = &groups["SecurityGroups"][0]["IpPermissions"];
    let mut cidrs: Vec<&str> = permissions[0]["IpRanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["CidrIp"].as_str().unwrap())
        .collect();
    cidrs.sort();
    assert_eq!(cidrs, ["198.51.100.0/24", "203.0.113.7/32"]);
    assert_eq!(permissions[0]["FromPort"], 5432);
    assert_eq!(permissions.as_array().unwrap().len(), 1);

    // Secure defaults reached AWS.
    let described = moto.call(
        "rds",
        "describe_db_instances",
        json!({"DBInstanceIdentifier": "combine-test"}),
    );
    let test = &described["DBInstances"][0];
    assert_eq!(
        test["DeletionProtection"], true,
        "deletion protection on every env but dev"
    );
    assert_eq!(test["StorageEncrypted"], true);
    assert_eq!(test["PubliclyAccessible"], false);
    let parameters = moto.call(
        "rds",
        "describe_db_parameters",
        json!({"DBParameterGroupName": "rdsprov-combine-test", "Source": "user"}),
    );
    assert!(parameters["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["ParameterName"] == "rds.force_ssl" && p["ParameterValue"] == "1"));
    let tags = test["TagList"].as_array().unwrap();
    assert!(tags
        .iter()
        .any(|t| t["Key"] == "app" && t["Value"] == "combine"));
    assert!(tags
        .iter()
        .any(|t| t["Key"] == "managed-by" && t["Value"] == "rdsprov"));

    // The generated password: in Secrets Manager, nowhere else.
    let secret = moto.call(
        "secretsmanager",
        "get_secret_value",
        json!({"SecretId": "rdsprov/combine-dev/master"}),
    );
    let value: serde_json::Value =
        serde_json::from_str(secret["SecretString"].as_str().unwrap()).unwrap();
    let password = value["password"].as_str().unwrap();
    assert_eq!(password.len(), 32);
    assert!(!applied.stdout.contains(password) && !applied.stderr.contains(password));
    assert!(cmdlines.iter().all(|c| !c.contains(password)));

    let again = rdsprov(&moto, &dir, SPEC, &["plan"]).expect(0).json();
    assert_eq!(again["up_to_date"], true, "{again}");
    // "A second apply makes no mutating call" (README), read from what reached AWS: every
    // call of the second apply goes through a proxy that logs it before answering.
    let observer = FaultyAws::start(&moto, json!([]));
    let second = rdsprov_through(&moto, &observer, &dir, SPEC, &["apply"]);
    assert_eq!(second.expect(0).json()["changes"], json!([]));
    assert!(
        second.stderr.contains("rdsprov: nothing to change"),
        "{}",
        second.stderr
    );
    assert_no_mutating_call(&observer);

    // A bigger class: a modify, applied at once on dev, in the maintenance window on test.
    let bigger = SPEC.replace("db.t4g.micro", "db.t4g.small").replace(
        "db.t4g.small\"\ningress = [\"10",
        "db.t4g.medium\"\ningress = [\"10",
    );
    let plan = rdsprov(&moto, &dir, &bigger, &["plan"]).expect(0).json();
    let modify = change(&plan, "db-instance", "dev");
    assert_eq!(modify["action"], "modify");
    assert_eq!(
        modify["attributes"],
        json!([{"name": "class", "from": "db.t4g.micro", "to": "db.t4g.small", "when": "immediately"}])
    );
    assert_eq!(
        change(&plan, "db-instance", "test")["attributes"][0]["when"],
        "maintenance window"
    );
    assert_eq!(change(&plan, "security-group", "dev")["action"], "none");
    rdsprov(&moto, &dir, &bigger, &["apply"]).expect(0);
    assert_eq!(
        rdsprov(&moto, &dir, &bigger, &["plan"]).expect(0).json()["up_to_date"],
        true
    );

    // Ingress edits touch only the spec's own rules.
    moto.call(
        "ec2",
        "authorize_security_group_ingress",
        json!({"GroupId": group, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
            "IpRanges": [{"CidrIp": "192.0.2.9/32", "Description": "dbtools:ada@laptop"}]}]}),
    );
    let narrower = bigger.replace(", \"198.51.100.0/24\"", "");
    rdsprov(&moto, &dir, &narrower, &["apply"]).expect(0);
    let groups = moto.call(
        "ec2",
        "describe_security_groups",
        json!({"GroupIds": [group]}),
    );
    let mut left: Vec<&str> = groups["SecurityGroups"][0]["IpPermissions"][0]["IpRanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["CidrIp"].as_str().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["192.0.2.9/32", "203.0.113.7/32"],
        "a machine's own rule stays"
    );
}

#[test]
fn bad_specs_are_refused_before_any_aws_call() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-bad");
    let open = SPEC.replace("203.0.113.7/32", "0.0.0.0/0");
    rdsprov(&moto, &dir, &open, &["plan"]).expect_error(
        "rdsprov",
        2,
        "ingress 0.0.0.0/0 admits the whole internet",
    );
    let shared = SPEC.replace("combine-test", "combine-dev");
    rdsprov(&moto, &dir, &shared, &["apply"]).expect_error(
        "rdsprov",
        2,
        "instance id combine-dev is also env dev's",
    );
    let class = SPEC.replace("db.t4g.small", "db.x9.huge");
    rdsprov(&moto, &dir, &class, &["plan"]).expect_error(
        "rdsprov",
        2,
        "unknown instance class \"db.x9.huge\": use one of db.t3.micro",
    );
    // Which minors AWS offers is asked at plan time; the shape and the major are checked here.
    for (version, expected) in [
        (
            "16.4.1",
            "write a major (\"17\": the newest minor AWS offers) or major.minor",
        ),
        (
            "12.22",
            "postgres runs PostgreSQL 13, 14, 15, 16, 17, 18 (as of 2026-11",
        ),
    ] {
        let bad = SPEC.replace(
            "class = \"db.t4g.small\"",
            &format!("class = \"db.t4g.small\"\nengine_version = \"{version}\""),
        );
        rdsprov(&moto, &dir, &bad, &["plan"]).expect_error("rdsprov", 2, expected);
    }
    // What AWS itself refuses is refused before any call, with the rule.
    let dev_line = "publicly_accessible = true";
    for (extra, expected) in [
        (
            "storage_gb = 20\nmax_storage_gb = 20",
            "at least 10% above storage_gb 20, i.e. 22 or more",
        ),
        (
            "backup_window = \"05:00-06:00\"\nmaintenance_window = \"wed:05:30-wed:06:30\"",
            "overlap: RDS wants them apart",
        ),
        ("backup_window = \"03:00-03:20\"", "at least 30 minutes"),
        (
            "maintenance_window = \"Sunday:04:00-Sunday:05:00\"",
            "days mon to sun",
        ),
        (
            "master_user = \"administrator_one\"",
            "RDS takes 1 to 16 letters",
        ),
        (
            "backup_retention_days = 36",
            "keeps automated backups 0 to 35 days",
        ),
    ] {
        let bad = SPEC.replace(dev_line, &format!("{dev_line}\n{extra}"));
        rdsprov(&moto, &dir, &bad, &["plan"]).expect_error("rdsprov", 2, expected);
    }
    let path = dir.path.join("rds.toml");
    std::fs::write(&path, SPEC).unwrap();
    let no_region = Tool::new("rdsprov")
        .args(["plan"])
        .arg_path_flag("--spec", &path)
        .aws(&moto)
        .env("AWS_REGION", "")
        .run();
    no_region.expect_error(
        "rdsprov",
        2,
        "no region: set region in the spec or AWS_REGION",
    );
    let calls = moto.call("rds", "describe_db_instances", json!({}));
    assert!(
        calls["DBInstances"].as_array().unwrap().is_empty(),
        "nothing was created"
    );
}

#[test]
fn missing_credentials_fail_fast_with_what_to_set() {
    let dir = TempDir::new("aws-nocreds");
    let path = dir.path.join("rds.toml");
    std::fs::write(&path, SPEC).unwrap();
    let started = std::time::Instant::now();
    let run = Tool::new("rdsprov")
        .args(["plan"])
        .arg_path_flag("--spec", &path)
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", harness::closed_port()),
        )
        .run();
    run.expect_error("rdsprov", 4, "no AWS credentials: set AWS_PROFILE");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn snapshot_and_a_guarded_destroy() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-destroy");
    let state = TempDir::new("aws-audit");
    let run = |args: &[&str]| rdsprov_audited(&moto, &dir, &state, args);
    run(&["apply"]).expect(0);

    let taken = run(&[
        "snapshot",
        "--env",
        "dev",
        "--name",
        "before-risky-migration",
    ]);
    let snapshot = taken.expect(0).json();
    assert_eq!(snapshot["kind"], "dbtools.snapshot/v1");
    assert_eq!(snapshot["status"], "available");
    let listed = moto.call(
        "rds",
        "describe_db_snapshots",
        json!({"DBInstanceIdentifier": "combine-dev", "SnapshotType": "manual"}),
    );
    assert_eq!(
        listed["DBSnapshots"][0]["DBSnapshotIdentifier"],
        "before-risky-migration"
    );

    // moto has no database behind its endpoints, so what is at risk on an instance comes from
    // the stamps recorded as its tags (what `dbguard stamp` writes through `rdsprov
    // stamp-record`). An instance with no record at all counts as locked.
    run(&[
        "destroy",
        "--env",
        "dev",
        "--confirm",
        "combine-dev",
        "--skip-final-snapshot",
    ])
    .expect_error("rdsprov", 3, "no database stamp is recorded on it");
    let record = |instance: &str, database: &str, stamp: serde_json::Value| {
        Tool::new("rdsprov")
            .args([
                "stamp-record",
                "--instance",
                instance,
                "--database",
                database,
            ])
            .aws(&moto)
            .stdin(stamp.to_string())
            .run()
            .expect(0);
    };
    record(
        "combine-test",
        "combine_test",
        json!({"env": "test", "protection": "confirm", "nonce": "00aa"}),
    );
    record(
        "combine-dev",
        "combine_dev",
        json!({"env": "dev", "protection": "open", "nonce": "00bb"}),
    );
    Tool::new("rdsprov")
        .args([
            "stamp-record",
            "--instance",
            "combine-dev",
            "--database",
            "x",
        ])
        .aws(&moto)
        .stdin(r#"{"env":"dev","protection":"sometimes","nonce":"1"}"#)
        .run()
        .expect_error("rdsprov", 2, "stdin is no stamp");
    let tags = moto.call(
        "rds",
        "describe_db_instances",
        json!({"DBInstanceIdentifier": "combine-test"}),
    );
    assert!(
        tags["DBInstances"][0]["TagList"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["Key"] == "dbtools:stamp:combine_test" && t["Value"] == "test:confirm:00aa"),
        "{tags}"
    );
    let listed = Tool::new("rdsprov")
        .args(["stamps", "--json", "--instance", "combine-test"])
        .aws(&moto)
        .run()
        .expect(0)
        .json();
    assert_eq!(listed["stamps"][0]["database"], "combine_test");
    assert_eq!(listed["stamps"][0]["env"], "test");
    assert!(listed["endpoint"]["host"]
        .as_str()
        .unwrap()
        .starts_with("combine-test."));

    // test: confirm-level, deletion-protected; the id and the env at risk are both typed.
    run(&["destroy", "--env", "test"]).expect_error("rdsprov", 3, "add --confirm combine-test");
    run(&["destroy", "--env", "test", "--confirm", "test"]).expect_error(
        "rdsprov",
        3,
        "is not the instance id; type --confirm combine-test exactly",
    );
    run(&["destroy", "--env", "test", "--confirm", "combine-test"]).expect_error(
        "rdsprov",
        3,
        "it holds the data of env test (confirm), whatever env name reached it; add --confirm test",
    );
    run(&["destroy", "--env", "test", "--confirm", "combine-test,test"]).expect_error(
        "rdsprov",
        3,
        "has deletion protection on: add --disable-deletion-protection",
    );
    run(&[
        "destroy",
        "--env",
        "test",
        "--confirm",
        "combine-test,test",
        "--disable-deletion-protection",
        "--skip-final-snapshot",
    ])
    .expect_error("rdsprov", 3, "only open envs may skip it");
    let still = moto.call(
        "rds",
        "describe_db_instances",
        json!({"DBInstanceIdentifier": "combine-test"}),
    );
    assert_eq!(
        still["DBInstances"][0]["DeletionProtection"], true,
        "refusals changed nothing"
    );

    let gone = run(&[
        "destroy",
        "--env",
        "test",
        "--confirm",
        "combine-test,test",
        "--disable-deletion-protection",
    ]);
    gone.expect(0);
    assert!(
        gone.stderr
            .contains("deleted instance combine-test (final snapshot combine-test-final-"),
        "{}",
        gone.stderr
    );
    let finals = moto.call(
        "rds",
        "describe_db_snapshots",
        json!({"DBInstanceIdentifier": "combine-test", "SnapshotType": "manual"}),
    );
    let finals: Vec<&str> = finals["DBSnapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["DBSnapshotIdentifier"].as_str().unwrap())
        .collect();
    assert!(
        finals.len() == 1 && finals[0].starts_with("combine-test-final-"),
        "{finals:?}"
    );

    // dev is open: the id is still typed, and it may skip the final snapshot. With the CA
    // bundle the databases are read too; moto has none behind its endpoints, so the stamps
    // recorded on the instance decide, which it says.
    let (bundle, _) = dbtools::server::tls::ensure_ca(&dir.path.join("ca")).unwrap();
    let bundle = bundle.display().to_string();
    let gone_dev = run(&[
        "destroy",
        "--env",
        "dev",
        "--confirm",
        "combine-dev",
        "--skip-final-snapshot",
        "--sslrootcert",
        &bundle,
    ]);
    gone_dev.expect(0);
    assert!(
        gone_dev.stderr.contains("cannot be read from here")
            && gone_dev
                .stderr
                .contains("the stamps recorded on the instance decide"),
        "{}",
        gone_dev.stderr
    );
    let left = moto.call("rds", "describe_db_instances", json!({}));
    assert!(left["DBInstances"].as_array().unwrap().is_empty());

    // Every refusal and both destroys are in the audit.
    let log = std::fs::read_to_string(state.path.join("dbtools").join("audit.log")).unwrap();
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["refused", "refused", "refused", "refused", "refused", "refused", "allowed", "allowed"]
    );
    assert!(entries
        .iter()
        .all(|e| e["action"] == "destroy" && e["tool"] == "rdsprov"));
}

const ONE_ENV: &str = r#"
[env.dev]
id = "combine-dev"
class = "db.t4g.micro"
ingress = ["203.0.113.7/32"]
[env.dev.alarms]
email = "ops@example.com"
"#;

fn alarms_of(moto: &MotoServer, prefix: &str) -> Vec<serde_json::Value> {
    let answer = moto.call(
        "cloudwatch",
        "describe_alarms",
        json!({"AlarmNamePrefix": prefix}),
    );
    answer["MetricAlarms"].as_array().unwrap().clone()
}

#[test]
fn alarms_notify_a_topic_and_follow_the_spec() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-alarms");
    let plan = rdsprov(&moto, &dir, ONE_ENV, &["plan"]).expect(0).json();
    assert_eq!(change(&plan, "sns-topic", "dev")["action"], "create");
    assert_eq!(
        change(&plan, "sns-subscription", "dev")["name"],
        "ops@example.com"
    );
    let alarm_plans: Vec<&serde_json::Value> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["resource"] == "alarm")
        .collect();
    assert_eq!(alarm_plans.len(), 4);
    assert!(alarm_plans.iter().all(|c| c["action"] == "create"));

    let applied = rdsprov(&moto, &dir, ONE_ENV, &["apply"]);
    let resources = applied.expect(0).json();
    let dev = &resources["instances"][0];
    assert_eq!(
        dev["alarms"],
        json!([
            "rdsprov-combine-dev-cpu",
            "rdsprov-combine-dev-connections",
            "rdsprov-combine-dev-free-storage",
            "rdsprov-combine-dev-freeable-memory"
        ])
    );
    let topic = dev["alarm_topic"].as_str().unwrap();
    assert!(topic.ends_with(":rdsprov-combine-dev-alarms"), "{topic}");
    assert!(
        applied.stderr.contains("AWS sent it a confirmation link"),
        "{}",
        applied.stderr
    );

    // What CloudWatch and SNS now hold, read by an independent client.
    let alarms = alarms_of(&moto, "rdsprov-combine-dev-");
    assert_eq!(alarms.len(), 4);
    for alarm in &alarms {
        assert_eq!(alarm["Namespace"], "AWS/RDS");
        assert_eq!(alarm["AlarmActions"], json!([topic]));
        assert_eq!(
            alarm["Dimensions"],
            json!([{"Name": "DBInstanceIdentifier", "Value": "combine-dev"}])
        );
    }
    let by_name = |name: &str| {
        alarms
            .iter()
            .find(|a| a["AlarmName"] == name)
            .unwrap_or_else(|| panic!("no alarm {name}"))
    };
    assert_eq!(by_name("rdsprov-combine-dev-cpu")["Threshold"], 80.0);
    assert_eq!(
        by_name("rdsprov-combine-dev-cpu")["ComparisonOperator"],
        "GreaterThanThreshold"
    );
    // 20 GB of storage, alarm at 10% free.
    assert_eq!(
        by_name("rdsprov-combine-dev-free-storage")["Threshold"],
        2147483648.0
    );
    assert_eq!(
        by_name("rdsprov-combine-dev-free-storage")["ComparisonOperator"],
        "LessThanThreshold"
    );
    let subscriptions = moto.call(
        "sns",
        "list_subscriptions_by_topic",
        json!({"TopicArn": topic}),
    );
    assert_eq!(
        subscriptions["Subscriptions"][0]["Endpoint"],
        "ops@example.com"
    );

    assert_eq!(
        rdsprov(&moto, &dir, ONE_ENV, &["plan"]).expect(0).json()["up_to_date"],
        true
    );
    // A new threshold is one modify, one call.
    let hotter = format!("{ONE_ENV}cpu_percent = 90\n");
    let plan = rdsprov(&moto, &dir, &hotter, &["plan"]).expect(0).json();
    let cpu = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rdsprov-combine-dev-cpu")
        .unwrap();
    assert_eq!(cpu["action"], "modify");
    assert_eq!(
        cpu["attributes"],
        json!([{"name": "fires when", "from": "CPUUtilization above 80", "to": "CPUUtilization above 90", "when": "immediately"}])
    );
    let again = rdsprov(&moto, &dir, &hotter, &["apply"]).expect(0).json();
    assert_eq!(again["changes"].as_array().unwrap().len(), 1, "{again}");
    assert_eq!(by_threshold(&moto, "rdsprov-combine-dev-cpu"), 90.0);
}

fn by_threshold(moto: &MotoServer, name: &str) -> f64 {
    alarms_of(moto, name)[0]["Threshold"].as_f64().unwrap()
}

fn rdsprov_through(
    moto: &MotoServer,
    faults: &FaultyAws,
    dir: &TempDir,
    spec: &str,
    args: &[&str],
) -> harness::Run {
    rdsprov_tool(dir, spec, args)
        .aws_through(moto, faults)
        .run()
}

/// AWS failing one kind of call (5xx on every PutMetricAlarm): the SDK retries it, then apply
/// says exactly what it had done (the instance exists) and exits 5; a rerun completes it.
#[test]
fn a_partial_failure_is_named_and_a_rerun_completes_it() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-partial");
    let faults = FaultyAws::start(
        &moto,
        json!([{"operation": "PutMetricAlarm", "status": 503, "code": "ServiceUnavailable"}]),
    );
    let failed = rdsprov_through(&moto, &faults, &dir, ONE_ENV, &["apply"]);
    failed.expect_error("rdsprov", 5, "setting alarm rdsprov-combine-dev-cpu");
    assert!(
        failed.stderr.contains("already done: ")
            && failed.stderr.contains("created instance combine-dev")
            && failed
                .stderr
                .contains("rerun `rdsprov apply` to complete the rest"),
        "{}",
        failed.stderr
    );
    let attempts = faults
        .requests()
        .iter()
        .filter(|(op, _)| op == "PutMetricAlarm")
        .count();
    assert_eq!(attempts, 5, "the SDK's standard retry: 5 attempts");
    assert!(alarms_of(&moto, "rdsprov-combine-dev-").is_empty());

    let rerun = rdsprov(&moto, &dir, ONE_ENV, &["apply"]).expect(0).json();
    let changes: Vec<&str> = rerun["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        changes.len(),
        4,
        "only the four alarms were left: {changes:?}"
    );
    assert!(changes.iter().all(|c| c.starts_with("set alarm ")));
    assert_eq!(alarms_of(&moto, "rdsprov-combine-dev-").len(), 4);
    assert_eq!(
        rdsprov(&moto, &dir, ONE_ENV, &["plan"]).expect(0).json()["up_to_date"],
        true
    );
}

/// Throttling is retried with backoff and the run succeeds; throttling that does not stop is a
/// clear error (exit 5) that says a rerun completes the work.
#[test]
fn throttling_is_retried_then_reported() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-throttle");
    let brief = FaultyAws::start(
        &moto,
        json!([{"operation": "DescribeDBInstances", "status": 400, "code": "Throttling", "times": 2}]),
    );
    let plan = rdsprov_through(&moto, &brief, &dir, ONE_ENV, &["plan"])
        .expect(0)
        .json();
    assert_eq!(change(&plan, "db-instance", "dev")["action"], "create");
    let describes: Vec<u16> = brief
        .requests()
        .into_iter()
        .filter(|(op, _)| op == "DescribeDBInstances")
        .map(|(_, status)| status)
        .collect();
    assert_eq!(describes, [400, 400, 404]);

    let endless = FaultyAws::start(
        &moto,
        json!([{"operation": "DescribeDBInstances", "status": 400, "code": "Throttling"}]),
    );
    rdsprov_through(&moto, &endless, &dir, ONE_ENV, &["plan"]).expect_error(
        "rdsprov",
        5,
        "AWS kept throttling after 5 attempts with backoff (Throttling)",
    );
}

/// Ctrl-C while apply waits for `available` (AWS slow to answer the status): exit 130 at once,
/// saying what was done and where the wait stood; the rerun finds everything and finishes.
#[test]
fn ctrl_c_during_the_wait_reports_and_a_rerun_continues() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-sigint");
    let faults = FaultyAws::start(
        &moto,
        json!([{"operation": "DescribeDBInstances", "delay": 60, "after": "CreateDBInstance"}]),
    );
    let path = dir.path.join("rds.toml");
    std::fs::write(&path, ONE_ENV).unwrap();
    let mut command = std::process::Command::new(harness::bin("rdsprov"));
    command
        .arg("apply")
        .arg("--spec")
        .arg(&path)
        .current_dir(&dir.path)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", faults.port),
        )
        .env("RDSPROV_POLL_SECONDS", "0.2")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, value) in moto.env() {
        if key != "AWS_ENDPOINT_URL" {
            command.env(key, value);
        }
    }
    let child = command.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !faults
        .requests()
        .iter()
        .any(|(op, status)| op == "CreateDBInstance" && *status == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "apply never created the instance"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The status request is now held by the proxy: apply is waiting.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let interrupted_at = std::time::Instant::now();
    let pid = child.id().to_string();
    Tool::program("kill").args(["-INT", &pid]).run().expect(0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        interrupted_at.elapsed() < std::time::Duration::from_secs(10),
        "Ctrl-C must not wait for the held request"
    );
    assert!(
        stderr.contains("interrupted while waiting for combine-dev (last status: not read yet")
            && stderr.contains("created instance combine-dev")
            && stderr.contains("rerun `rdsprov apply` to complete the rest"),
        "{stderr}"
    );
    let error: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(error["kind"], "dbtools.error/v1");

    let rerun = rdsprov(&moto, &dir, ONE_ENV, &["apply"]);
    let resources = rerun.expect(0).json();
    assert_eq!(resources["changes"], json!([]), "{}", rerun.stderr);
    assert_eq!(resources["instances"][0]["status"], "available");
}

/// `tenant add` on RDS needs the RDS CA bundle (verify-full) and an existing instance; both are
/// checked before any SQL, with where to get the bundle. (The SQL itself is the local
/// provider's, tested there: moto has no PostgreSQL behind its endpoints.)
#[test]
fn tenant_add_on_aws_names_what_it_needs() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-tenant");
    rdsprov(&moto, &dir, ONE_ENV, &["tenant", "add", "billing", "--env", "dev"]).expect_error(
        "rdsprov",
        2,
        "pass --sslrootcert with the RDS CA bundle (download https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)",
    );
    let bundle = dir.path.join("global-bundle.pem");
    std::fs::write(&bundle, "not needed before the instance exists").unwrap();
    let bundle = bundle.display().to_string();
    rdsprov(
        &moto,
        &dir,
        ONE_ENV,
        &[
            "tenant",
            "add",
            "billing",
            "--env",
            "dev",
            "--sslrootcert",
            &bundle,
        ],
    )
    .expect_error(
        "rdsprov",
        2,
        "env dev: instance combine-dev does not exist: run `rdsprov apply --spec …` first",
    );
    rdsprov(
        &moto,
        &dir,
        ONE_ENV,
        &[
            "tenant",
            "add",
            "postgres",
            "--env",
            "dev",
            "--sslrootcert",
            &bundle,
        ],
    )
    .expect_error(
        "rdsprov",
        2,
        "is taken by PostgreSQL, RDS or the master user",
    );
}

/// Restores go into a new instance, never over the live one, through the guard: from a
/// snapshot, and to the latest restorable time; each refusal says why.
#[test]
fn restore_into_a_new_instance_only() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-restore");
    let state = TempDir::new("aws-restore-audit");
    let run = |args: &[&str]| rdsprov_audited(&moto, &dir, &state, args);
    run(&["apply"]).expect(0);
    run(&["snapshot", "--env", "dev", "--name", "snap-1"]).expect(0);

    let restored = run(&[
        "restore",
        "--env",
        "dev",
        "--from-snapshot",
        "snap-1",
        "--as",
        "combine-dev-copy",
    ]);
    let resources = restored.expect(0).json();
    let copy = &resources["instances"][0];
    assert_eq!(copy["id"], "combine-dev-copy");
    assert_eq!(copy["status"], "available");
    assert!(
        restored
            .stderr
            .contains("the live instance combine-dev was not touched"),
        "{}",
        restored.stderr
    );
    let described = moto.call(
        "rds",
        "describe_db_instances",
        json!({"DBInstanceIdentifier": "combine-dev-copy"}),
    );
    let tags = described["DBInstances"][0]["TagList"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        tags.iter()
            .any(|t| t["Key"] == "restored-from" && t["Value"] == "snapshot snap-1"),
        "{tags:?}"
    );
    let live = moto.call(
        "rds",
        "describe_db_instances",
        json!({"DBInstanceIdentifier": "combine-dev"}),
    );
    assert_eq!(live["DBInstances"][0]["DBInstanceStatus"], "available");

    run(&["restore", "--env", "dev", "--latest", "--as", "combine-dev"]).expect_error(
        "rdsprov",
        2,
        "never over the live one",
    );
    run(&[
        "restore",
        "--env",
        "dev",
        "--latest",
        "--as",
        "combine-dev-copy",
    ])
    .expect_error("rdsprov", 2, "instance combine-dev-copy already exists");
    run(&[
        "restore",
        "--env",
        "dev",
        "--from-snapshot",
        "nope",
        "--as",
        "combine-dev-2",
    ])
    .expect_error("rdsprov", 2, "snapshot nope does not exist");
    run(&["restore", "--env", "dev", "--as", "combine-dev-2"]).expect_error(
        "rdsprov",
        2,
        "say where from",
    );
    // test is confirm-level: a restore copies its data.
    run(&[
        "restore",
        "--env",
        "test",
        "--latest",
        "--as",
        "combine-test-pitr",
    ])
    .expect_error("rdsprov", 3, "--confirm test");
    let pitr = run(&[
        "restore",
        "--env",
        "test",
        "--latest",
        "--as",
        "combine-test-pitr",
        "--confirm",
        "test",
    ]);
    assert_eq!(
        pitr.expect(0).json()["instances"][0]["id"],
        "combine-test-pitr"
    );

    // A restore for another env: the restored instance must not carry its source's stamp
    // records (RDS may copy a snapshot's tags onto it), so its databases count as copies, and
    // `--for dev` adopts them. moto has no database behind its endpoints: the adoption's
    // connection fails there, after the restore, and says how to finish (`dbguard adopt`).
    Tool::new("rdsprov")
        .args([
            "stamp-record",
            "--instance",
            "combine-test",
            "--database",
            "combine_test",
        ])
        .aws(&moto)
        .stdin(r#"{"env":"test","protection":"confirm","nonce":"0a"}"#)
        .run()
        .expect(0);
    moto.call(
        "rds",
        "add_tags_to_resource",
        json!({"ResourceName": "arn:aws:rds:eu-west-1:123456789012:snapshot:snap-1",
               "Tags": [{"Key": "dbtools:stamp:combine_dev", "Value": "dev:open:0b"}]}),
    );
    // A CA of our own stands in for the RDS bundle: moto has no TLS to verify anyway.
    let (bundle, _) = dbtools::server::tls::ensure_ca(&dir.path.join("ca")).unwrap();
    run(&[
        "restore",
        "--env",
        "test",
        "--latest",
        "--as",
        "combine-dev-from-test",
        "--confirm",
        "test",
        "--for",
        "dev",
    ])
    .expect(2);
    let bundle_arg = bundle.display().to_string();
    let adopted = run(&[
        "restore",
        "--env",
        "test",
        "--latest",
        "--as",
        "combine-dev-from-test",
        "--confirm",
        "test",
        "--for",
        "dev",
        "--sslrootcert",
        &bundle_arg,
    ]);
    adopted.expect_error(
        "rdsprov",
        4,
        "combine-dev-from-test is restored, but adopting its databases for env dev failed",
    );
    assert!(
        adopted.stderr.contains("`dbguard adopt dev`"),
        "{}",
        adopted.stderr
    );
    for id in ["combine-dev-from-test", "combine-dev-copy"] {
        let described = moto.call(
            "rds",
            "describe_db_instances",
            json!({"DBInstanceIdentifier": id}),
        );
        let stamps: Vec<&serde_json::Value> = described["DBInstances"][0]["TagList"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["Key"].as_str().unwrap().starts_with("dbtools:stamp:"))
            .collect();
        assert!(
            stamps.is_empty(),
            "{id} carries its source's stamp records: {stamps:?}"
        );
    }
    // apply --sslrootcert upgrades the databases in place; moto's endpoints lead nowhere.
    run(&["apply", "--sslrootcert", &bundle_arg]).expect(4);
}

/// `rdsprov … | dbenv import`: the instance and the env's entries land in dbtools.toml (its
/// comments kept), and `dbenv resolve` works at once, its password from Secrets Manager. The
/// database record is the one `tenant add` on RDS adds to the resources (moto has no
/// PostgreSQL to run that SQL against; the local provider's tests cover it).
#[test]
fn provisioned_resources_import_into_a_resolvable_env() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-import");
    rdsprov(&moto, &dir, ONE_ENV, &["apply"]).expect(0);
    let project = harness::Project::new(
        "app = \"combine\"\n# written by hand: stays\n[env.dev]\nprotection = \"open\"\n",
    );

    // apply's resources alone: the instance, and a note that the env needs a tenant.
    let status = rdsprov(&moto, &dir, ONE_ENV, &["status"])
        .expect(0)
        .stdout
        .clone();
    let first = project
        .tool("dbenv")
        .args(["import"])
        .stdin(status.clone())
        .run();
    assert!(
        first
            .stderr
            .contains("env dev has no database and role on combine-dev yet"),
        "{}",
        first.stderr
    );

    let arn = moto.create_secret(
        "rdsprov/combine-dev/tenant/billing",
        &json!({"engine": "postgres", "username": "billing", "password": "tenant-pw-1"})
            .to_string(),
    );
    let mut resources: serde_json::Value = serde_json::from_str(&status).unwrap();
    resources["instances"][0]["databases"] = json!([{
        "name": "billing", "owner": "billing", "env": "dev",
        "secret": {"source": "aws-sm", "ref": arn}
    }]);
    let imported = project
        .tool("dbenv")
        .args(["import", "--sslrootcert", "certs/rds-global-bundle.pem"])
        .stdin(resources.to_string())
        .run();
    let listing = imported.expect(0).json();
    assert_eq!(listing["kind"], "dbtools.env.list/v1");
    assert_eq!(listing["envs"][0]["provider"], "aws");
    let config = std::fs::read_to_string(project.path().join("dbtools.toml")).unwrap();
    assert!(config.contains("# written by hand: stays"), "{config}");
    assert!(config.contains("protection = \"open\""), "{config}");
    assert!(
        config.contains("[instance.combine-dev]\nprovider = \"aws\"\nregion = \"eu-west-1\""),
        "{config}"
    );

    let profile = project
        .tool("dbenv")
        .args(["resolve", "dev"])
        .aws(&moto)
        .run()
        .expect(0)
        .json();
    assert_eq!(
        profile["conn"]["host"],
        "combine-dev.aaaaaaaaaa.eu-west-1.rds.amazonaws.com"
    );
    assert_eq!(profile["conn"]["user"], "billing");
    assert_eq!(profile["conn"]["dbname"], "billing");
    assert_eq!(
        profile["conn"].get("password"),
        None,
        "a profile carries no password"
    );
    assert_eq!(profile["secret"]["source"], "aws-sm");
    assert_eq!(profile["conn"]["sslmode"], "verify-full");
    assert_eq!(profile["instance"]["provider"], "aws");
    // The secret it names is the tenant's: read from Secrets Manager when asked for by name.
    let url = project
        .tool("dbenv")
        .args(["export", "dev", "--format", "url"])
        .aws(&moto)
        .run();
    assert!(
        url.expect(0).stdout.contains(":tenant-pw-1@"),
        "{}",
        url.stdout
    );

    let again = project
        .tool("dbenv")
        .args(["import", "--sslrootcert", "certs/rds-global-bundle.pem"])
        .stdin(resources.to_string())
        .run();
    again.expect(0);
    assert!(
        again.stderr.contains("nothing to change"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(project.path().join("dbtools.toml")).unwrap(),
        config
    );

    // Anything but resources is refused with what to pipe in; nothing is written.
    project
        .tool("dbenv")
        .args(["import"])
        .stdin(serde_json::to_string(&profile).unwrap())
        .run()
        .expect_error("dbenv", 2, "dbenv import reads rdsprov's resources");
}

/// `rdsprov registry --spec F`: DATABASE_REGISTRY.md from the real state — both instances with
/// their endpoint, class, backups and protection, the tenants (from their secrets), the alarms
/// and the dated cost estimate; marked as generated.
#[test]
fn the_registry_is_rendered_from_the_real_state() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-registry");
    rdsprov(&moto, &dir, SPEC, &["apply"]).expect(0);
    moto.call(
        "secretsmanager",
        "create_secret",
        json!({"Name": "rdsprov/combine-test/tenant/billing", "SecretString": "{\"username\":\"billing\",\"password\":\"x\"}",
               "Tags": [{"Key": "env", "Value": "test"}]}),
    );
    let run = rdsprov(&moto, &dir, SPEC, &["registry"]);
    let text = run.expect(0).stdout.clone();
    assert!(
        text.starts_with("# Database registry\n\n<!-- Generated by `rdsprov registry` (aws) from the real state at "),
        "{text}"
    );
    for row in [
        "| dev | combine-dev | available | combine-dev.aaaaaaaaaa.eu-west-1.rds.amazonaws.com:5432 | postgres 17.9 | db.t4g.micro | 20 GB gp3 | false | 7 days",
        "| test | combine-test | available | combine-test.aaaaaaaaaa.eu-west-1.rds.amazonaws.com:5432 | postgres 17.9 | db.t4g.small |",
        "| combine-test | billing | billing | test | aws-sm:arn:aws:secretsmanager:eu-west-1:",
        "| combine-dev | rdsprov-combine-dev-connections, rdsprov-combine-dev-cpu, rdsprov-combine-dev-free-storage, rdsprov-combine-dev-freeable-memory | arn:aws:sns:eu-west-1:",
        "## Cost (estimate, prices as of 2024-06",
        "| all | | 40.44 | |",
    ] {
        assert!(text.contains(row), "missing {row:?} in\n{text}");
    }
    assert!(
        !text.contains("| combine-dev | billing"),
        "a tenant is listed on its own instance only"
    );
}

/// The spec on stdin (`--spec -`), as JSON here (TOML works the same): a pipeline can build it.
#[test]
fn a_spec_on_stdin_plans_like_a_file() {
    let moto = MotoServer::start();
    let spec = json!({
        "region": "eu-west-1",
        "env": {"dev": {"id": "combine-dev", "class": "db.t4g.micro", "ingress": ["203.0.113.7/32"],
                        "alarms": {"enabled": false}}}
    });
    let plan = Tool::new("rdsprov")
        .args(["plan", "--spec", "-"])
        .stdin(spec.to_string())
        .aws(&moto)
        .run()
        .expect(0)
        .json();
    assert_eq!(change(&plan, "db-instance", "dev")["action"], "create");
    assert!(
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["resource"] != "alarm"),
        "alarms off: none planned"
    );
    // 0.016 x 730 + 20 x 0.115, no alarms
    assert_eq!(plan["cost"]["monthly_usd"], 13.98);
    Tool::new("rdsprov")
        .args(["plan", "--spec", "-"])
        .stdin("{\"env\": ")
        .aws(&moto)
        .run()
        .expect_error("rdsprov", 2, "spec on stdin");
}

const AURORA_SPEC: &str = r#"
[env.test]
id = "intranet-test"
engine = "aurora-postgresql"
engine_version = "16"
min_acu = 0.5
max_acu = 2
ingress = ["10.0.1.0/24"]
parameters = { log_min_duration_statement = "1000" }
"#;

fn cluster(moto: &MotoServer, id: &str) -> serde_json::Value {
    moto.call(
        "rds",
        "describe_db_clusters",
        json!({"DBClusterIdentifier": id}),
    )["DBClusters"][0]
        .clone()
}

fn members(cluster: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = cluster["DBClusterMembers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["DBInstanceIdentifier"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Aurora Serverless v2 from plan to destroy: a cluster with a db.serverless writer, its
/// capacity range, cluster parameter group and alarms on the writer (capacity instead of free
/// storage); the cost in ACU-hours; a second apply changes nothing; max_acu and Multi-AZ (a
/// reader) change in place; snapshot, restore into a new cluster, and a guarded destroy that
/// removes the members before the cluster and keeps a final snapshot.
#[test]
fn aurora_serverless_v2_from_plan_to_destroy() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-aurora");
    let state = TempDir::new("aws-aurora-audit");
    let run = |spec: &str, args: &[&str]| {
        rdsprov_tool(&dir, spec, args)
            .aws(&moto)
            .env("XDG_STATE_HOME", &state.path)
            .run()
    };

    let plan = run(AURORA_SPEC, &["plan"]).expect(0).json();
    let created = change(&plan, "db-cluster", "test");
    assert_eq!(created["action"], "create");
    let attributes = created["attributes"].as_array().unwrap();
    let value = |name: &str| {
        attributes
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {created}"))["to"]
            .clone()
    };
    assert_eq!(value("min_acu"), "0.5");
    assert_eq!(value("max_acu"), "2");
    // A major alone: the newest minor AWS offers for Aurora Serverless v2, shown exactly.
    assert_eq!(value("engine_version"), "16.10");
    assert_eq!(value("deletion_protection"), "true");
    let writer = change(&plan, "db-instance", "test");
    assert_eq!(writer["name"], "intranet-test-1");
    assert_eq!(writer["action"], "create");
    // 0.5 ACU x 0.12 x 730 h = 43.80 + 20 GB x 0.10 = 2.00 + 4 alarms x 0.10 = 46.20
    assert_eq!(plan["cost"]["monthly_usd"], 46.2);
    let detail = plan["cost"]["lines"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("at its minimum 0.5 ACU")
            && detail.contains("at its maximum 2 ACU: $175.20"),
        "{detail}"
    );

    // AWS advises five minutes between a new cluster parameter group and a cluster using it
    // (shortened here by RDSPROV_SETTLE_SECONDS, long enough that the steps between the two
    // never use it up, however loaded the machine).
    let applied = rdsprov_tool(&dir, AURORA_SPEC, &["apply"])
        .aws(&moto)
        .env("XDG_STATE_HOME", &state.path)
        .env("RDSPROV_SETTLE_SECONDS", "5")
        .run();
    let resources = applied.expect(0).json();
    let settled = applied
        .stderr
        .find("waiting for cluster parameter group rdsprov-intranet-test to settle (AWS advises 5 minutes");
    let cluster_created = applied.stderr.find("created Aurora cluster intranet-test");
    assert!(
        settled.is_some() && settled < cluster_created,
        "{}",
        applied.stderr
    );
    let instance = &resources["instances"][0];
    assert_eq!(instance["id"], "intranet-test");
    assert_eq!(instance["engine"], "aurora-postgresql");
    assert_eq!(instance["class"], "db.serverless");
    assert_eq!(instance["status"], "available");
    assert!(
        instance["endpoint"]["host"]
            .as_str()
            .unwrap()
            .starts_with("intranet-test.cluster-"),
        "the writer endpoint of the cluster: {instance}"
    );
    assert_eq!(instance["parameter_group"], "rdsprov-intranet-test");
    let described = cluster(&moto, "intranet-test");
    assert_eq!(
        described["ServerlessV2ScalingConfiguration"],
        json!({"MinCapacity": 0.5, "MaxCapacity": 2.0})
    );
    assert_eq!(described["Engine"], "aurora-postgresql");
    assert_eq!(described["StorageEncrypted"], true);
    assert_eq!(described["DeletionProtection"], true);
    assert_eq!(members(&described), ["intranet-test-1"]);
    assert_eq!(
        described["VpcSecurityGroups"][0]["VpcSecurityGroupId"],
        instance["security_group"]
    );
    let writer = moto.call(
        "rds",
        "describe_db_instances",
        json!({"DBInstanceIdentifier": "intranet-test-1"}),
    );
    assert_eq!(writer["DBInstances"][0]["DBInstanceClass"], "db.serverless");
    assert_eq!(writer["DBInstances"][0]["PubliclyAccessible"], false);
    let parameters = moto.call(
        "rds",
        "describe_db_cluster_parameters",
        json!({"DBClusterParameterGroupName": "rdsprov-intranet-test"}),
    );
    let set: Vec<(String, String)> = parameters["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["ParameterName"].as_str().unwrap().to_string(),
                p["ParameterValue"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        set.contains(&("rds.force_ssl".into(), "1".into())),
        "{set:?}"
    );
    assert!(
        set.contains(&("log_min_duration_statement".into(), "1000".into())),
        "{set:?}"
    );
    let alarms = alarms_of(&moto, "rdsprov-intranet-test-");
    let capacity = alarms
        .iter()
        .find(|a| a["AlarmName"] == "rdsprov-intranet-test-capacity")
        .expect("a capacity alarm");
    assert_eq!(capacity["MetricName"], "ACUUtilization");
    assert_eq!(capacity["Threshold"], 90.0);
    assert!(alarms
        .iter()
        .all(|a| a["Dimensions"][0]["Value"] == "intranet-test-1"
            && a["MetricName"] != "FreeStorageSpace"));
    assert_eq!(alarms.len(), 4);

    assert_eq!(
        run(AURORA_SPEC, &["plan"]).expect(0).json()["up_to_date"],
        true
    );
    let again = run(AURORA_SPEC, &["apply"]);
    assert_eq!(again.expect(0).json()["changes"], json!([]));
    assert!(
        again.stderr.contains("nothing to change"),
        "{}",
        again.stderr
    );

    // More capacity and a reader in another zone.
    let bigger = AURORA_SPEC.replace("max_acu = 2", "max_acu = 4\nmulti_az = true");
    let plan = run(&bigger, &["plan"]).expect(0).json();
    let modify = change(&plan, "db-cluster", "test");
    assert_eq!(modify["action"], "modify");
    assert_eq!(
        modify["attributes"],
        json!([{"name": "max_acu", "from": "2", "to": "4", "when": "immediately"}])
    );
    let reader: Vec<&serde_json::Value> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["resource"] == "db-instance" && c["action"] == "create")
        .collect();
    assert_eq!(reader.len(), 1);
    assert_eq!(reader[0]["name"], "intranet-test-2");
    run(&bigger, &["apply"]).expect(0);
    let described = cluster(&moto, "intranet-test");
    assert_eq!(
        described["ServerlessV2ScalingConfiguration"]["MaxCapacity"],
        4.0
    );
    assert_eq!(members(&described), ["intranet-test-1", "intranet-test-2"]);
    // The reader in a zone of the cluster other than the writer's (Aurora would choose any).
    let zone = |id: &str| {
        moto.call(
            "rds",
            "describe_db_instances",
            json!({"DBInstanceIdentifier": id}),
        )["DBInstances"][0]["AvailabilityZone"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (writer_zone, reader_zone) = (zone("intranet-test-1"), zone("intranet-test-2"));
    assert_ne!(writer_zone, reader_zone);
    assert!(
        described["AvailabilityZones"]
            .as_array()
            .unwrap()
            .contains(&json!(reader_zone)),
        "{described}"
    );
    assert_eq!(run(&bigger, &["plan"]).expect(0).json()["up_to_date"], true);
    let status = run(&bigger, &["status"]).expect(0).json();
    assert_eq!(status["instances"][0]["class"], "db.serverless");
    assert_eq!(status["instances"][0]["engine_version"], "16.10");
    let registry = run(&bigger, &["registry"]);
    assert!(
        registry
            .expect(0)
            .stdout
            .contains("Aurora storage (grows by itself); Serverless v2 0.5–4 ACU"),
        "{}",
        registry.stdout
    );

    // Snapshot, and a restore into a new cluster with its own members.
    let snapshot = run(
        &bigger,
        &["snapshot", "--env", "test", "--name", "before-v2"],
    )
    .expect(0)
    .json();
    assert_eq!(snapshot["status"], "available");
    let listed = moto.call(
        "rds",
        "describe_db_cluster_snapshots",
        json!({"DBClusterSnapshotIdentifier": "before-v2"}),
    );
    assert_eq!(
        listed["DBClusterSnapshots"][0]["DBClusterIdentifier"],
        "intranet-test"
    );
    run(
        &bigger,
        &[
            "restore",
            "--env",
            "test",
            "--from-snapshot",
            "no-such",
            "--as",
            "intranet-copy",
            "--confirm",
            "test",
        ],
    )
    .expect_error("rdsprov", 2, "cluster snapshot no-such does not exist");
    let restored = run(
        &bigger,
        &[
            "restore",
            "--env",
            "test",
            "--from-snapshot",
            "before-v2",
            "--as",
            "intranet-copy",
            "--confirm",
            "test",
        ],
    );
    let copy = restored.expect(0).json();
    assert_eq!(copy["instances"][0]["id"], "intranet-copy");
    assert_eq!(copy["instances"][0]["status"], "available");
    assert!(
        restored
            .stderr
            .contains("the live Aurora cluster intranet-test was not touched"),
        "{}",
        restored.stderr
    );
    assert_eq!(
        members(&cluster(&moto, "intranet-copy")),
        ["intranet-copy-1", "intranet-copy-2"]
    );
    assert_eq!(members(&cluster(&moto, "intranet-test")).len(), 2);

    // Multi-AZ off: our reader goes.
    let plan = run(
        AURORA_SPEC.replace("max_acu = 2", "max_acu = 4").as_str(),
        &["plan"],
    )
    .expect(0)
    .json();
    assert!(plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "intranet-test-2" && c["action"] == "delete"));
    // After a failover the reader is the writer: apply refuses to delete it.
    moto.call(
        "rds",
        "failover_db_cluster",
        json!({"DBClusterIdentifier": "intranet-test", "TargetDBInstanceIdentifier": "intranet-test-2"}),
    );
    run(
        AURORA_SPEC.replace("max_acu = 2", "max_acu = 4").as_str(),
        &["apply"],
    )
    .expect_error(
        "rdsprov",
        2,
        "intranet-test-2 is the writer of intranet-test now (after a failover): fail over to intranet-test-1 first",
    );
    assert_eq!(members(&cluster(&moto, "intranet-test")).len(), 2);

    // Destroy: guarded by the stamps recorded on the cluster (a tag on its ARN), deletion
    // protection first, members before the cluster, final snapshot.
    run(
        &bigger,
        &["destroy", "--env", "test", "--confirm", "intranet-test"],
    )
    .expect_error("rdsprov", 3, "no database stamp is recorded on it");
    Tool::new("rdsprov")
        .args([
            "stamp-record",
            "--instance",
            "intranet-test",
            "--database",
            "intranet",
        ])
        .aws(&moto)
        .stdin(r#"{"env":"test","protection":"confirm","nonce":"0c"}"#)
        .run()
        .expect(0);
    run(
        &bigger,
        &["destroy", "--env", "test", "--confirm", "intranet-test"],
    )
    .expect_error("rdsprov", 3, "add --confirm test");
    run(&bigger, &["destroy", "--env", "test", "--confirm", "intranet-test,test"]).expect_error(
        "rdsprov",
        3,
        "Aurora cluster intranet-test has deletion protection on: add --disable-deletion-protection",
    );
    assert_eq!(
        members(&cluster(&moto, "intranet-test")).len(),
        2,
        "refusal changed nothing"
    );
    let gone = run(
        &bigger,
        &[
            "destroy",
            "--env",
            "test",
            "--confirm",
            "intranet-test,test",
            "--disable-deletion-protection",
        ],
    );
    gone.expect(0);
    assert!(
        gone.stderr.contains("deleted instance intranet-test-1")
            && gone.stderr.contains("deleted instance intranet-test-2")
            && gone.stderr.contains(
                "deleted Aurora cluster intranet-test (final snapshot intranet-test-final-"
            ),
        "{}",
        gone.stderr
    );
    let clusters = moto.call("rds", "describe_db_clusters", json!({}));
    let left: Vec<&str> = clusters["DBClusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["DBClusterIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["intranet-copy"]);
    let finals = moto.call(
        "rds",
        "describe_db_cluster_snapshots",
        json!({"DBClusterIdentifier": "intranet-test", "SnapshotType": "manual"}),
    );
    assert!(
        finals["DBClusterSnapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["DBClusterSnapshotIdentifier"]
                .as_str()
                .unwrap()
                .starts_with("intranet-test-final-")),
        "{finals}"
    );
}

/// A named VPC: its subnets become the DB subnet group `rdsprov-<id>` (created, then brought
/// in line when the list changes), the security group is made in that VPC and admits a CIDR
/// and the app's security group (by reference), and the instance is
/// created in both; enhanced monitoring's interval and role reach CreateDBInstance (seen in the
/// request: moto keeps no MonitoringInterval, so its plan keeps offering that one change).
#[test]
fn a_named_vpc_gets_a_subnet_group_and_enhanced_monitoring_is_requested() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-vpc");
    let vpc = moto.call("ec2", "create_vpc", json!({"CidrBlock": "10.20.0.0/16"}))["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    let subnet = |cidr: &str, zone: &str| {
        moto.call(
            "ec2",
            "create_subnet",
            json!({"VpcId": vpc, "CidrBlock": cidr, "AvailabilityZone": zone}),
        )["Subnet"]["SubnetId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a, b, c) = (
        subnet("10.20.1.0/24", "eu-west-1a"),
        subnet("10.20.2.0/24", "eu-west-1b"),
        subnet("10.20.3.0/24", "eu-west-1c"),
    );
    let app = moto.call(
        "ec2",
        "create_security_group",
        json!({"GroupName": "app", "Description": "the app's instances", "VpcId": vpc}),
    )["GroupId"]
        .as_str()
        .unwrap()
        .to_string();
    let role = "arn:aws:iam::123456789012:role/rds-monitoring-role";
    let spec = format!(
        r#"
[env.test]
id = "combine-test"
class = "db.t4g.small"
vpc_id = "{vpc}"
subnet_ids = ["{a}", "{b}"]
ingress = ["10.20.0.0/16", "{app}"]
monitoring_interval = 60
monitoring_role_arn = "{role}"
"#
    );
    let plan = rdsprov(&moto, &dir, &spec, &["plan"]).expect(0).json();
    let group = change(&plan, "db-subnet-group", "test");
    assert_eq!(group["action"], "create");
    assert_eq!(group["name"], "rdsprov-combine-test");
    let mut both = [a.clone(), b.clone()];
    both.sort();
    assert_eq!(group["attributes"][0]["to"], both.join(", "));

    let faults = FaultyAws::start(&moto, json!([]));
    let applied = rdsprov_through(&moto, &faults, &dir, &spec, &["apply"]);
    let resources = applied.expect(0).json();
    let sent = faults.params("CreateDBInstance");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["DBSubnetGroupName"], "rdsprov-combine-test");
    assert_eq!(sent[0]["MonitoringInterval"], "60");
    assert_eq!(sent[0]["MonitoringRoleArn"], role);
    let described = moto.call(
        "rds",
        "describe_db_instances",
        json!({"DBInstanceIdentifier": "combine-test"}),
    );
    assert_eq!(
        described["DBInstances"][0]["DBSubnetGroup"]["DBSubnetGroupName"],
        "rdsprov-combine-test"
    );
    let group_id = resources["instances"][0]["security_group"]
        .as_str()
        .unwrap();
    let groups = moto.call(
        "ec2",
        "describe_security_groups",
        json!({"GroupIds": [group_id]}),
    );
    assert_eq!(groups["SecurityGroups"][0]["VpcId"], vpc.as_str());
    // The app's security group is admitted by reference, next to the CIDR.
    let permissions = groups["SecurityGroups"][0]["IpPermissions"]
        .as_array()
        .unwrap();
    let pairs: Vec<&str> = permissions
        .iter()
        .flat_map(|p| p["UserIdGroupPairs"].as_array().unwrap())
        .map(|g| g["GroupId"].as_str().unwrap())
        .collect();
    assert_eq!(pairs, [app.as_str()]);

    let again = rdsprov(&moto, &dir, &spec, &["plan"]).expect(0).json();
    assert_eq!(change(&again, "db-subnet-group", "test")["action"], "none");
    assert_eq!(change(&again, "security-group", "test")["action"], "none");
    assert_eq!(
        change(&again, "db-instance", "test")["attributes"],
        json!([{"name": "monitoring_interval", "from": "0", "to": "60", "when": "immediately"}]),
        "moto does not keep MonitoringInterval; everything else is in line"
    );

    // A third subnet: the group is brought in line. (Checked in the request: moto's
    // ModifyDBSubnetGroup drops the group from its state — moto 5.2.1 to 5.2.5.)
    let wider = spec.replace(&format!("\"{b}\"]"), &format!("\"{b}\", \"{c}\"]"));
    let plan = rdsprov(&moto, &dir, &wider, &["plan"]).expect(0).json();
    let modify = change(&plan, "db-subnet-group", "test");
    assert_eq!(modify["action"], "modify");
    assert_eq!(modify["attributes"][0]["from"], both.join(", "));
    let widened = rdsprov_through(&moto, &faults, &dir, &wider, &["apply"]);
    widened.expect(0);
    assert!(
        widened
            .stderr
            .contains("set the subnets of rdsprov-combine-test to "),
        "{}",
        widened.stderr
    );
    let sent = faults.params("ModifyDBSubnetGroup");
    assert_eq!(sent.len(), 1);
    let mut subnets: Vec<&str> = (1..=3)
        .map(|n| {
            sent[0][format!("SubnetIds.SubnetIdentifier.{n}")]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    subnets.sort();
    let mut all = [a.as_str(), b.as_str(), c.as_str()];
    all.sort();
    assert_eq!(subnets, all, "{}", sent[0]);
    // The instance is asked for nothing but the interval moto forgot.
    let modified = faults.params("ModifyDBInstance");
    assert_eq!(modified.len(), 1);
    let mut keys: Vec<&String> = modified[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "Action",
            "ApplyImmediately",
            "DBInstanceIdentifier",
            "MonitoringInterval",
            "MonitoringRoleArn",
            "Version"
        ]
    );
}

/// A change that cannot happen in place (storage encryption) is refused before any call, even
/// when the same spec also changes things that could (an ingress rule): nothing half done.
#[test]
fn what_cannot_change_in_place_is_refused_before_any_change() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-fixed");
    rdsprov(&moto, &dir, ONE_ENV, &["apply"]).expect(0);
    let changed = ONE_ENV
        .replace(
            "ingress = [\"203.0.113.7/32\"]",
            "ingress = [\"203.0.113.7/32\", \"198.51.100.0/24\"]",
        )
        .replace(
            "class = \"db.t4g.micro\"",
            "class = \"db.t4g.micro\"\nencrypted = false",
        );
    let faults = FaultyAws::start(&moto, json!([]));
    rdsprov_through(&moto, &faults, &dir, &changed, &["apply"]).expect_error(
        "rdsprov",
        2,
        "env dev: encrypted of combine-dev cannot change in place (true → false)",
    );
    assert_no_mutating_call(&faults);
}

/// Every call that reached AWS through `proxy` was a read (Describe/List/Get), and there were
/// some: a run that reached nothing proves nothing.
fn assert_no_mutating_call(proxy: &FaultyAws) {
    let calls: Vec<String> = proxy.requests().into_iter().map(|(op, _)| op).collect();
    assert!(
        calls.iter().any(|op| op == "DescribeDBInstances"),
        "the run read nothing through the proxy: {calls:?}"
    );
    let mutating: Vec<&String> = calls
        .iter()
        .filter(|op| {
            !op.starts_with("Describe") && !op.starts_with("List") && !op.starts_with("Get")
        })
        .collect();
    assert!(mutating.is_empty(), "mutating calls: {mutating:?}");
}

const THREE_ENVS: &str = r#"
[env.dev]
id = "shop-dev"
class = "db.t4g.micro"
[env.test]
id = "shop-test"
class = "db.t4g.micro"
[env.stage]
id = "shop-stage"
class = "db.t4g.micro"
"#;

/// Several envs at once: each says what it does on its own lines, one env's failure leaves
/// the others whole (and says what each did), a rerun completes the failed one, and a destroy
/// of several envs keeps each env's own confirmation.
#[test]
fn several_envs_apply_at_once_and_a_failure_leaves_the_others_whole() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-envs");
    // Instances take 3 s to become available; stage's creation fails (after the SDK's retries).
    let faults = FaultyAws::start(
        &moto,
        json!([
            {"operation": "DescribeDBInstances", "hold": "creating", "seconds": 3},
            {"operation": "CreateDBInstance", "params": {"DBInstanceIdentifier": "shop-stage"},
             "status": 400, "code": "InsufficientDBInstanceCapacity"}
        ]),
    );
    let apply = rdsprov_tool(&dir, THREE_ENVS, &["apply"])
        .aws_through(&moto, &faults)
        .run();
    apply.expect_error("rdsprov", 5, "env stage:");
    let error = apply.stderr.lines().last().unwrap();
    assert!(
        error.contains("InsufficientDBInstanceCapacity")
            && error.contains("already done: created security group")
            && error.contains("completed: env dev, env test"),
        "{error}"
    );
    // Concurrently: test's instance was created while dev was still waiting for its own.
    let lines: Vec<&str> = apply.stderr.lines().collect();
    let test_created = lines
        .iter()
        .position(|l| l.contains("env test: created instance shop-test"))
        .unwrap_or_else(|| panic!("{}", apply.stderr));
    let dev_last_wait = lines
        .iter()
        .rposition(|l| l.contains("env dev: waiting for shop-dev: creating"))
        .unwrap_or_else(|| panic!("{}", apply.stderr));
    assert!(
        test_created < dev_last_wait,
        "the envs ran one after the other, not at once: {}",
        apply.stderr
    );
    for id in ["shop-dev", "shop-test"] {
        let found = moto.call(
            "rds",
            "describe_db_instances",
            json!({"DBInstanceIdentifier": id}),
        );
        assert_eq!(found["DBInstances"][0]["DBInstanceStatus"], "available");
    }

    // The rerun completes stage and changes nothing else.
    let rerun = rdsprov(&moto, &dir, THREE_ENVS, &["apply"]);
    let resources = rerun.expect(0).json();
    let changes: Vec<&str> = resources["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        changes
            .iter()
            .all(|c| !c.contains("shop-dev") && !c.contains("shop-test"))
            && changes
                .iter()
                .any(|c| c.starts_with("created instance shop-stage")),
        "{changes:?}"
    );
    assert_eq!(resources["instances"].as_array().unwrap().len(), 3);
    let plan = rdsprov(&moto, &dir, THREE_ENVS, &["plan"]).expect(0).json();
    assert_eq!(plan["up_to_date"], true, "{plan}");
    // status and wait read every env (in the spec's order, by name) or those named (in the
    // order named).
    for args in [
        &["status"][..],
        &["wait"],
        &["status", "--env", "stage", "--env", "dev"],
    ] {
        let shown = rdsprov(&moto, &dir, THREE_ENVS, args).expect(0).json();
        let envs: Vec<&str> = shown["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["env"].as_str().unwrap())
            .collect();
        let expected: &[&str] = if args.len() > 1 {
            &["stage", "dev"]
        } else {
            &["dev", "stage", "test"]
        };
        assert_eq!(envs, expected, "{args:?}");
    }

    // A destroy of two envs: test's own confirmation is missing, so neither goes.
    let destroy = |confirm: &str| {
        rdsprov(
            &moto,
            &dir,
            THREE_ENVS,
            &[
                "destroy",
                "--env",
                "dev",
                "--env",
                "test",
                "--confirm",
                confirm,
                "--break-glass",
                "tearing the demo down",
                "--disable-deletion-protection",
            ],
        )
    };
    destroy("shop-dev,dev").expect_error("rdsprov", 3, "type --confirm shop-test");
    let all = moto.call("rds", "describe_db_instances", json!({}));
    assert_eq!(
        all["DBInstances"].as_array().unwrap().len(),
        3,
        "nothing went"
    );
    let gone = destroy("shop-dev,dev,shop-test,test");
    gone.expect(0);
    assert!(
        gone.stderr
            .contains("env dev: deleted instance shop-dev (final snapshot")
            && gone
                .stderr
                .contains("env test: deleted instance shop-test (final snapshot"),
        "{}",
        gone.stderr
    );
    let left = moto.call("rds", "describe_db_instances", json!({}));
    let left: Vec<&str> = left["DBInstances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|db| db["DBInstanceIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["shop-stage"]);
}

/// Ctrl-C with several envs: every env stops (each wait at once) and says where it stood; a
/// rerun continues. A second Ctrl-C stops at once even while an AWS call is still out.
#[test]
fn ctrl_c_stops_every_env_and_a_second_one_stops_at_once() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-sigint-envs");
    let two_envs = THREE_ENVS.split("[env.stage]").next().unwrap();
    let faults = FaultyAws::start(
        &moto,
        json!([{"operation": "DescribeDBInstances", "delay": 60, "after": "CreateDBInstance"}]),
    );
    let child = rdsprov_tool(&dir, two_envs, &["apply"])
        .aws_through(&moto, &faults)
        .spawn();
    let created = |faults: &FaultyAws| {
        faults
            .requests()
            .iter()
            .filter(|(op, status)| op == "CreateDBInstance" && *status == 200)
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while created(&faults) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "apply never created both instances"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.signal("INT");
    let stopped = child.wait_within(std::time::Duration::from_secs(20), "apply after Ctrl-C");
    let stderr = &stopped.stderr;
    stopped.expect(130);
    let last = stderr.lines().last().unwrap_or_default();
    for env in ["dev", "test"] {
        assert!(
            last.contains(&format!(
                "env {env}: interrupted while waiting for shop-{env}"
            )) && stderr.contains(&format!("env {env}: created instance shop-{env}")),
            "{stderr}"
        );
    }
    let rerun = rdsprov(&moto, &dir, two_envs, &["apply"]);
    assert_eq!(
        rerun.expect(0).json()["changes"],
        json!([]),
        "{}",
        rerun.stderr
    );

    // A call held out (the instance's creation): the first Ctrl-C waits for it and says so,
    // the second stops at once.
    let held = FaultyAws::start(
        &moto,
        json!([{"operation": "CreateDBInstance", "delay": 60}]),
    );
    let other = TempDir::new("aws-sigint-held");
    let child = rdsprov_tool(
        &other,
        &two_envs.replace("shop-", "held-"),
        &["apply", "--env", "dev"],
    )
    .aws_through(&moto, &held)
    .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while held.params("CreateDBInstance").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "apply never asked for the instance"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.signal("INT");
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.signal("INT");
    // The held call answers after 60 s: stopping within 20 means it was not waited for.
    let stopped = child.wait_within(
        std::time::Duration::from_secs(20),
        "apply after two Ctrl-Cs",
    );
    let stderr = &stopped.stderr;
    stopped.expect(130);
    assert!(
        stderr.contains("each env stops after its current AWS call (Ctrl-C again to stop at once)")
            && stderr.contains("interrupted again: stopping now"),
        "{stderr}"
    );
}

const MOVING: &str = r#"
[env.dev]
id = "shop-dev"
class = "db.t4g.micro"
engine_version = "16.9"
storage_gb = 20
max_storage_gb = 30
backup_window = "03:00-03:30"
maintenance_window = "Sun:04:30-Sun:05:30"
ingress = ["203.0.113.7/32"]
[env.dev.alarms]
enabled = false
"#;

/// What AWS does by itself is no drift (through the double, which plays it on a clock the test
/// moves): a minor version upgrade, storage grown by autoscaling, the maintenance window
/// answered in lower case; and a source a machine's own rule already admits, once the spec
/// lists it too, is not added again (AWS would answer InvalidPermission.Duplicate). The plan
/// is clean and a second apply makes no mutating call.
#[test]
fn aws_s_own_moves_leave_the_plan_clean() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-moves");
    let double = FaultyAws::start(
        &moto,
        json!([
            {"move": "minor-upgrade", "id": "shop-dev", "to": "16.11", "at": 3600},
            {"move": "autoscale", "id": "shop-dev", "to": 26, "at": 3600}
        ]),
    );
    let through = |spec: &str, args: &[&str]| rdsprov_through(&moto, &double, &dir, spec, args);
    let applied = through(MOVING, &["apply"]).expect(0).json();
    let group = applied["instances"][0]["security_group"]
        .as_str()
        .unwrap()
        .to_string();
    moto.call(
        "ec2",
        "authorize_security_group_ingress",
        json!({"GroupId": group, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
            "IpRanges": [{"CidrIp": "198.51.100.7/32", "Description": "dbtools:ada@laptop"}]}]}),
    );
    let listed = MOVING.replace(
        "ingress = [\"203.0.113.7/32\"]",
        "ingress = [\"203.0.113.7/32\", \"198.51.100.7/32\"]",
    );
    double.advance(2 * 3600);
    // The autoscaling limit must stay 10% above the storage the instance has now (26 GB).
    let tight = listed.replace("max_storage_gb = 30", "max_storage_gb = 28");
    through(&tight, &["apply"]).expect_error(
        "rdsprov",
        2,
        "env dev: max_storage_gb 28: RDS wants the autoscaling limit at least 10% above storage_gb 26",
    );
    let status = through(&listed, &["status"]).expect(0).json();
    assert_eq!(
        status["instances"][0]["engine_version"], "16.11",
        "the double moved"
    );
    let plan = through(&listed, &["plan"]).expect(0).json();
    assert_eq!(plan["up_to_date"], true, "{plan}");
    let before = double.requests().len();
    let again = through(&listed, &["apply"]);
    again.expect(0);
    let calls = &double.requests()[before..];
    let mutating = mutating_calls(calls);
    assert!(
        calls.iter().any(|(op, _)| op == "DescribeDBInstances") && mutating.is_empty(),
        "{calls:?}\n{}",
        again.stderr
    );
}

/// A cluster snapshot id is at most 63 characters (an instance's 255): the default names for
/// a long cluster id — a manual snapshot, the final one of a destroy — are shortened to fit,
/// through the double, which refuses longer ones as AWS does.
#[test]
fn snapshot_names_of_a_long_cluster_id_fit() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-long-id");
    let double = FaultyAws::start(&moto, json!([]));
    let id = format!("intranet-{}", "x".repeat(50));
    let spec = format!(
        "[env.dev]\nid = \"{id}\"\nengine = \"aurora-postgresql\"\n[env.dev.alarms]\nenabled = false\n"
    );
    let through = |args: &[&str]| {
        rdsprov_tool(&dir, &spec, args)
            .aws_through(&moto, &double)
            .run()
    };
    through(&["apply"]).expect(0);
    let taken = through(&["snapshot", "--env", "dev"]).expect(0).json();
    let snapshot = taken["snapshot"].as_str().unwrap();
    assert!(
        snapshot.len() <= 63 && snapshot.starts_with("intranet-xxx"),
        "{snapshot}"
    );
    // No database stamp is recorded on it, so it counts as locked: the id, the env and a reason.
    let confirm = format!("{id},dev");
    let gone = through(&[
        "destroy",
        "--env",
        "dev",
        "--confirm",
        &confirm,
        "--break-glass",
        "a test cluster",
    ]);
    gone.expect(0);
    let finals = moto.call(
        "rds",
        "describe_db_cluster_snapshots",
        json!({"SnapshotType": "manual"}),
    );
    let names: Vec<&str> = finals["DBClusterSnapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["DBClusterSnapshotIdentifier"].as_str().unwrap())
        .collect();
    assert!(
        names.len() == 2 && names.iter().all(|n| n.len() <= 63),
        "{names:?}\n{}",
        gone.stderr
    );
    assert!(names.iter().any(|n| n.contains("-final-")), "{names:?}");
}

/// Waits read AWS as it answers (through the double): right after a modify the first read can
/// still say `available`, so a wait after a modify wants two ready reads in a row;
/// `storage-optimization`, which follows a storage change for hours, counts as ready; a state
/// an instance does not leave by itself ends the wait at once, saying what to do.
#[test]
fn waits_read_aws_as_it_answers() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-waits");
    let spec = "[env.dev]\nid = \"shop-dev\"\nclass = \"db.t4g.micro\"\nstorage_gb = 20\n[env.dev.alarms]\nenabled = false\n";
    rdsprov(&moto, &dir, spec, &["apply"]).expect(0);
    let double = FaultyAws::start(
        &moto,
        json!([
            {"operation": "DescribeDBInstances", "hold": "modifying", "seconds": 3,
             "on": "ModifyDBInstance", "stale": 1},
            {"operation": "DescribeDBInstances", "hold": "storage-optimization", "seconds": 21600,
             "on": "ModifyDBInstance", "when": "AllocatedStorage"}
        ]),
    );
    let bigger = spec.replace("storage_gb = 20", "storage_gb = 30");
    let grown = rdsprov_tool(&dir, &bigger, &["apply"])
        .aws_through(&moto, &double)
        .spawn()
        .wait_within(
            std::time::Duration::from_secs(60),
            "apply of a storage change",
        );
    let resources = grown.expect(0).json();
    assert_eq!(
        resources["instances"][0]["status"], "storage-optimization",
        "{}",
        grown.stderr
    );
    assert!(
        grown
            .stderr
            .contains("env dev: waiting for shop-dev: modifying"),
        "the stale `available` right after the modify did not end the wait: {}",
        grown.stderr
    );

    let stuck = FaultyAws::start(
        &moto,
        json!([{"operation": "DescribeDBInstances", "hold": "insufficient-capacity",
                "seconds": 3600, "on": "ModifyDBInstance"}]),
    );
    let other_class = bigger.replace("db.t4g.micro", "db.t4g.small");
    rdsprov_tool(&dir, &other_class, &["apply"])
        .aws_through(&moto, &stuck)
        .spawn()
        .wait_within(
            std::time::Duration::from_secs(60),
            "apply into insufficient-capacity",
        )
        .expect_error(
            "rdsprov",
            5,
            "is insufficient-capacity: RDS has no capacity for its class",
        );
}

/// A master secret scheduled for deletion (DeleteSecret with a recovery window) still answers
/// DescribeSecret, but its value cannot be read: plan says it is restored, apply restores it
/// (RestoreSecret), and the plan is clean again.
#[test]
fn a_secret_scheduled_for_deletion_is_restored() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-secret-deleted");
    let spec = "[env.dev]\nid = \"shop-dev\"\nclass = \"db.t4g.micro\"\n[env.dev.alarms]\nenabled = false\n";
    rdsprov(&moto, &dir, spec, &["apply"]).expect(0);
    moto.call(
        "secretsmanager",
        "delete_secret",
        json!({"SecretId": "rdsprov/shop-dev/master", "RecoveryWindowInDays": 7}),
    );
    let plan = rdsprov(&moto, &dir, spec, &["plan"]).expect(0).json();
    let secret = change(&plan, "secret", "dev");
    assert_eq!(secret["action"], "modify", "{plan}");
    assert_eq!(secret["attributes"][0]["to"], "cancelled (RestoreSecret)");
    let applied = rdsprov(&moto, &dir, spec, &["apply"]);
    applied.expect(0);
    assert!(
        applied
            .stderr
            .contains("restored secret rdsprov/shop-dev/master (it was scheduled for deletion)"),
        "{}",
        applied.stderr
    );
    let described = moto.call(
        "secretsmanager",
        "describe_secret",
        json!({"SecretId": "rdsprov/shop-dev/master"}),
    );
    assert!(described["DeletedDate"].is_null(), "{described}");
    let again = rdsprov(&moto, &dir, spec, &["plan"]).expect(0).json();
    assert_eq!(again["up_to_date"], true, "{again}");
}

/// A master secret lost while its instance lives (deleted without recovery) gets a new password,
/// handed to the instance without ApplyImmediately: RDS applies a new master password as soon as
/// possible anyway, and ApplyImmediately would also apply every change waiting for the
/// maintenance window (an unplanned outage on a non-dev env).
#[test]
fn a_lost_secret_gets_a_new_password_without_applying_pending_changes() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-secret-lost");
    let double = FaultyAws::start(&moto, json!([]));
    let through = |spec: &str| {
        rdsprov_tool(&dir, spec, &["apply"])
            .env("XDG_STATE_HOME", &dir.path)
            .aws_through(&moto, &double)
            .run()
    };
    let spec = "[env.test]\nid = \"shop-test\"\nclass = \"db.t4g.micro\"\n[env.test.alarms]\nenabled = false\n";
    through(spec).expect(0);
    // A class change on test waits for the maintenance window.
    let bigger = spec.replace("db.t4g.micro", "db.t4g.small");
    through(&bigger).expect(0);
    moto.call(
        "secretsmanager",
        "delete_secret",
        json!({"SecretId": "rdsprov/shop-test/master", "ForceDeleteWithoutRecovery": true}),
    );
    let aurora = AURORA_SPEC.replace("[env.test]", "[env.stage]");
    let aurora = aurora.replace("intranet-test", "intranet-stage");
    through(&aurora.replace("engine_version = \"16\"", "engine_version = \"16.9\"")).expect(0);
    // A minor upgrade of the cluster waits for its window.
    let aurora = aurora.replace("engine_version = \"16\"", "engine_version = \"16.10\"");
    through(&aurora).expect(0);
    moto.call(
        "secretsmanager",
        "delete_secret",
        json!({"SecretId": "rdsprov/intranet-stage/master", "ForceDeleteWithoutRecovery": true}),
    );
    let before = double.params("ModifyDBInstance").len();
    let applied = through(&bigger);
    applied.expect(0);
    assert!(
        applied
            .stderr
            .contains("env test: set a new master password on shop-test"),
        "{}",
        applied.stderr
    );
    let modifies = double.params("ModifyDBInstance");
    assert_eq!(modifies.len(), before + 1, "{modifies:?}");
    assert_eq!(modifies[before]["MasterUserPassword"], "********");
    assert_eq!(
        modifies[before]["ApplyImmediately"], "false",
        "{modifies:?}"
    );
    let described = double.call(
        &moto,
        "rds",
        "describe_db_instances",
        json!({"DBInstanceIdentifier": "shop-test"}),
    );
    let instance = &described["DBInstances"][0];
    assert_eq!(
        instance["DBInstanceClass"], "db.t4g.micro",
        "still waiting: {instance}"
    );
    assert_eq!(
        instance["PendingModifiedValues"]["DBInstanceClass"],
        "db.t4g.small"
    );
    // An Aurora cluster with a change waiting: the password goes without ApplyImmediately, and
    // the change keeps waiting.
    through(&aurora).expect(0);
    let clusters = double.params("ModifyDBCluster");
    let reset = clusters.last().unwrap();
    assert_eq!(reset["MasterUserPassword"], "********", "{clusters:?}");
    assert_eq!(reset["ApplyImmediately"], "false", "{clusters:?}");
    let described = double.call(
        &moto,
        "rds",
        "describe_db_clusters",
        json!({"DBClusterIdentifier": "intranet-stage"}),
    );
    let cluster = &described["DBClusters"][0];
    assert_eq!(cluster["EngineVersion"], "16.9", "{cluster}");
    assert_eq!(cluster["PendingModifiedValues"]["EngineVersion"], "16.10");
}

const OFFERED: &str = r#"
[env.dev]
id = "shop-dev"
class = "db.t4g.micro"
engine_version = "16"
ingress = ["203.0.113.7/32"]
[env.dev.alarms]
enabled = false
"#;

/// Which versions AWS creates new instances on is asked at plan time
/// (DescribeOrderableDBInstanceOptions, answered by the double from its dated offer): a major
/// alone takes the newest minor, shown exactly in the plan and the resources; a minor AWS no
/// longer offers, or a class the version lacks, is refused before any mutating call with what
/// AWS does offer. Parameters go by their ApplyType as AWS reports it (static ones
/// `pending-reboot`, which the double enforces), at most 20 a call; a name the family lacks is
/// refused by the plan.
#[test]
fn engine_versions_and_parameter_apply_types_come_from_aws() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-offer");
    let double = FaultyAws::start(&moto, json!([]));
    let through = |spec: &str, args: &[&str]| rdsprov_through(&moto, &double, &dir, spec, args);
    let no_longer = OFFERED.replace("engine_version = \"16\"", "engine_version = \"16.4\"");
    through(&no_longer, &["apply"]).expect_error(
        "rdsprov",
        2,
        "engine_version \"16.4\": AWS no longer creates new postgres db.t4g.micro instances on 16.4 (DescribeOrderableDBInstanceOptions); it offers 16.9, 16.10, 16.11, 16.12, 16.13",
    );
    let lacking = OFFERED
        .replace("engine_version = \"16\"", "engine_version = \"18\"")
        .replace("db.t4g.micro", "db.t3.micro");
    through(&lacking, &["plan"]).expect_error(
        "rdsprov",
        2,
        "AWS offers no 18 for new postgres db.t3.micro instances",
    );
    let unknown = format!("{OFFERED}\n[env.dev.parameters]\nno_such_setting = \"1\"\n")
        .replace("[env.dev.alarms]\nenabled = false\n", "");
    let unknown = format!("{unknown}[env.dev.alarms]\nenabled = false\n");
    through(&unknown, &["plan"]).expect_error(
        "rdsprov",
        2,
        "parameters no_such_setting: not modifiable parameters of postgres16",
    );
    assert_eq!(mutating_calls(&double.requests()), Vec::<String>::new());

    // 22 parameters: two calls; shared_preload_libraries (static) on the next reboot.
    let dynamic = [
        "log_min_duration_statement",
        "log_statement",
        "log_connections",
        "log_disconnections",
        "log_lock_waits",
        "work_mem",
        "maintenance_work_mem",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "track_io_timing",
        "random_page_cost",
        "effective_cache_size",
        "timezone",
        "default_statistics_target",
        "autovacuum_vacuum_scale_factor",
        "autovacuum_analyze_scale_factor",
        "autovacuum_naptime",
        "checkpoint_timeout",
        "deadlock_timeout",
    ];
    let values = |name: &str| match name {
        "log_statement" => "ddl".to_string(),
        "timezone" => "UTC".to_string(),
        "log_connections" | "log_disconnections" | "log_lock_waits" | "track_io_timing" => {
            "1".to_string()
        }
        "random_page_cost"
        | "autovacuum_vacuum_scale_factor"
        | "autovacuum_analyze_scale_factor" => "0.2".to_string(),
        _ => "100".to_string(),
    };
    let mut table =
        String::from("[env.dev.parameters]\nshared_preload_libraries = \"pg_stat_statements\"\n");
    for name in dynamic {
        table.push_str(&format!("{name} = \"{}\"\n", values(name)));
    }
    let many = OFFERED.replace("[env.dev.alarms]", &format!("{table}[env.dev.alarms]"));
    let plan = through(&many, &["plan"]).expect(0).json();
    let created = change(&plan, "db-instance", "dev");
    let version = created["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "engine_version")
        .unwrap();
    assert_eq!(version["to"], "16.13", "the newest 16 offered: {created}");
    let group = change(&plan, "parameter-group", "dev");
    let when = |name: &str| {
        group["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {group}"))["when"]
            .clone()
    };
    assert_eq!(when("shared_preload_libraries"), "on reboot");
    assert_eq!(when("work_mem"), "immediately");
    let applied = through(&many, &["apply"]).expect(0).json();
    assert_eq!(applied["instances"][0]["engine_version"], "16.13");
    let sets = double.params("ModifyDBParameterGroup");
    let counts: Vec<usize> = sets
        .iter()
        .map(|p| {
            p.as_object()
                .unwrap()
                .keys()
                .filter(|k| k.ends_with(".ParameterName"))
                .count()
        })
        .collect();
    assert_eq!(counts, [20, 2], "rds.force_ssl too: {sets:?}");
    let methods: Vec<(String, String)> = sets
        .iter()
        .flat_map(|p| {
            let p = p.as_object().unwrap();
            p.iter()
                .filter(|(k, _)| k.ends_with(".ParameterName"))
                .map(|(k, v)| {
                    let method = k.replace(".ParameterName", ".ApplyMethod");
                    (
                        v.as_str().unwrap().to_string(),
                        p[&method].as_str().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        methods.contains(&("shared_preload_libraries".into(), "pending-reboot".into()))
            && methods.contains(&("rds.force_ssl".into(), "immediate".into())),
        "{methods:?}"
    );
    let create = double.params("CreateDBInstance");
    assert_eq!(create[0]["EngineVersion"], "16.13");
    // Nothing left to do: the offer is not even asked again.
    let before = double.requests().len();
    let plan = through(&many, &["plan"]).expect(0).json();
    assert_eq!(plan["up_to_date"], true, "{plan}");
    let asked: Vec<String> = double.requests()[before..]
        .iter()
        .map(|(op, _)| op.clone())
        .filter(|op| op.starts_with("DescribeOrderable") || op.starts_with("DescribeEngineDefault"))
        .collect();
    assert_eq!(asked, Vec::<String>::new());
}

/// The operations of `calls` that change something (AWS's own moves are not among them).
fn mutating_calls(calls: &[(String, u16)]) -> Vec<String> {
    calls
        .iter()
        .map(|(op, _)| op.clone())
        .filter(|op| {
            !["Describe", "List", "Get"]
                .iter()
                .any(|p| op.starts_with(p))
        })
        .collect()
}

/// The issue's "done when": `make apply` of the example spec (ops/aws/rds.toml) against the AWS
/// double succeeds; then AWS moves by itself — a minor version upgrade, storage grown by
/// autoscaling, a class change applied only in the maintenance window, a stopped instance
/// started again after seven days — and after each `plan` is clean and a second `apply` makes
/// no mutating call.
#[test]
fn the_example_spec_applies_and_aws_s_own_moves_leave_it_clean() {
    let moto = MotoServer::start();
    let double = FaultyAws::start(
        &moto,
        json!([
            {"move": "minor-upgrade", "id": "combine-test", "to": "17.10", "at": 3600},
            {"move": "autoscale", "id": "combine-dev", "to": 23, "at": 3600}
        ]),
    );
    let state = TempDir::new("aws-example-state");
    let dir = TempDir::new("aws-example");
    let example = harness::repo_root().join("ops/aws/rds.toml");
    let make = |spec: &std::path::Path, target: &str| {
        Tool::program("make")
            .args(["-s", "-C"])
            .arg_path(&harness::repo_root())
            .args([
                target,
                "CARGO=true",
                &format!("BIN={}", harness::bin_dir().display()),
                &format!("SPEC={}", spec.display()),
            ])
            .aws_through(&moto, &double)
            .env("RDSPROV_POLL_SECONDS", "0.2")
            .env("XDG_STATE_HOME", &state.path)
            .run()
    };
    let applied = make(&example, "apply");
    applied.expect(0);
    let status = |spec: &std::path::Path| {
        Tool::new("rdsprov")
            .args(["status", "--json"])
            .arg_path_flag("--spec", spec)
            .aws_through(&moto, &double)
            .run()
            .expect(0)
            .json()
    };
    let found = status(&example);
    let versions: Vec<&str> = found["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["engine_version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["17.9", "17.9"], "the newest 17 offered: {found}");

    // A class change on test (changes wait for its maintenance window): pending, not drift.
    let text = std::fs::read_to_string(&example).unwrap();
    assert!(text.contains("class = \"db.t4g.small\""), "{text}");
    let changed = dir.path.join("rds.toml");
    std::fs::write(&changed, text.replace("db.t4g.small", "db.t4g.medium")).unwrap();
    make(&changed, "apply").expect(0);
    let pending = moto.call(
        "rds",
        "describe_db_instances",
        json!({"DBInstanceIdentifier": "combine-test"}),
    );
    assert_eq!(pending["DBInstances"][0]["DBInstanceClass"], "db.t4g.small");
    let clean = |when: &str| {
        let plan = make(&changed, "plan");
        assert_eq!(
            plan.expect(0).json()["up_to_date"],
            true,
            "{when}: {}",
            plan.stdout
        );
        let before = double.requests().len();
        let again = make(&changed, "apply");
        again.expect(0);
        let mutating = mutating_calls(&double.requests()[before..]);
        assert!(
            mutating.is_empty(),
            "{when}: {mutating:?}\n{}",
            again.stderr
        );
    };
    clean("a class change waiting for the window");
    let described = double.call(
        &moto,
        "rds",
        "describe_db_instances",
        json!({"DBInstanceIdentifier": "combine-test"}),
    );
    assert_eq!(
        described["DBInstances"][0]["PendingModifiedValues"]["DBInstanceClass"], "db.t4g.medium",
        "{described}"
    );

    // Someone stops dev from the console; AWS upgrades test's minor and grows dev's storage.
    double.call(
        &moto,
        "rds",
        "stop_db_instance",
        json!({"DBInstanceIdentifier": "combine-dev"}),
    );
    double.advance(2 * 3600);
    let plan = make(&changed, "plan");
    assert_eq!(plan.expect(0).json()["up_to_date"], true, "{}", plan.stdout);

    // Eight days on: the window has passed, dev started by itself.
    double.advance(8 * 86400);
    let found = status(&changed);
    let by_id = |id: &str| {
        found["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("combine-dev")["status"], "available", "{found}");
    assert_eq!(by_id("combine-test")["class"], "db.t4g.medium", "{found}");
    assert_eq!(by_id("combine-test")["engine_version"], "17.10", "{found}");
    clean("after AWS's own moves");
}

/// An Aurora restore creates the cluster's members only once the restored cluster is available
/// (AWS refuses them before: InvalidDBClusterStateFault, which the double plays while the
/// cluster reads `creating`); a restore cut short after its cluster (here: AWS short of
/// capacity for the writer) is finished by running the same command again, which neither
/// refuses the id nor restores twice.
#[test]
fn an_aurora_restore_waits_for_its_cluster_and_a_rerun_finishes_it() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-aurora-restore");
    let spec = AURORA_SPEC.replace("max_acu = 2", "max_acu = 2\nmulti_az = true");
    let spec = spec.as_str();
    let state = TempDir::new("aws-aurora-restore-audit");
    rdsprov_tool(&dir, spec, &["apply"])
        .aws(&moto)
        .run()
        .expect(0);
    rdsprov_tool(
        &dir,
        spec,
        &["snapshot", "--env", "test", "--name", "before"],
    )
    .aws(&moto)
    .run()
    .expect(0);
    let double = FaultyAws::start(
        &moto,
        json!([
            {"operation": "CreateDBInstance", "params": {"DBInstanceIdentifier": "intranet-copy-2"},
             "status": 400, "code": "InsufficientDBInstanceCapacity",
             "message": "Insufficient capacity for db.serverless", "times": 1},
            {"operation": "DescribeDBClusters", "hold": "creating", "seconds": 2,
             "on": "RestoreDBClusterFromSnapshot"}
        ]),
    );
    let restore = || {
        rdsprov_tool(
            &dir,
            spec,
            &[
                "restore",
                "--env",
                "test",
                "--from-snapshot",
                "before",
                "--as",
                "intranet-copy",
                "--confirm",
                "test",
            ],
        )
        .aws_through(&moto, &double)
        .env("XDG_STATE_HOME", &state.path)
        .run()
    };
    let cut_short = restore();
    cut_short.expect_error("rdsprov", 5, "Insufficient capacity for db.serverless");
    let refused: Vec<(String, u16)> = double
        .requests()
        .into_iter()
        .filter(|(op, status)| op == "CreateDBInstance" && *status != 200)
        .collect();
    assert_eq!(refused.len(), 1, "only the injected refusal: {refused:?}");
    assert!(
        cut_short
            .stderr
            .contains("created instance intranet-copy-1 in cluster intranet-copy"),
        "{}",
        cut_short.stderr
    );
    let finished = restore();
    let copy = finished.expect(0).json();
    assert_eq!(copy["instances"][0]["status"], "available");
    assert!(
        finished
            .stderr
            .contains("resuming the restore of snapshot before into Aurora cluster intranet-copy"),
        "{}",
        finished.stderr
    );
    let restores = double
        .requests()
        .iter()
        .filter(|(op, _)| op == "RestoreDBClusterFromSnapshot")
        .count();
    assert_eq!(restores, 1);
    assert_eq!(
        members(&cluster(&moto, "intranet-copy")),
        ["intranet-copy-1", "intranet-copy-2"]
    );
    let created: Vec<String> = double
        .params("CreateDBInstance")
        .iter()
        .map(|p| p["DBInstanceIdentifier"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        created,
        ["intranet-copy-1", "intranet-copy-2", "intranet-copy-2"],
        "the rerun creates only the missing member"
    );
    let sent = double.params("RestoreDBClusterFromSnapshot");
    assert_eq!(
        sent[0]["EngineVersion"], "16.10",
        "the snapshot's own version"
    );
}

/// Aurora Serverless v2's range depends on the version (ServerlessV2FeaturesSupport, from
/// DescribeDBEngineVersions — the double answers 0.5–128 ACU for its older 14.6 and 0–256 for
/// the rest, and refuses a create outside them): pausing at 0 ACU or more than 128 ACU on a
/// version that does not take it is refused by the plan, before any mutating call, both when the
/// cluster is created and when its range changes; a recent version takes 0 to 256.
#[test]
fn aurora_capacity_is_checked_against_what_the_version_takes() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-acu");
    let double = FaultyAws::start(&moto, json!([]));
    let through = |spec: &str, args: &[&str]| rdsprov_through(&moto, &double, &dir, spec, args);
    let older = AURORA_SPEC.replace("engine_version = \"16\"", "engine_version = \"14.6\"");
    through(&older.replace("min_acu = 0.5", "min_acu = 0"), &["plan"]).expect_error(
        "rdsprov",
        2,
        "min_acu 0: aurora-postgresql 14.6 takes 0.5 ACU at least",
    );
    through(&older.replace("max_acu = 2", "max_acu = 200"), &["apply"]).expect_error(
        "rdsprov",
        2,
        "max_acu 200: aurora-postgresql 14.6 takes 128 ACU at most",
    );
    assert_eq!(mutating_calls(&double.requests()), Vec::<String>::new());
    through(&older, &["apply"]).expect(0);
    through(&older.replace("max_acu = 2", "max_acu = 200"), &["plan"]).expect_error(
        "rdsprov",
        2,
        "max_acu 200: aurora-postgresql 14.6 takes 128 ACU at most",
    );
    let recent = AURORA_SPEC
        .replace("intranet-test", "intranet-paused")
        .replace("min_acu = 0.5", "min_acu = 0")
        .replace("max_acu = 2", "max_acu = 256");
    through(&recent, &["apply"]).expect(0);
    let created = double.params("CreateDBCluster");
    let paused = created
        .iter()
        .find(|p| p["DBClusterIdentifier"] == "intranet-paused")
        .unwrap();
    assert_eq!(
        paused["ServerlessV2ScalingConfiguration.MinCapacity"],
        "0.0"
    );
    assert_eq!(
        paused["ServerlessV2ScalingConfiguration.MaxCapacity"],
        "256.0"
    );
}

/// A major upgrade: AWS takes it only with AllowMajorVersionUpgrade and a parameter group of the
/// new family in the same modify (the double refuses either missing). `rdsprov-<id>` holds the
/// old family's parameters, so the new family's are `rdsprov-<id>-postgres17`, made and filled
/// first; engine and group change together, at once. Afterwards the plan is clean; going back
/// a major is refused with what to do instead.
#[test]
fn a_major_upgrade_brings_its_family_s_parameter_group() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-major");
    let double = FaultyAws::start(&moto, json!([]));
    let through = |spec: &str, args: &[&str]| rdsprov_through(&moto, &double, &dir, spec, args);
    let sixteen = OFFERED.replace(
        "[env.dev.alarms]",
        "[env.dev.parameters]\nlog_min_duration_statement = \"500\"\n[env.dev.alarms]",
    );
    through(&sixteen, &["apply"]).expect(0);
    through(
        &sixteen,
        &["snapshot", "--env", "dev", "--name", "on-sixteen"],
    )
    .expect(0);
    let seventeen = sixteen.replace("engine_version = \"16\"", "engine_version = \"17\"");
    let plan = through(&seventeen, &["plan"]).expect(0).json();
    let group = change(&plan, "parameter-group", "dev");
    assert_eq!(group["name"], "rdsprov-shop-dev-postgres17");
    assert_eq!(group["action"], "create");
    let instance = change(&plan, "db-instance", "dev");
    let attributes: Vec<(String, String, String)> = instance["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["to"].as_str().unwrap().to_string(),
                a["when"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        attributes,
        [
            ("engine_version".into(), "17.9".into(), "immediately".into()),
            (
                "parameter_group".into(),
                "rdsprov-shop-dev-postgres17".into(),
                "immediately".into()
            ),
        ]
    );
    let applied = through(&seventeen, &["apply"]).expect(0).json();
    assert_eq!(applied["instances"][0]["engine_version"], "17.9");
    let modify = double.params("ModifyDBInstance");
    let last = modify.last().unwrap();
    assert_eq!(last["AllowMajorVersionUpgrade"], "true", "{last}");
    assert_eq!(last["ApplyImmediately"], "true", "{last}");
    assert_eq!(last["DBParameterGroupName"], "rdsprov-shop-dev-postgres17");
    let groups = moto.call(
        "rds",
        "describe_db_parameters",
        json!({"DBParameterGroupName": "rdsprov-shop-dev-postgres17", "Source": "user"}),
    );
    let names: Vec<&str> = groups["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ParameterName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"log_min_duration_statement") && names.contains(&"rds.force_ssl"),
        "{names:?}"
    );
    let before = double.requests().len();
    assert_eq!(
        through(&seventeen, &["plan"]).expect(0).json()["up_to_date"],
        true
    );
    through(&seventeen, &["apply"]).expect(0);
    assert_eq!(
        mutating_calls(&double.requests()[before..]),
        Vec::<String>::new()
    );
    through(&sixteen, &["plan"]).expect_error(
        "rdsprov",
        2,
        "engine_version 16: instance shop-dev runs PostgreSQL 17, and RDS never goes back a major",
    );
    // Restores take the group of their source's family (the double refuses another): the
    // latest state the new one, a snapshot from before the upgrade the old one.
    through(
        &seventeen,
        &[
            "restore",
            "--env",
            "dev",
            "--latest",
            "--as",
            "shop-dev-now",
        ],
    )
    .expect(0);
    let restored = double.params("RestoreDBInstanceToPointInTime");
    assert_eq!(
        restored[0]["DBParameterGroupName"],
        "rdsprov-shop-dev-postgres17"
    );
    through(
        &seventeen,
        &[
            "restore",
            "--env",
            "dev",
            "--from-snapshot",
            "on-sixteen",
            "--as",
            "shop-dev-then",
        ],
    )
    .expect(0);
    let restored = double.params("RestoreDBInstanceFromDBSnapshot");
    assert_eq!(restored[0]["DBParameterGroupName"], "rdsprov-shop-dev");
    // A finished restore is not done again: the id is taken.
    through(
        &seventeen,
        &[
            "restore",
            "--env",
            "dev",
            "--latest",
            "--as",
            "shop-dev-now",
        ],
    )
    .expect_error("rdsprov", 2, "instance shop-dev-now already exists");

    // An Aurora cluster the same way, with its cluster parameter group.
    through(AURORA_SPEC, &["apply"]).expect(0);
    let aurora17 = AURORA_SPEC.replace("engine_version = \"16\"", "engine_version = \"17\"");
    let plan = through(&aurora17, &["plan"]).expect(0).json();
    let group = change(&plan, "parameter-group", "test");
    assert_eq!(group["name"], "rdsprov-intranet-test-aurora-postgresql17");
    through(&aurora17, &["apply"]).expect(0);
    let modify = double.params("ModifyDBCluster");
    let last = modify.last().unwrap();
    assert_eq!(last["AllowMajorVersionUpgrade"], "true", "{last}");
    assert_eq!(last["EngineVersion"], "17.9", "{last}");
    assert_eq!(
        last["DBClusterParameterGroupName"],
        "rdsprov-intranet-test-aurora-postgresql17"
    );
    assert_eq!(
        through(&aurora17, &["plan"]).expect(0).json()["up_to_date"],
        true
    );
}

/// A new Aurora cluster waits until its new cluster parameter group is five minutes old (AWS's
/// advice; shortened here to 15 s): also when the group was made by an earlier run cut short,
/// whose tag says when.
#[test]
fn a_new_cluster_waits_for_its_new_cluster_parameter_group_after_a_rerun_too() {
    let moto = MotoServer::start();
    let dir = TempDir::new("aws-settle");
    let double = FaultyAws::start(
        &moto,
        json!([{"operation": "CreateSecret", "status": 400, "code": "InvalidRequestException",
                "message": "the KMS key is being rotated", "times": 1}]),
    );
    let apply = || {
        rdsprov_tool(&dir, AURORA_SPEC, &["apply"])
            .env("RDSPROV_SETTLE_SECONDS", "15")
            .aws_through(&moto, &double)
            .run()
    };
    let cut_short = apply();
    cut_short.expect_error("rdsprov", 5, "the KMS key is being rotated");
    assert!(
        cut_short
            .stderr
            .contains("created cluster parameter group rdsprov-intranet-test"),
        "{}",
        cut_short.stderr
    );
    let rerun = apply();
    rerun.expect(0);
    let settled = rerun
        .stderr
        .find("waiting for cluster parameter group rdsprov-intranet-test to settle");
    let created = rerun.stderr.find("created Aurora cluster intranet-test");
    assert!(settled.is_some() && settled < created, "{}", rerun.stderr);
}
