-- The latest sample of each VM (a VMPoint as JSON), beside its chunks in
-- vm_metrics: the current usage of every VM is one indexed read, never a
-- decode of chunks.
CREATE TABLE vm_metrics_latest (
    vm_id   uuid PRIMARY KEY REFERENCES vms (id) ON DELETE CASCADE,
    node_id uuid,
    ts      timestamptz NOT NULL,
    point   jsonb NOT NULL CHECK (jsonb_typeof(point) = 'object')
);
CREATE INDEX vm_metrics_latest_ts ON vm_metrics_latest (ts);
