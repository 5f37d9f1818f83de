"""Where moto is more lenient than AWS, or never moves by itself, the AWS fault proxy
(aws_fault_proxy.py) behaves like AWS instead: this module holds those rules, each with the AWS
documentation it comes from.

- refusal(op, params): a request AWS would refuse, answered as AWS answers it (400, its code),
  before moto sees it. Always on: a tool that sends what AWS refuses fails its test.
- Moves (opted into by a test's rules): what AWS does by itself over time, seen in describe
  answers once the double's clock has passed their time. The clock starts at the proxy's start
  and a test moves it forward by writing seconds to LOG_FILE.clock (FaultyAws::advance).

    {"move": "minor-upgrade", "id": "shop-dev", "to": "16.9", "at": 3600}
    {"move": "autoscale", "id": "shop-dev", "to": 26, "at": 3600}
"""
import re
import time

STARTED = time.time()
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
CREATE_DB_INSTANCE = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html"
CREATE_DB_CLUSTER = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBCluster.html"
AUTOSCALING = "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_PIOPS.Autoscaling.html"
CLUSTER_SNAPSHOT = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBClusterSnapshot.html"
DB_SNAPSHOT = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBSnapshot.html"
# terraform-provider-aws keeps the maintenance window in lower case (StateFunc strings.ToLower in
# internal/service/rds/instance.go and cluster.go) because RDS answers it so, whatever was sent.
LOWER_CASE_WINDOW = "terraform-provider-aws internal/service/rds/instance.go, maintenance_window"


def now(clock_file):
    try:
        with open(clock_file) as f:
            moved = float(f.read().strip() or 0)
    except (OSError, ValueError):
        moved = 0.0
    return time.time() - STARTED + moved


def _minutes(clock):
    m = re.fullmatch(r"(\d\d):(\d\d)", clock)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        return None
    return int(m.group(1)) * 60 + int(m.group(2))


def _daily(window):
    parts = window.split("-")
    if len(parts) != 2:
        return None
    start, end = _minutes(parts[0]), _minutes(parts[1])
    if start is None or end is None:
        return None
    return start, (end - start) % 1440


def _weekly(window):
    parts = window.split("-")
    if len(parts) != 2:
        return None
    ends = []
    for part in parts:
        day, _, clock = part.partition(":")
        if day.lower() not in DAYS or _minutes(clock) is None:
            return None
        ends.append(DAYS.index(day.lower()) * 1440 + _minutes(clock))
    return ends[0], (ends[1] - ends[0]) % (7 * 1440)


def _meet(a, a_len, b, b_len, length):
    return (b - a) % length < a_len or (a - b) % length < b_len


def _bad(code, message, source):
    return code, f"{message} (double: {source})"


def refusal(op, params):
    """(code, message) of AWS's refusal of this request, or None."""
    backup, maintenance = params.get("PreferredBackupWindow"), params.get("PreferredMaintenanceWindow")
    if op in ("CreateDBInstance", "ModifyDBInstance", "CreateDBCluster", "ModifyDBCluster"):
        source = CREATE_DB_CLUSTER if op.endswith("Cluster") else CREATE_DB_INSTANCE
        daily = weekly = None
        if backup is not None:
            daily = _daily(backup)
            if daily is None or daily[1] < 30:
                return _bad("InvalidParameterValue", f"The backup window {backup} must be hh24:mi-hh24:mi and at least 30 minutes", source)
        if maintenance is not None:
            weekly = _weekly(maintenance)
            if weekly is None or weekly[1] < 30:
                return _bad("InvalidParameterValue", f"The maintenance window {maintenance} must be ddd:hh24:mi-ddd:hh24:mi and at least 30 minutes", source)
        if daily and weekly and any(_meet(d * 1440 + daily[0], daily[1], weekly[0], weekly[1], 7 * 1440) for d in range(7)):
            return _bad("InvalidParameterCombination", "The backup window and maintenance window must not overlap", source)
        retention = params.get("BackupRetentionPeriod")
        least = 1 if op.endswith("Cluster") else 0
        if retention is not None and not least <= int(retention) <= 35:
            return _bad("InvalidParameterValue", f"Invalid backup retention period {retention}: {least} to 35", source)
    if op in ("CreateDBInstance", "CreateDBCluster") and "MasterUsername" in params:
        user = params["MasterUsername"]
        allowed = r"[A-Za-z][A-Za-z0-9]{0,15}" if op == "CreateDBCluster" else r"[A-Za-z][A-Za-z0-9_]{0,15}"
        if not re.fullmatch(allowed, user):
            return _bad("InvalidParameterValue", f"The parameter MasterUsername is not a valid identifier: {user}",
                        CREATE_DB_CLUSTER if op == "CreateDBCluster" else CREATE_DB_INSTANCE)
    if op in ("CreateDBInstance", "ModifyDBInstance") and "MaxAllocatedStorage" in params and "AllocatedStorage" in params:
        least = (int(params["AllocatedStorage"]) * 11 + 9) // 10
        if int(params["MaxAllocatedStorage"]) < least:
            # Checked when a request sends both; AWS compares with the storage the instance has.
            return _bad("InvalidParameterCombination", "Invalid max storage size for postgres", AUTOSCALING)
    snapshot_ids = {
        "CreateDBClusterSnapshot": ("DBClusterSnapshotIdentifier", 63, CLUSTER_SNAPSHOT),
        "DeleteDBCluster": ("FinalDBSnapshotIdentifier", 63, CLUSTER_SNAPSHOT),
        "CreateDBSnapshot": ("DBSnapshotIdentifier", 255, DB_SNAPSHOT),
        "DeleteDBInstance": ("FinalDBSnapshotIdentifier", 255, DB_SNAPSHOT),
    }
    if op in snapshot_ids:
        key, most, source = snapshot_ids[op]
        value = params.get(key)
        if value is not None and not re.fullmatch(r"[A-Za-z](?!.*--)[A-Za-z0-9-]{0,%d}(?<!-)" % (most - 1), value):
            return _bad("InvalidParameterValue", f"{key} {value}: 1 to {most} letters, digits or hyphens, starting with a letter", source)
    return None


def answer(op, payload, moves, clock_file):
    """A describe answer as AWS would give it now: windows in lower case, and each move whose
    time has come."""
    if op not in ("DescribeDBInstances", "DescribeDBClusters"):
        return payload
    text = payload.decode("utf-8")
    text = re.sub(r"<PreferredMaintenanceWindow>([^<]*)</PreferredMaintenanceWindow>",
                  lambda m: f"<PreferredMaintenanceWindow>{m.group(1).lower()}</PreferredMaintenanceWindow>", text)
    moment = now(clock_file)
    tag = {"minor-upgrade": "EngineVersion", "autoscale": "AllocatedStorage"}
    block = "DBInstance" if op == "DescribeDBInstances" else "DBCluster"
    ident = "DBInstanceIdentifier" if block == "DBInstance" else "DBClusterIdentifier"
    for move in moves:
        if move["move"] not in tag or moment < move.get("at", 0):
            continue

        def moved(match, move=move):
            part = match.group(0)
            name = re.search(rf"<{ident}>([^<]+)</{ident}>", part)
            if not name or name.group(1) != move["id"]:
                return part
            field = tag[move["move"]]
            return re.sub(rf"<{field}>[^<]*</{field}>", f"<{field}>{move['to']}</{field}>", part, count=1)

        text = re.sub(rf"<{block}>.*?</{block}>", moved, text, flags=re.S)
    return text.encode("utf-8")
