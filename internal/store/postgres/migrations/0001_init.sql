-- The initial schema: every table of the design, including those that later
-- work fills.

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name <> ''),
    quotas     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username <> ''),
    email         text NOT NULL DEFAULT '',
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'user')),
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    password_hash text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX users_tenant_id ON users (tenant_id);

CREATE TABLE sessions (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('login', 'token')),
    name       text NOT NULL DEFAULT '',
    token_hash text UNIQUE,
    ip         text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Audit entries outlive their users and tenants: no foreign keys.
CREATE TABLE audit_logs (
    id          uuid PRIMARY KEY,
    ts          timestamptz NOT NULL,
    user_id     uuid,
    username    text NOT NULL DEFAULT '',
    tenant_id   uuid,
    action      text NOT NULL,
    resource    text NOT NULL DEFAULT '',
    resource_id text NOT NULL DEFAULT '',
    ip          text NOT NULL DEFAULT '',
    user_agent  text NOT NULL DEFAULT '',
    success     boolean NOT NULL,
    error       text NOT NULL DEFAULT '',
    request_id  text NOT NULL DEFAULT ''
);
CREATE INDEX audit_logs_ts ON audit_logs (ts);
CREATE INDEX audit_logs_tenant_id_ts ON audit_logs (tenant_id, ts);
CREATE INDEX audit_logs_user_id ON audit_logs (user_id);
CREATE INDEX audit_logs_action ON audit_logs (action);

CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE nodes (
    id               uuid PRIMARY KEY,
    name             text NOT NULL UNIQUE CHECK (name <> ''),
    address          text NOT NULL DEFAULT '',
    status           text NOT NULL CHECK (status IN ('online', 'offline', 'maintenance')),
    capabilities     jsonb NOT NULL DEFAULT '{}',
    resources        jsonb NOT NULL DEFAULT '{}',
    labels           jsonb NOT NULL DEFAULT '{}',
    cert_fingerprint text NOT NULL DEFAULT '',
    last_seen        timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

CREATE TABLE images (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name       text NOT NULL CHECK (name <> ''),
    format     text NOT NULL CHECK (format IN ('qcow2', 'raw', 'kernel', 'initrd', 'rootfs')),
    size       bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    sha256     text NOT NULL DEFAULT '',
    public     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE vms (
    id             uuid PRIMARY KEY,
    name           text NOT NULL CHECK (name <> ''),
    driver         text NOT NULL CHECK (driver IN ('qemu', 'container', 'process')),
    state          text NOT NULL CHECK (state IN ('creating', 'stopped', 'starting', 'running', 'stopping',
                                                  'restarting', 'paused', 'migrating', 'deleting', 'failed')),
    desired_state  text NOT NULL DEFAULT '',
    state_reason   text NOT NULL DEFAULT '',
    exit_code      integer,
    node_id        uuid REFERENCES nodes (id) ON DELETE RESTRICT,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    owner_id       uuid REFERENCES users (id) ON DELETE SET NULL,
    cpus           integer NOT NULL CHECK (cpus > 0),
    memory_mb      bigint NOT NULL CHECK (memory_mb > 0),
    disk_gb        bigint NOT NULL DEFAULT 0 CHECK (disk_gb >= 0),
    image_id       uuid REFERENCES images (id) ON DELETE RESTRICT,
    config         jsonb NOT NULL DEFAULT '{}',
    labels         jsonb NOT NULL DEFAULT '{}',
    restart_policy text NOT NULL DEFAULT 'never' CHECK (restart_policy IN ('never', 'on-failure', 'always')),
    autostart      boolean NOT NULL DEFAULT false,
    operation_id   uuid,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX vms_tenant_id ON vms (tenant_id);
CREATE INDEX vms_node_id ON vms (node_id);
CREATE INDEX vms_state ON vms (state);
CREATE INDEX vms_owner_id ON vms (owner_id);
CREATE INDEX vms_image_id ON vms (image_id);

-- Operations outlive the VMs they acted on: no foreign key on vm_id.
CREATE TABLE operations (
    id          uuid PRIMARY KEY,
    vm_id       uuid,
    tenant_id   uuid,
    action      text NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    phase       text NOT NULL DEFAULT '',
    error       text NOT NULL DEFAULT '',
    user_id     uuid,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX operations_vm_id ON operations (vm_id);
CREATE INDEX operations_status ON operations (status);

-- Metrics are kept in compressed chunks of samples, one row per resource,
-- resolution (seconds per sample) and chunk.
CREATE TABLE vm_metrics (
    vm_id       uuid NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    resolution  integer NOT NULL CHECK (resolution > 0),
    chunk_start timestamptz NOT NULL,
    chunk_end   timestamptz NOT NULL,
    count       integer NOT NULL CHECK (count >= 0),
    data        bytea NOT NULL,
    PRIMARY KEY (vm_id, resolution, chunk_start),
    CHECK (chunk_end >= chunk_start)
);
CREATE INDEX vm_metrics_chunk_end ON vm_metrics (chunk_end);

CREATE TABLE system_metrics (
    node_id     uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    resolution  integer NOT NULL CHECK (resolution > 0),
    chunk_start timestamptz NOT NULL,
    chunk_end   timestamptz NOT NULL,
    count       integer NOT NULL CHECK (count >= 0),
    data        bytea NOT NULL,
    PRIMARY KEY (node_id, resolution, chunk_start),
    CHECK (chunk_end >= chunk_start)
);
CREATE INDEX system_metrics_chunk_end ON system_metrics (chunk_end);

-- A rule without a tenant is global (an admin's).
CREATE TABLE alert_rules (
    id          uuid PRIMARY KEY,
    tenant_id   uuid REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name <> ''),
    metric      text NOT NULL,
    comparator  text NOT NULL,
    threshold   double precision NOT NULL,
    for_seconds integer NOT NULL DEFAULT 0 CHECK (for_seconds >= 0),
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    scope       jsonb NOT NULL DEFAULT '{}',
    webhook_url text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX alert_rules_tenant_id ON alert_rules (tenant_id);

CREATE TABLE alerts (
    id              uuid PRIMARY KEY,
    rule_id         uuid REFERENCES alert_rules (id) ON DELETE SET NULL,
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status          text NOT NULL CHECK (status IN ('firing', 'acknowledged', 'resolved')),
    resource        text NOT NULL DEFAULT '',
    resource_id     text NOT NULL DEFAULT '',
    tenant_id       uuid,
    metric_name     text NOT NULL DEFAULT '',
    threshold       double precision NOT NULL DEFAULT 0,
    current_value   double precision NOT NULL DEFAULT 0,
    labels          jsonb NOT NULL DEFAULT '{}',
    start_time      timestamptz NOT NULL,
    end_time        timestamptz,
    acknowledged_by text NOT NULL DEFAULT '',
    acknowledged_at timestamptz
);
CREATE INDEX alerts_status ON alerts (status);
CREATE INDEX alerts_rule_id ON alerts (rule_id);
CREATE INDEX alerts_tenant_id ON alerts (tenant_id);

CREATE TABLE migrations (
    id                uuid PRIMARY KEY,
    vm_id             uuid NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    source_node_id    uuid NOT NULL,
    target_node_id    uuid NOT NULL,
    type              text NOT NULL CHECK (type IN ('cold', 'warm', 'live')),
    status            text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    phase             text NOT NULL DEFAULT '',
    progress          double precision NOT NULL DEFAULT 0 CHECK (progress >= 0),
    bytes_total       bigint NOT NULL DEFAULT 0,
    bytes_transferred bigint NOT NULL DEFAULT 0,
    bytes_on_wire     bigint NOT NULL DEFAULT 0,
    downtime_ms       bigint NOT NULL DEFAULT 0,
    error             text NOT NULL DEFAULT '',
    started_at        timestamptz,
    completed_at      timestamptz
);
CREATE INDEX migrations_vm_id ON migrations (vm_id);
CREATE INDEX migrations_status ON migrations (status);
