"""What the AWS double offers: a dated fixture of the engine versions and instance classes new
RDS instances and Aurora clusters can be created on, and the apply type of the parameters the
tests set, answered the way AWS answers DescribeOrderableDBInstanceOptions,
DescribeDBEngineVersions, DescribeEngineDefaultParameters and
DescribeEngineDefaultClusterParameters (moto answers none of them as AWS does). aws_double.py
refuses a create on a version or class outside it, as AWS does.

The fixture is not a claim about what AWS offers on any day: it is shaped like AWS's offer on
its date (the minors AWS stopped creating new instances on are absent), so the tools' own
handling of an offer — a major alone, a version no longer offered, a class the version lacks —
is tested. `rdsprov plan` always asks AWS itself.
"""
import html

AS_OF = "2026-11-30"
# The newest minors (13.23, 14.22, 15.17, 16.13, 17.9, 18.3) as aws-cdk's PostgresEngineVersion
# names them (packages/aws-cdk-lib/aws-rds/lib/instance-engine.ts), AWS's own release notes
# being out of reach here.
# RDS stopped creating new instances on 14.14-14.17, 15.9-15.12, 16.5-16.8 and 17.1-17.4 from
# 2026-05-01 (the AWS notice quoted in issue 18); older minors of those majors likewise.
VERSIONS_SOURCE = "https://docs.aws.amazon.com/AmazonRDS/latest/PostgreSQLReleaseNotes/postgresql-versions.html"
AURORA_VERSIONS_SOURCE = "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraPostgreSQLReleaseNotes/AuroraPostgreSQL.Updates.html"
SERVERLESS_V2 = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_ServerlessV2FeaturesSupport.html"
ORDERABLE = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeOrderableDBInstanceOptions.html"
ENGINE_VERSIONS = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeDBEngineVersions.html"
ENGINE_DEFAULTS = "https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeEngineDefaultParameters.html"
PARAMETERS = "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Appendix.PostgreSQL.CommonDBATasks.Parameters.html"

OFFER = {
    "postgres": {
        "versions": ["13.23", "14.18", "14.19", "14.20", "14.21", "14.22", "15.13", "15.14", "15.15",
                     "15.16", "15.17", "16.9", "16.10", "16.11", "16.12", "16.13", "17.5", "17.6",
                     "17.7", "17.8", "17.9", "18.1", "18.2", "18.3"],
        "classes": ["db.t3.micro", "db.t3.small", "db.t3.medium", "db.t3.large", "db.t4g.micro",
                    "db.t4g.small", "db.t4g.medium", "db.t4g.large", "db.m6g.large", "db.m6i.large",
                    "db.m7g.large", "db.r6g.large", "db.r6g.xlarge", "db.r7g.large"],
        # db.t3 is not offered on PostgreSQL 18 (a class × version pair the offer lacks).
        "not": {(c, v) for c in ("db.t3.micro", "db.t3.small", "db.t3.medium", "db.t3.large")
                for v in ("18.1", "18.2", "18.3")},
    },
    "aurora-postgresql": {
        "versions": ["13.21", "14.6", "14.18", "15.13", "16.9", "16.10", "17.5", "17.6", "17.9"],
        "classes": ["db.serverless", "db.r6g.large", "db.r7g.large", "db.t4g.medium"],
        "not": set(),
        # Serverless v2's range per version (ServerlessV2FeaturesSupport): 0 ACU (auto-pause)
        # and 256 ACU on recent versions, 0.5 and 128 on older ones (SERVERLESS_V2).
        "capacity": {"14.6": (0.5, 128.0)},
    },
}

# ApplyType per parameter (the "Apply type" column of the parameter group in the console, and
# ApplyType in DescribeEngineDefaultParameters); the same for every major the fixture has.
APPLY_TYPES = {
    "shared_preload_libraries": "static",
    "max_connections": "static",
    "shared_buffers": "static",
    "max_worker_processes": "static",
    "wal_level": "static",
    "max_wal_senders": "static",
    "rds.logical_replication": "static",
    "track_activity_query_size": "static",
    "huge_pages": "static",
    "max_locks_per_transaction": "static",
    "rds.force_ssl": "dynamic",
    "log_min_duration_statement": "dynamic",
    "log_statement": "dynamic",
    "log_connections": "dynamic",
    "log_disconnections": "dynamic",
    "log_lock_waits": "dynamic",
    "work_mem": "dynamic",
    "maintenance_work_mem": "dynamic",
    "statement_timeout": "dynamic",
    "lock_timeout": "dynamic",
    "idle_in_transaction_session_timeout": "dynamic",
    "track_io_timing": "dynamic",
    "random_page_cost": "dynamic",
    "effective_cache_size": "dynamic",
    "timezone": "dynamic",
    "search_path": "dynamic",
    "default_statistics_target": "dynamic",
    "autovacuum_vacuum_scale_factor": "dynamic",
    "autovacuum_analyze_scale_factor": "dynamic",
    "autovacuum_naptime": "dynamic",
    "checkpoint_timeout": "dynamic",
    "deadlock_timeout": "dynamic",
    "pg_stat_statements.track": "dynamic",
    "pg_stat_statements.max": "static",
}


def _major(version):
    return version.split(".")[0]


def capacity(engine, version):
    """(least MinCapacity, greatest MaxCapacity) of Serverless v2 on this version."""
    return OFFER.get(engine, {}).get("capacity", {}).get(version, (0.0, 256.0))


def family(engine, version):
    return f"{engine}{_major(version)}"


def offered(engine, version, klass):
    """Whether a new instance (or Aurora member) of this class can be created on this version."""
    offer = OFFER.get(engine)
    return bool(offer) and version in offer["versions"] and klass in offer["classes"] \
        and (klass, version) not in offer["not"]


def families():
    return {family(engine, v): engine for engine, offer in OFFER.items() for v in offer["versions"]}


def _page(items, params):
    """One page of items: MaxRecords (20 to 100, default 100) from the Marker on."""
    size = max(20, min(100, int(params.get("MaxRecords") or 100)))
    start = int(params.get("Marker") or 0)
    rest = items[start + size:]
    marker = f"<Marker>{start + size}</Marker>" if rest else ""
    return items[start:start + size], marker


def _response(op, body):
    return (f'<{op}Response xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><{op}Result>{body}'
            f"</{op}Result><ResponseMetadata><RequestId>double</RequestId></ResponseMetadata>"
            f"</{op}Response>").encode("utf-8")


def _filters(params):
    """Filters.Filter.N.Name / .Values.Value.M of a Query request, as {name: [values]}."""
    found = {}
    for key, value in params.items():
        if key.startswith("Filters.Filter.") and key.endswith(".Name"):
            prefix = key[: -len("Name")]
            found[value] = [v for k, v in sorted(params.items()) if k.startswith(prefix + "Values.")]
    return found


def answer(op, params):
    """The double's own answer to a describe call moto does not answer as AWS does, or None."""
    if op == "DescribeOrderableDBInstanceOptions":
        engine = params.get("Engine", "")
        offer = OFFER.get(engine, {"versions": [], "classes": [], "not": set()})
        rows = [(v, c) for v in offer["versions"] for c in offer["classes"] if offered(engine, v, c)
                and params.get("EngineVersion", v) == v and params.get("DBInstanceClass", c) == c]
        page, marker = _page(rows, params)
        storage = "aurora" if engine.startswith("aurora") else "gp3"
        body = "".join(
            f"<OrderableDBInstanceOption><Engine>{engine}</Engine><EngineVersion>{v}</EngineVersion>"
            f"<DBInstanceClass>{c}</DBInstanceClass><StorageType>{storage}</StorageType>"
            f"<MultiAZCapable>true</MultiAZCapable><MinStorageSize>20</MinStorageSize>"
            f"<MaxStorageSize>65536</MaxStorageSize><SupportsStorageAutoscaling>true</SupportsStorageAutoscaling>"
            f"</OrderableDBInstanceOption>" for v, c in page)
        return _response(op, f"<OrderableDBInstanceOptions>{body}</OrderableDBInstanceOptions>{marker}")
    if op == "DescribeDBEngineVersions":
        engine = params.get("Engine", "")
        wanted = params.get("EngineVersion")
        wanted_family = params.get("DBParameterGroupFamily")
        rows = []
        for name, offer in OFFER.items():
            if engine and name != engine:
                continue
            for v in offer["versions"]:
                if wanted and v != wanted or wanted_family and family(name, v) != wanted_family:
                    continue
                targets = "".join(
                    f"<UpgradeTarget><Engine>{name}</Engine><EngineVersion>{t}</EngineVersion>"
                    f"<IsMajorVersionUpgrade>{'true' if _major(t) != _major(v) else 'false'}</IsMajorVersionUpgrade>"
                    f"<AutoUpgrade>false</AutoUpgrade></UpgradeTarget>"
                    for t in offer["versions"] if tuple(map(int, t.split("."))) > tuple(map(int, v.split("."))))
                serverless = ""
                if name.startswith("aurora"):
                    least, most = capacity(name, v)
                    serverless = (f"<ServerlessV2FeaturesSupport><MinCapacity>{least}</MinCapacity>"
                                  f"<MaxCapacity>{most}</MaxCapacity></ServerlessV2FeaturesSupport>")
                rows.append(f"<DBEngineVersion><Engine>{name}</Engine><EngineVersion>{v}</EngineVersion>"
                            f"{serverless}<DBParameterGroupFamily>{family(name, v)}</DBParameterGroupFamily>"
                            f"<Status>available</Status><ValidUpgradeTarget>{targets}</ValidUpgradeTarget>"
                            f"</DBEngineVersion>")
        page, marker = _page(rows, params)
        return _response(op, f"<DBEngineVersions>{''.join(page)}</DBEngineVersions>{marker}")
    if op in ("DescribeEngineDefaultParameters", "DescribeEngineDefaultClusterParameters"):
        name = params.get("DBParameterGroupFamily", "")
        if name not in families():
            return None
        rows = [f"<Parameter><ParameterName>{html.escape(p)}</ParameterName><ApplyType>{t}</ApplyType>"
                f"<DataType>string</DataType><IsModifiable>true</IsModifiable><Source>engine-default</Source>"
                f"</Parameter>" for p, t in sorted(APPLY_TYPES.items())]
        page, marker = _page(rows, params)
        return _response(op, f"<EngineDefaults><DBParameterGroupFamily>{name}</DBParameterGroupFamily>"
                             f"{marker}<Parameters>{''.join(page)}</Parameters></EngineDefaults>")
    return None
