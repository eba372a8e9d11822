-- Alert rules and alerts as the alert engine keeps them: severity "error",
-- a rule's resource (host or vm) and known comparators, event conditions
-- without a value, and at most one open (firing or acknowledged) alert per
-- rule and resource. SQLite cannot change a CHECK constraint in place:
-- both tables are rebuilt, their rows kept. The alerts are set aside
-- first, so that dropping the old rules does not null their rule_id.

CREATE TABLE alert_rules_new (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (name <> ''),
    metric      TEXT NOT NULL CHECK (metric <> ''),
    resource    TEXT NOT NULL DEFAULT 'vm' CHECK (resource IN ('host', 'vm')),
    comparator  TEXT NOT NULL CHECK (comparator IN ('', '>', '>=', '<', '<=')),
    threshold   REAL NOT NULL,
    for_seconds INTEGER NOT NULL DEFAULT 0 CHECK (for_seconds >= 0),
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    scope       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(scope)),
    webhook_url TEXT NOT NULL DEFAULT '',
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
INSERT INTO alert_rules_new (id, tenant_id, name, metric, comparator, threshold, for_seconds, severity, scope,
                             webhook_url, enabled, created_at, updated_at)
    SELECT id, tenant_id, name, metric, comparator, threshold, for_seconds, severity, scope,
           webhook_url, enabled, created_at, updated_at FROM alert_rules;

CREATE TEMP TABLE alerts_kept AS SELECT * FROM alerts;
DROP TABLE alerts;
DROP TABLE alert_rules;
ALTER TABLE alert_rules_new RENAME TO alert_rules;
CREATE INDEX alert_rules_tenant_id ON alert_rules (tenant_id);

CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    rule_id         TEXT REFERENCES alert_rules (id) ON DELETE SET NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    severity        TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    status          TEXT NOT NULL CHECK (status IN ('firing', 'acknowledged', 'resolved')),
    resource        TEXT NOT NULL DEFAULT '',
    resource_id     TEXT NOT NULL DEFAULT '',
    tenant_id       TEXT,
    metric_name     TEXT NOT NULL DEFAULT '',
    threshold       REAL NOT NULL DEFAULT 0,
    current_value   REAL,
    labels          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
    start_time      TEXT NOT NULL,
    end_time        TEXT,
    acknowledged_by TEXT NOT NULL DEFAULT '',
    acknowledged_at TEXT,
    CHECK ((status = 'resolved') = (end_time IS NOT NULL))
) STRICT;
INSERT INTO alerts (id, rule_id, name, description, severity, status, resource, resource_id, tenant_id, metric_name,
                    threshold, current_value, labels, start_time, end_time, acknowledged_by, acknowledged_at)
    SELECT id, rule_id, name, description, severity, status, resource, resource_id, tenant_id, metric_name,
           threshold, current_value, labels, start_time,
           CASE WHEN status = 'resolved' THEN coalesce(end_time, start_time) END, acknowledged_by, acknowledged_at
    FROM alerts_kept;
DROP TABLE alerts_kept;
CREATE INDEX alerts_status ON alerts (status);
CREATE INDEX alerts_rule_id ON alerts (rule_id);
CREATE INDEX alerts_tenant_id ON alerts (tenant_id);
CREATE UNIQUE INDEX alerts_open ON alerts (rule_id, resource, resource_id) WHERE status <> 'resolved';
