-- The initial schema: every table of the design, including those that later
-- work fills. Ids are UUID text. Timestamps are UTC text of a fixed width
-- (2006-01-02T15:04:05.000000Z) so that comparing the text orders by time.
-- JSON columns are text. Booleans are 0 or 1.

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE CHECK (name <> ''),
    quotas     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(quotas)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE CHECK (username <> ''),
    email         TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'user')),
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    password_hash TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;
CREATE INDEX users_tenant_id ON users (tenant_id);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('login', 'token')),
    name       TEXT NOT NULL DEFAULT '',
    token_hash TEXT UNIQUE,
    ip         TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Audit entries outlive their users and tenants: no foreign keys.
CREATE TABLE audit_logs (
    id          TEXT PRIMARY KEY,
    ts          TEXT NOT NULL,
    user_id     TEXT,
    username    TEXT NOT NULL DEFAULT '',
    tenant_id   TEXT,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL DEFAULT '',
    resource_id TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    success     INTEGER NOT NULL CHECK (success IN (0, 1)),
    error       TEXT NOT NULL DEFAULT '',
    request_id  TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_logs_ts ON audit_logs (ts);
CREATE INDEX audit_logs_tenant_id_ts ON audit_logs (tenant_id, ts);
CREATE INDEX audit_logs_user_id ON audit_logs (user_id);
CREATE INDEX audit_logs_action ON audit_logs (action);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE nodes (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE CHECK (name <> ''),
    address          TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL CHECK (status IN ('online', 'offline', 'maintenance')),
    capabilities     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(capabilities)),
    resources        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(resources)),
    labels           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
    cert_fingerprint TEXT NOT NULL DEFAULT '',
    last_seen        TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;

CREATE TABLE images (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name       TEXT NOT NULL CHECK (name <> ''),
    format     TEXT NOT NULL CHECK (format IN ('qcow2', 'raw', 'kernel', 'initrd', 'rootfs')),
    size       INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
    sha256     TEXT NOT NULL DEFAULT '',
    public     INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
    created_at TEXT NOT NULL,
    UNIQUE (tenant_id, name)
) STRICT;

CREATE TABLE vms (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL CHECK (name <> ''),
    driver         TEXT NOT NULL CHECK (driver IN ('qemu', 'container', 'process')),
    state          TEXT NOT NULL CHECK (state IN ('creating', 'stopped', 'starting', 'running', 'stopping',
                                                  'restarting', 'paused', 'migrating', 'deleting', 'failed')),
    desired_state  TEXT NOT NULL DEFAULT '',
    state_reason   TEXT NOT NULL DEFAULT '',
    exit_code      INTEGER,
    node_id        TEXT REFERENCES nodes (id) ON DELETE RESTRICT,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    owner_id       TEXT REFERENCES users (id) ON DELETE SET NULL,
    cpus           INTEGER NOT NULL CHECK (cpus > 0),
    memory_mb      INTEGER NOT NULL CHECK (memory_mb > 0),
    disk_gb        INTEGER NOT NULL DEFAULT 0 CHECK (disk_gb >= 0),
    image_id       TEXT REFERENCES images (id) ON DELETE RESTRICT,
    config         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    labels         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
    restart_policy TEXT NOT NULL DEFAULT 'never' CHECK (restart_policy IN ('never', 'on-failure', 'always')),
    autostart      INTEGER NOT NULL DEFAULT 0 CHECK (autostart IN (0, 1)),
    operation_id   TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (tenant_id, name)
) STRICT;
CREATE INDEX vms_tenant_id ON vms (tenant_id);
CREATE INDEX vms_node_id ON vms (node_id);
CREATE INDEX vms_state ON vms (state);
CREATE INDEX vms_owner_id ON vms (owner_id);
CREATE INDEX vms_image_id ON vms (image_id);

-- Operations outlive the VMs they acted on: no foreign key on vm_id.
CREATE TABLE operations (
    id          TEXT PRIMARY KEY,
    vm_id       TEXT,
    tenant_id   TEXT,
    action      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    phase       TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    user_id     TEXT,
    created_at  TEXT NOT NULL,
    finished_at TEXT
) STRICT;
CREATE INDEX operations_vm_id ON operations (vm_id);
CREATE INDEX operations_status ON operations (status);

-- Metrics are kept in compressed chunks of samples, one row per resource,
-- resolution (seconds per sample) and chunk.
CREATE TABLE vm_metrics (
    vm_id       TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    resolution  INTEGER NOT NULL CHECK (resolution > 0),
    chunk_start TEXT NOT NULL,
    chunk_end   TEXT NOT NULL,
    count       INTEGER NOT NULL CHECK (count >= 0),
    data        BLOB NOT NULL,
    PRIMARY KEY (vm_id, resolution, chunk_start),
    CHECK (chunk_end >= chunk_start)
) STRICT, WITHOUT ROWID;
CREATE INDEX vm_metrics_chunk_end ON vm_metrics (chunk_end);

CREATE TABLE system_metrics (
    node_id     TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    resolution  INTEGER NOT NULL CHECK (resolution > 0),
    chunk_start TEXT NOT NULL,
    chunk_end   TEXT NOT NULL,
    count       INTEGER NOT NULL CHECK (count >= 0),
    data        BLOB NOT NULL,
    PRIMARY KEY (node_id, resolution, chunk_start),
    CHECK (chunk_end >= chunk_start)
) STRICT, WITHOUT ROWID;
CREATE INDEX system_metrics_chunk_end ON system_metrics (chunk_end);

-- A rule without a tenant is global (an admin's).
CREATE TABLE alert_rules (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (name <> ''),
    metric      TEXT NOT NULL,
    comparator  TEXT NOT NULL,
    threshold   REAL NOT NULL,
    for_seconds INTEGER NOT NULL DEFAULT 0 CHECK (for_seconds >= 0),
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    scope       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(scope)),
    webhook_url TEXT NOT NULL DEFAULT '',
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX alert_rules_tenant_id ON alert_rules (tenant_id);

CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    rule_id         TEXT REFERENCES alert_rules (id) ON DELETE SET NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    severity        TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status          TEXT NOT NULL CHECK (status IN ('firing', 'acknowledged', 'resolved')),
    resource        TEXT NOT NULL DEFAULT '',
    resource_id     TEXT NOT NULL DEFAULT '',
    tenant_id       TEXT,
    metric_name     TEXT NOT NULL DEFAULT '',
    threshold       REAL NOT NULL DEFAULT 0,
    current_value   REAL NOT NULL DEFAULT 0,
    labels          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
    start_time      TEXT NOT NULL,
    end_time        TEXT,
    acknowledged_by TEXT NOT NULL DEFAULT '',
    acknowledged_at TEXT
) STRICT;
CREATE INDEX alerts_status ON alerts (status);
CREATE INDEX alerts_rule_id ON alerts (rule_id);
CREATE INDEX alerts_tenant_id ON alerts (tenant_id);

CREATE TABLE migrations (
    id                TEXT PRIMARY KEY,
    vm_id             TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    source_node_id    TEXT NOT NULL,
    target_node_id    TEXT NOT NULL,
    type              TEXT NOT NULL CHECK (type IN ('cold', 'warm', 'live')),
    status            TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    phase             TEXT NOT NULL DEFAULT '',
    progress          REAL NOT NULL DEFAULT 0 CHECK (progress >= 0),
    bytes_total       INTEGER NOT NULL DEFAULT 0,
    bytes_transferred INTEGER NOT NULL DEFAULT 0,
    bytes_on_wire     INTEGER NOT NULL DEFAULT 0,
    downtime_ms       INTEGER NOT NULL DEFAULT 0,
    error             TEXT NOT NULL DEFAULT '',
    started_at        TEXT,
    completed_at      TEXT
) STRICT;
CREATE INDEX migrations_vm_id ON migrations (vm_id);
CREATE INDEX migrations_status ON migrations (status);
