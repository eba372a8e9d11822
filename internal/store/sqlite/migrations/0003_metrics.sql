-- Metric chunks move to rowid tables. A WITHOUT ROWID table keeps at most
-- about 1000 bytes of a row in its B-tree page and spills the rest into
-- overflow pages of its own, so a chunk of 1 to 3 KB took a whole 4 KB
-- page or two; a rowid table keeps rows up to about 4 KB in the page.
CREATE TABLE vm_metrics_chunks (
    vm_id       TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    resolution  INTEGER NOT NULL CHECK (resolution > 0),
    chunk_start TEXT NOT NULL,
    chunk_end   TEXT NOT NULL,
    count       INTEGER NOT NULL CHECK (count >= 0),
    data        BLOB NOT NULL,
    PRIMARY KEY (vm_id, resolution, chunk_start),
    CHECK (chunk_end >= chunk_start)
) STRICT;
INSERT INTO vm_metrics_chunks SELECT vm_id, resolution, chunk_start, chunk_end, count, data FROM vm_metrics;
DROP TABLE vm_metrics;
ALTER TABLE vm_metrics_chunks RENAME TO vm_metrics;
CREATE INDEX vm_metrics_chunk_end ON vm_metrics (chunk_end);

CREATE TABLE system_metrics_chunks (
    node_id     TEXT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    resolution  INTEGER NOT NULL CHECK (resolution > 0),
    chunk_start TEXT NOT NULL,
    chunk_end   TEXT NOT NULL,
    count       INTEGER NOT NULL CHECK (count >= 0),
    data        BLOB NOT NULL,
    PRIMARY KEY (node_id, resolution, chunk_start),
    CHECK (chunk_end >= chunk_start)
) STRICT;
INSERT INTO system_metrics_chunks SELECT node_id, resolution, chunk_start, chunk_end, count, data FROM system_metrics;
DROP TABLE system_metrics;
ALTER TABLE system_metrics_chunks RENAME TO system_metrics;
CREATE INDEX system_metrics_chunk_end ON system_metrics (chunk_end);

-- The latest sample of each VM (a VMPoint as JSON), beside its chunks in
-- vm_metrics: the current usage of every VM is one indexed read, never a
-- decode of chunks.
CREATE TABLE vm_metrics_latest (
    vm_id   TEXT PRIMARY KEY REFERENCES vms (id) ON DELETE CASCADE,
    node_id TEXT,
    ts      TEXT NOT NULL,
    point   TEXT NOT NULL CHECK (json_valid(point) AND json_type(point) = 'object')
) STRICT;
CREATE INDEX vm_metrics_latest_ts ON vm_metrics_latest (ts);
