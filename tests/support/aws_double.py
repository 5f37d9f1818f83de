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

import aws_offer

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
    offer = _outside_offer(op, params)
    if offer:
        return offer
    parameters = _parameter_refusal(op, params)
    if parameters:
        return parameters
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


def _outside_offer(op, params):
    """A create on an engine version or class AWS does not offer for new resources: AWS answers
    InvalidParameterCombination ("Cannot find version …" / "RDS does not support creating a DB
    instance with the following combination …"); what is offered is what
    DescribeOrderableDBInstanceOptions lists (aws_offer.py)."""
    engine, version = params.get("Engine"), params.get("EngineVersion")
    if op == "CreateDBCluster" and engine in aws_offer.OFFER and version is not None:
        if version not in aws_offer.OFFER[engine]["versions"]:
            return _bad("InvalidParameterCombination", f"Cannot find version {version} for {engine}", aws_offer.ORDERABLE)
        least, most = aws_offer.capacity(engine, version)
        low = params.get("ServerlessV2ScalingConfiguration.MinCapacity")
        high = params.get("ServerlessV2ScalingConfiguration.MaxCapacity")
        if low is not None and float(low) < least or high is not None and float(high) > most:
            return _bad("InvalidParameterValue",
                        f"Serverless v2 capacity {low}-{high} ACU: {engine} {version} takes {least} to {most}",
                        aws_offer.SERVERLESS_V2)
    if op == "CreateDBInstance" and engine in aws_offer.OFFER and "DBClusterIdentifier" not in params:
        klass = params.get("DBInstanceClass", "")
        if version is not None and version not in aws_offer.OFFER[engine]["versions"]:
            return _bad("InvalidParameterCombination", f"Cannot find version {version} for {engine}", aws_offer.ORDERABLE)
        if version is not None and not aws_offer.offered(engine, version, klass):
            return _bad("InvalidParameterCombination",
                        f"RDS does not support creating a DB instance with the following combination: "
                        f"DBInstanceClass={klass}, Engine={engine}, EngineVersion={version}", aws_offer.ORDERABLE)
    if op == "CreateDBInstance" and engine in aws_offer.OFFER and "DBClusterIdentifier" in params:
        klass = params.get("DBInstanceClass", "")
        if klass not in aws_offer.OFFER[engine]["classes"]:
            return _bad("InvalidParameterCombination", f"DBInstanceClass {klass} is not offered for {engine}", aws_offer.ORDERABLE)
    if op in ("ModifyDBInstance", "ModifyDBCluster") and version is not None:
        engines = ["aurora-postgresql"] if op == "ModifyDBCluster" else ["postgres"]
        if not any(version in aws_offer.OFFER[e]["versions"] for e in engines):
            return _bad("InvalidParameterCombination", f"Cannot upgrade to version {version}: not offered", aws_offer.ENGINE_VERSIONS)
    return None


MODIFY_PARAMETER_GROUP = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBParameterGroup.html"


def _parameter_refusal(op, params):
    """ModifyDBParameterGroup / ModifyDBClusterParameterGroup: at most 20 parameters a call;
    `immediate` only for dynamic parameters ("immediate value with dynamic parameters only",
    the Parameter data type's ApplyMethod); a name the family does not have is refused."""
    if op not in ("ModifyDBParameterGroup", "ModifyDBClusterParameterGroup"):
        return None
    entries = {}
    for key, value in params.items():
        m = re.fullmatch(r"Parameters\.\w+\.(\d+)\.(\w+)", key)
        if m:
            entries.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if len(entries) > 20:
        return _bad("InvalidParameterValue", f"{len(entries)} parameters: a request modifies at most 20", MODIFY_PARAMETER_GROUP)
    for entry in entries.values():
        name = entry.get("ParameterName", "")
        kind = aws_offer.APPLY_TYPES.get(name)
        if kind is None:
            return _bad("InvalidParameterValue", f"Could not find parameter with name: {name}", aws_offer.ENGINE_DEFAULTS)
        if kind == "static" and entry.get("ApplyMethod") == "immediate":
            return _bad("InvalidParameterCombination", f"cannot use immediate apply method for static parameter {name}",
                        "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_Parameter.html")
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


# --- AWS's own clockwork: changes deferred to the maintenance window, and the automatic start
# of a stopped instance or cluster after seven days. The proxy calls `due` before each request
# and replays what has come due against moto; `defer` takes a modify's deferred settings out of
# it; `pending_values` shows them in describe answers, as AWS does.

SETTINGS = "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ModifyInstance.Settings.html"
CLUSTER_MODIFY = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBCluster.html"
STOP_INSTANCE = "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_StopInstance.html"
STOP_CLUSTER = "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-cluster-stop-start.html"
SEVEN_DAYS = 7 * 86400

# Settings a modify without ApplyImmediately leaves for the next maintenance window ("If you
# don't choose to apply the change immediately, it occurs during the next maintenance window"),
# each with the element PendingModifiedValues names it by. The rest (deletion protection,
# public access, windows, autoscaling limit, master password, …) "ignores the apply
# immediately setting" (SETTINGS; ModifyDBCluster's ApplyImmediately: CLUSTER_MODIFY).
DEFERRED = {
    "ModifyDBInstance": {
        "DBInstanceClass": "DBInstanceClass", "AllocatedStorage": "AllocatedStorage",
        "EngineVersion": "EngineVersion", "MultiAZ": "MultiAZ", "StorageType": "StorageType",
        "Iops": "Iops", "CACertificateIdentifier": "CACertificateIdentifier",
        "DBSubnetGroupName": "DBSubnetGroupName",
        "EnableIAMDatabaseAuthentication": "IAMDatabaseAuthenticationEnabled",
    },
    "ModifyDBCluster": {
        "EngineVersion": "EngineVersion",
        "EnableIAMDatabaseAuthentication": "IAMDatabaseAuthenticationEnabled",
    },
}
# Sent with a deferred engine version, so deferred with it.
GOES_WITH = {"EngineVersion": ["AllowMajorVersionUpgrade", "DBParameterGroupName",
                               "DBInstanceParameterGroupName"]}

PENDING = {}   # (op, id) -> {"params": {...}, "window": "sun:04:30-sun:05:30", "at": clock, "headers": {...}}
STOPPED = {}   # (start op, id) -> {"at": clock, "headers": {...}}


def _ident(op, params):
    key = "DBClusterIdentifier" if "Cluster" in op else "DBInstanceIdentifier"
    return params.get(key)


def defer(op, params, window, clock, headers):
    """The parameters a modify goes on to moto with: without ApplyImmediately the deferred
    settings wait (recorded as pending), with it every pending one goes too ("any pending
    modifications are also applied", SETTINGS)."""
    if op not in DEFERRED:
        return params
    key = (op, _ident(op, params))
    if params.get("ApplyImmediately") == "true":
        waiting = PENDING.pop(key, None)
        return {**waiting["params"], **params} if waiting else params
    deferred = {k: v for k, v in params.items() if k in DEFERRED[op]}
    if not deferred:
        return params
    for name in list(deferred):
        for other in GOES_WITH.get(name, []):
            if other in params:
                deferred[other] = params[other]
    entry = PENDING.setdefault(key, {"params": {}, "at": clock, "headers": headers})
    entry["params"].update(deferred)
    entry["window"] = window
    return {k: v for k, v in params.items() if k not in deferred}


def _minute_of_week(seconds):
    t = time.gmtime(seconds)
    return t.tm_wday * 1440 + t.tm_hour * 60 + t.tm_min


def _window_start(window, at_clock, now_clock):
    """Whether the first maintenance window after `at_clock` has begun by `now_clock` (the
    double's clock, on today's calendar)."""
    weekly = _weekly(window or "")
    if weekly is None:
        return False
    at = STARTED + at_clock
    wait = (weekly[0] - _minute_of_week(at)) % (7 * 1440)
    return STARTED + now_clock >= at + wait * 60


def stopped(op, params, clock, headers):
    """Records a stop (the automatic start comes seven days later); a start forgets it."""
    starts = {"StopDBInstance": "StartDBInstance", "StopDBCluster": "StartDBCluster"}
    if op in starts:
        STOPPED[(starts[op], _ident(op, params))] = {"at": clock, "headers": headers}
    elif op in ("StartDBInstance", "StartDBCluster"):
        STOPPED.pop((op, _ident(op, params)), None)


def due(clock):
    """The requests AWS makes by itself by now, as (operation, params, headers): pending changes
    whose window has begun, applied immediately; starts of what has been stopped seven days
    ("If you don't manually start your DB instance after seven days, your DB instance is
    automatically started", STOP_INSTANCE; clusters: STOP_CLUSTER)."""
    calls = []
    for (op, ident), entry in list(PENDING.items()):
        if _window_start(entry.get("window"), entry["at"], clock):
            del PENDING[(op, ident)]
            key = "DBClusterIdentifier" if "Cluster" in op else "DBInstanceIdentifier"
            calls.append((op, {**entry["params"], key: ident, "ApplyImmediately": "true"}, entry["headers"]))
    for (op, ident), entry in list(STOPPED.items()):
        if clock - entry["at"] >= SEVEN_DAYS:
            del STOPPED[(op, ident)]
            key = "DBClusterIdentifier" if "Cluster" in op else "DBInstanceIdentifier"
            calls.append((op, {key: ident}, entry["headers"]))
    return calls


def pending_values(op, payload):
    """A describe answer with each resource's pending changes in PendingModifiedValues."""
    if op not in ("DescribeDBInstances", "DescribeDBClusters") or not PENDING:
        return payload
    modify = "ModifyDBInstance" if op == "DescribeDBInstances" else "ModifyDBCluster"
    block = "DBInstance" if op == "DescribeDBInstances" else "DBCluster"
    ident = block + "Identifier"
    text = payload.decode("utf-8")

    def add(match):
        part = match.group(0)
        name = re.search(rf"<{ident}>([^<]+)</{ident}>", part)
        entry = name and PENDING.get((modify, name.group(1)))
        if not entry:
            return part
        values = "".join(f"<{DEFERRED[modify][k]}>{v}</{DEFERRED[modify][k]}>"
                         for k, v in entry["params"].items() if k in DEFERRED[modify])
        part = re.sub(r"<PendingModifiedValues>.*?</PendingModifiedValues>|<PendingModifiedValues/>", "", part, flags=re.S)
        return part.replace(f"</{block}>", f"<PendingModifiedValues>{values}</PendingModifiedValues></{block}>")

    return re.sub(rf"<{block}>.*?</{block}>", add, text, flags=re.S).encode("utf-8")
