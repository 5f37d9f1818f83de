#!/usr/bin/env python3
"""An HTTP proxy in front of moto that makes chosen AWS operations fail or stall, the way a
real AWS endpoint sometimes does (throttling, 5xx, a slow answer). Everything else passes
through unchanged, so the tool under test talks to a real API emulator the whole time.

    aws_fault_proxy.py PORT TARGET_URL RULES_JSON LOG_FILE

RULES_JSON is a list of rules, tried in order; the first that matches a request applies:
    {"operation": "PutMetricAlarm", "status": 503, "code": "ServiceUnavailable", "times": 3}
    {"operation": "DescribeDBInstances", "delay": 30, "after": "CreateDBInstance"}
`times` bounds how often the rule applies (absent: always); `after` makes it apply only once
an operation of that name has passed through; `params` makes it apply only to requests whose
form parameters include those values ({"DBInstanceIdentifier": "shop-stage"}).
    {"operation": "DescribeDBInstances", "hold": "creating", "seconds": 20}
    {"operation": "DescribeDBInstances", "hold": "modifying", "seconds": 2, "on": "ModifyDBInstance", "stale": 1}
    {"operation": "DescribeDBClusters", "hold": "creating", "seconds": 30, "on": "RestoreDBClusterFromSnapshot"}
plays AWS's own pace where moto has none: an instance reads `creating` (instead of moto's
immediate `available`) until `seconds` after the CreateDBInstance that made it passed through
(or another `on` operation; `when` names a parameter it must have sent; `stale` answers right
after it still show the status from before, as AWS's do). Seconds are the double's clock.
Where moto is more lenient than AWS the proxy answers as AWS does (aws_double.py: the rules
with their sources, always on; aws_offer.py: the dated offer of versions, classes and parameter
apply types, answered by the proxy itself), and {"move": …} rules play what AWS does by itself, on a clock
the test moves forward by writing seconds to LOG_FILE.clock. LOG_FILE (created empty at start, so a missing
file means the proxy never ran) gets one line per request, "<operation> <status>", written
before the answer is sent: a test that has its answer can count every call; LOG_FILE.params one JSON line per
form-encoded (Query protocol) request, {"operation": …, "params": {…}}, for tests that check
what was sent where moto keeps no trace of it.
"""
import html, http.client, http.server, json, re, sys, threading, time, urllib.parse

import aws_double
import aws_offer

PORT, TARGET, RULES, LOG = int(sys.argv[1]), urllib.parse.urlparse(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
seen_ops, lock = set(), threading.Lock()
clockwork = threading.Lock()  # held while AWS's own moves that have come due are replayed
started = {}  # (hold rule index, DBInstanceIdentifier) -> when its `on` operation passed through
HOLDS = [rule for rule in RULES if "hold" in rule]
MOVES = [rule for rule in RULES if "move" in rule]
RULES = [rule for rule in RULES if "hold" not in rule and "move" not in rule]
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def operation(headers, body):
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return form.get("Action", ["?"])[0]


def matching_rule(op, params):
    with lock:
        for rule in RULES:
            if rule.get("operation") != op:
                continue
            if any(params.get(k) != v for k, v in rule.get("params", {}).items()):
                continue
            if rule.get("after") and rule["after"] not in seen_ops:
                continue
            if "times" in rule:
                if rule["times"] <= 0:
                    continue
                rule["times"] -= 1
            return dict(rule)
    return None


KINDS = {  # describe operation -> (block, identifier, status element)
    "DescribeDBInstances": ("DBInstance", "DBInstanceIdentifier", "DBInstanceStatus"),
    "DescribeDBClusters": ("DBCluster", "DBClusterIdentifier", "Status"),
}


def holding(op, name, moment, count=True):
    """The status the first running hold gives resource `name` of describe operation `op` at
    this moment, or None."""
    for index, rule in enumerate(HOLDS):
        if rule.get("operation", "DescribeDBInstances") != op:
            continue
        entry = started.get((index, name))
        if entry is None:
            continue
        if entry["answers"] < rule.get("stale", 0):
            if count:
                entry["answers"] += 1
            return None
        if moment - entry["at"] < rule["seconds"]:
            return rule["hold"]
    return None


def held(op, payload):
    """An answer as AWS would give it at this moment: an instance (or a cluster) in the status
    a hold rule gives it (the first hold whose time has not run out), from when its `on`
    operation (CreateDBInstance unless named; with `when`, only one that sent that parameter)
    passed through, after `stale` answers that still show the status from before."""
    if op not in KINDS or not HOLDS:
        return payload
    block, ident, status = KINDS[op]
    moment = aws_double.now(LOG + ".clock")

    def hold(match):
        part = match.group(0)
        name = re.search(rf"<{ident}>([^<]+)</{ident}>", part)
        if not name:
            return part
        with lock:
            shown = holding(op, name.group(1), moment)
        if shown is None:
            return part
        # Only what moto calls `available` is AWS's pace; a deletion or a stop shows.
        return part.replace(f"<{status}>available</{status}>", f"<{status}>{shown}</{status}>", 1)

    return re.sub(rf"<{block}>.*?</{block}>", hold, payload.decode("utf-8"), flags=re.S).encode("utf-8")


def start_holds(op, params):
    """Starts each hold whose `on` operation this is, for the instance or cluster it names."""
    for index, rule in enumerate(HOLDS):
        if rule.get("on", "CreateDBInstance") != op:
            continue
        if rule.get("when") and rule["when"] not in params:
            continue
        ident = KINDS[rule.get("operation", "DescribeDBInstances")][1]
        name = params.get(ident)
        if name:
            started[(index, name)] = {"at": aws_double.now(LOG + ".clock"), "answers": 0}


def member_refusal(op, params):
    """CreateDBInstance into a cluster that is not available yet: "You can create DB instances
    only after the RestoreDBClusterFromSnapshot operation has completed and the DB cluster is
    available" (API_RestoreDBClusterFromSnapshot), InvalidDBClusterStateFault."""
    cluster = params.get("DBClusterIdentifier")
    if op != "CreateDBInstance" or not cluster:
        return None
    with lock:
        shown = holding("DescribeDBClusters", cluster, aws_double.now(LOG + ".clock"), count=False)
    if shown is None:
        return None
    return ("InvalidDBClusterStateFault",
            f"DB cluster {cluster} is {shown}, not available: its instances can be created once it is "
            "(double: https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_RestoreDBClusterFromSnapshot.html)")


def replay(op, params, headers, path="/"):
    """A request AWS makes by itself (aws_double.due), sent to moto as the tool's were; its
    answer, which nobody reads."""
    body = urllib.parse.urlencode({"Action": op, "Version": "2014-10-31", **params}).encode("utf-8")
    upstream = http.client.HTTPConnection(TARGET.hostname, TARGET.port, timeout=60)
    upstream.request("POST", path, body=body, headers={**headers, "Content-Length": str(len(body))})
    answer = upstream.getresponse()
    payload = answer.read()
    upstream.close()
    log(f"({op} by AWS)", answer.status)
    return payload


def maintenance_window(op, params, headers):
    """The maintenance window of the instance or cluster a modify names, as moto has it."""
    if "Cluster" in op:
        answer = replay("DescribeDBClusters", {"DBClusterIdentifier": params.get("DBClusterIdentifier", "")}, headers)
    else:
        answer = replay("DescribeDBInstances", {"DBInstanceIdentifier": params.get("DBInstanceIdentifier", "")}, headers)
    found = re.search(r"<PreferredMaintenanceWindow>([^<]*)</PreferredMaintenanceWindow>", answer.decode("utf-8"))
    return found.group(1) if found else None


MODIFY_INSTANCE = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ModifyDBInstance.html"


def major_refusal(op, params, headers):
    """A modify to another major: AWS wants AllowMajorVersionUpgrade ("Major version upgrades
    must be allowed when specifying a value for the EngineVersion parameter that's a different
    major version"), never goes back a major, and wants a parameter group of the new family when
    the current one is custom ("a new DB parameter group in the DB parameter group family for
    the new engine version must be specified"), ModifyDBInstance / ModifyDBCluster."""
    if op not in ("ModifyDBInstance", "ModifyDBCluster") or "EngineVersion" not in params:
        return None
    cluster = op == "ModifyDBCluster"
    if cluster:
        found = replay("DescribeDBClusters", {"DBClusterIdentifier": params.get("DBClusterIdentifier", "")}, headers)
        group_tag, group_param, engine = "DBClusterParameterGroup", "DBClusterParameterGroupName", "aurora-postgresql"
    else:
        found = replay("DescribeDBInstances", {"DBInstanceIdentifier": params.get("DBInstanceIdentifier", "")}, headers)
        group_tag, group_param, engine = "DBParameterGroupName", "DBParameterGroupName", "postgres"
    text = found.decode("utf-8")
    current = re.search(r"<EngineVersion>([^<]*)</EngineVersion>", text)
    if not current:
        return None
    have, want = int(current.group(1).split(".")[0]), int(params["EngineVersion"].split(".")[0])
    if have == want:
        return None
    if want < have:
        return ("InvalidParameterCombination", f"Cannot upgrade {engine} from {current.group(1)} to {params['EngineVersion']} "
                f"(double: {MODIFY_INSTANCE})")
    if params.get("AllowMajorVersionUpgrade") != "true":
        return ("InvalidParameterCombination", "The AllowMajorVersionUpgrade flag must be present when upgrading to a new "
                f"major version (double: {MODIFY_INSTANCE})")
    group = re.search(rf"<{group_tag}>([^<]*)</{group_tag}>", text)
    new_group = params.get(group_param)
    if group and not group.group(1).startswith("default.") and not new_group:
        return ("InvalidParameterCombination", f"The current DB parameter group {group.group(1)} is custom. You must explicitly "
                f"specify a new DB parameter group, either default or custom, for the engine version upgrade (double: {MODIFY_INSTANCE})")
    if new_group:
        describe = "DescribeDBClusterParameterGroups" if cluster else "DescribeDBParameterGroups"
        answer = replay(describe, {group_param: new_group}, headers).decode("utf-8")
        family = re.search(r"<DBParameterGroupFamily>([^<]*)</DBParameterGroupFamily>", answer)
        wanted = aws_offer.family(engine, params["EngineVersion"])
        if family and family.group(1) != wanted:
            return ("InvalidParameterCombination", f"The parameter group {new_group} with DBParameterGroupFamily "
                    f"{family.group(1)} can't be used for this instance. Use a parameter group with DBParameterGroupFamily "
                    f"{wanted}. (double: {MODIFY_INSTANCE})")
    return None


def _tag(text, name):
    found = re.search(rf"<{name}>([^<]*)</{name}>", text)
    return found.group(1) if found else None


def family_refusal(op, params, headers):
    """A create or restore with a parameter group of another family than its engine version's:
    "The parameter group … with DBParameterGroupFamily postgres16 can't be used for this
    instance. Use a parameter group with DBParameterGroupFamily postgres17." (InvalidParameter
    Combination, as AWS answers it; the version of a restore is its source's)."""
    cluster = "Cluster" in op
    group_param = "DBClusterParameterGroupName" if cluster else "DBParameterGroupName"
    group = params.get(group_param)
    if not group or group.startswith("default.") or (op == "CreateDBInstance" and "DBClusterIdentifier" in params):
        return None
    engine = "aurora-postgresql" if cluster else "postgres"
    sources = {
        "RestoreDBInstanceFromDBSnapshot": ("DescribeDBSnapshots", "DBSnapshotIdentifier", "DBSnapshotIdentifier"),
        "RestoreDBInstanceToPointInTime": ("DescribeDBInstances", "SourceDBInstanceIdentifier", "DBInstanceIdentifier"),
        "RestoreDBClusterFromSnapshot": ("DescribeDBClusterSnapshots", "SnapshotIdentifier", "DBClusterSnapshotIdentifier"),
        "RestoreDBClusterToPointInTime": ("DescribeDBClusters", "SourceDBClusterIdentifier", "DBClusterIdentifier"),
    }
    if op in ("CreateDBInstance", "CreateDBCluster"):
        version = params.get("EngineVersion")
    elif op in sources:
        describe, key, as_key = sources[op]
        version = params.get("EngineVersion") or _tag(replay(describe, {as_key: params.get(key, "")}, headers).decode("utf-8"), "EngineVersion")
    else:
        return None
    if not version:
        return None
    describe = "DescribeDBClusterParameterGroups" if cluster else "DescribeDBParameterGroups"
    family = _tag(replay(describe, {group_param: group}, headers).decode("utf-8"), "DBParameterGroupFamily")
    wanted = aws_offer.family(engine, version)
    if family and family != wanted:
        return ("InvalidParameterCombination", f"The parameter group {group} with DBParameterGroupFamily {family} can't "
                f"be used for this instance. Use a parameter group with DBParameterGroupFamily {wanted}. "
                f"(double: {MODIFY_INSTANCE})")
    return None


def log(op, status):
    with lock, open(LOG, "a") as f:
        f.write(f"{op} {status}\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        op = operation(self.headers, body)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != "content-length"}
        clock = aws_double.now(LOG + ".clock")
        # What AWS does by itself is done before any request goes on, this one's or another
        # thread's: none may read the state from before it.
        with clockwork:
            with lock:
                come_due = aws_double.due(clock)
            for due_op, due_params, due_headers in come_due:
                replay(due_op, due_params, due_headers)
        params = {}
        if not self.headers.get("X-Amz-Target"):
            # The password values, not the flags about them (ManageMasterUserPassword, …).
            params = {k: ("********" if k.endswith("Password") and not k.startswith(("Manage", "Rotate")) else v[0])
                      for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
            with lock, open(LOG + ".params", "a") as f:
                f.write(json.dumps({"operation": op, "params": params}) + "\n")
        rule = matching_rule(op, params)
        if rule and rule.get("delay"):
            time.sleep(rule["delay"])
        refused = (aws_double.refusal(op, params) or member_refusal(op, params)
                   or major_refusal(op, params, headers) or family_refusal(op, params, headers))
        if refused and not (rule and rule.get("status")):
            rule = {"status": 400, "code": refused[0], "message": refused[1]}
        if rule and rule.get("status"):
            code = rule.get("code", "ServiceUnavailable")
            message = rule.get("message", "injected by aws_fault_proxy")
            if self.headers.get("X-Amz-Target"):
                payload = json.dumps({"__type": code, "message": message}).encode()
                ctype = "application/x-amz-json-1.1"
            else:
                payload = (f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code>"
                           f"<Message>{html.escape(message)}</Message></Error>"
                           f"<RequestId>fault</RequestId></ErrorResponse>").encode()
                ctype = "text/xml"
            log(op, rule["status"])
            self.send_response(rule["status"])
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if op in aws_double.DEFERRED and not self.headers.get("X-Amz-Target"):
            raw = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
            window = raw.get("PreferredMaintenanceWindow") or maintenance_window(op, raw, headers)
            with lock:
                raw = aws_double.defer(op, raw, window, clock, headers)
            body = urllib.parse.urlencode(raw).encode("utf-8")
        own = aws_offer.answer(op, params)
        if own is not None:
            log(op, 200)
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(own)))
            self.end_headers()
            self.wfile.write(own)
            return
        upstream = http.client.HTTPConnection(TARGET.hostname, TARGET.port, timeout=60)
        upstream.request("POST", self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        with lock:
            seen_ops.add(op)
            if answer.status == 200:
                start_holds(op, params)
                aws_double.stopped(op, params, clock, headers)
        payload = held(op, payload)
        with lock:
            payload = aws_double.pending_values(op, payload)
        with lock:
            payload = aws_double.answer(op, payload, MOVES, LOG + ".clock")
        log(op, answer.status)
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_GET = do_POST


open(LOG, "w").close()
server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
server.serve_forever()
