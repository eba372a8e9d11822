package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

var _ novacron.MetricsStore = (*Store)(nil)

// metricsLock is the key of the transaction-level advisory lock that
// serialises metric writes of every replica: a chunk is read, merged and
// written back, and two replicas must not merge into the same one at once.
const metricsLock int64 = 0x6e632d6d65747278

func metricTable(host bool) (table, idCol, parent string) {
	if host {
		return "system_metrics", "node_id", "nodes"
	}
	return "vm_metrics", "vm_id", "vms"
}

type metricsTx struct{ tx pgx.Tx }

// UpdateMetrics runs fn in one transaction holding the metrics lock.
func (s *Store) UpdateMetrics(ctx context.Context, fn func(tx novacron.MetricsTx) error) error {
	return wrap("update metrics", s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, metricsLock); err != nil {
			return err
		}
		return fn(metricsTx{tx})
	}))
}

func (m metricsTx) Chunks(ctx context.Context, keys []novacron.MetricChunkKey) ([]*novacron.MetricChunk, error) {
	b := &pgx.Batch{}
	var asked []novacron.MetricChunkKey
	for _, k := range keys {
		id, ok := store.ParseID(k.ID)
		if !ok {
			continue
		}
		k.ID = id
		k.Start = store.Time(k.Start)
		table, idCol, _ := metricTable(k.Host)
		b.Queue(`SELECT chunk_end, count, data FROM `+table+` WHERE `+idCol+` = $1 AND resolution = $2 AND chunk_start = $3`,
			id, k.Resolution, k.Start)
		asked = append(asked, k)
	}
	if len(asked) == 0 {
		return nil, nil
	}
	res := m.tx.SendBatch(ctx, b)
	defer res.Close()
	var out []*novacron.MetricChunk
	for _, k := range asked {
		c := &novacron.MetricChunk{MetricChunkKey: k}
		err := res.QueryRow().Scan(&c.End, &c.Count, &c.Data)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, wrap("load metric chunks", err)
		}
		out = append(out, c)
	}
	return out, wrap("load metric chunks", res.Close())
}

func (m metricsTx) PutChunks(ctx context.Context, chunks []*novacron.MetricChunk) error {
	b := &pgx.Batch{}
	for _, c := range chunks {
		id, ok := store.ParseID(c.ID)
		if !ok {
			continue
		}
		table, idCol, parent := metricTable(c.Host)
		b.Queue(`INSERT INTO `+table+` (`+idCol+`, resolution, chunk_start, chunk_end, count, data)
			SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM `+parent+` WHERE id = $1)
			ON CONFLICT (`+idCol+`, resolution, chunk_start) DO UPDATE
			SET chunk_end = excluded.chunk_end, count = excluded.count, data = excluded.data`,
			id, c.Resolution, store.Time(c.Start), store.Time(c.End), c.Count, c.Data)
	}
	if b.Len() == 0 {
		return nil
	}
	return wrap("put metric chunks", m.tx.SendBatch(ctx, b).Close())
}

func (m metricsTx) PutLatest(ctx context.Context, samples []novacron.VMSample) error {
	b := &pgx.Batch{}
	for _, sm := range samples {
		id, ok := store.ParseID(sm.VMID)
		if !ok {
			continue
		}
		node, _ := store.ParseID(sm.NodeID)
		p, err := json.Marshal(sm.VMPoint)
		if err != nil {
			return fmt.Errorf("postgres: put latest metrics: %w", err)
		}
		b.Queue(`INSERT INTO vm_metrics_latest (vm_id, node_id, ts, point)
			SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM vms WHERE id = $1)
			ON CONFLICT (vm_id) DO UPDATE SET node_id = excluded.node_id, ts = excluded.ts, point = excluded.point
			WHERE excluded.ts >= vm_metrics_latest.ts`, id, null(node), store.Time(sm.TS), string(p))
	}
	if b.Len() == 0 {
		return nil
	}
	return wrap("put latest metrics", m.tx.SendBatch(ctx, b).Close())
}

func scanChunks(rows pgx.Rows, host bool, res int) ([]*novacron.MetricChunk, error) {
	defer rows.Close()
	var out []*novacron.MetricChunk
	for rows.Next() {
		c := &novacron.MetricChunk{MetricChunkKey: novacron.MetricChunkKey{Host: host, Resolution: res}}
		if err := rows.Scan(&c.ID, &c.Start, &c.End, &c.Count, &c.Data); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// VMMetricChunks returns a VM's chunks within the scope.
func (s *Store) VMMetricChunks(ctx context.Context, scope novacron.Scope, vmID string, res int, from, to time.Time) ([]*novacron.MetricChunk, error) {
	id, ok := store.ParseID(vmID)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT m.vm_id::text, m.chunk_start, m.chunk_end, m.count, m.data
		FROM vm_metrics m JOIN vms v ON v.id = m.vm_id
		WHERE m.vm_id = $1 AND ($2::uuid IS NULL OR v.tenant_id = $2) AND m.resolution = $3
		AND m.chunk_start >= $4 AND m.chunk_start <= $5 ORDER BY m.chunk_start`,
		id, null(st), res, store.Time(from), store.Time(to))
	if err != nil {
		return nil, wrap("vm metric chunks", err)
	}
	out, err := scanChunks(rows, false, res)
	return out, wrap("vm metric chunks", err)
}

// HostMetricChunks returns the chunks of one node or of all.
func (s *Store) HostMetricChunks(ctx context.Context, nodeID string, res int, from, to time.Time) ([]*novacron.MetricChunk, error) {
	var node any
	if nodeID != "" {
		id, ok := store.ParseID(nodeID)
		if !ok {
			return nil, nil
		}
		node = id
	}
	rows, err := s.pool.Query(ctx, `SELECT node_id::text, chunk_start, chunk_end, count, data FROM system_metrics
		WHERE ($1::uuid IS NULL OR node_id = $1) AND resolution = $2 AND chunk_start >= $3 AND chunk_start <= $4
		ORDER BY node_id, chunk_start`, node, res, store.Time(from), store.Time(to))
	if err != nil {
		return nil, wrap("host metric chunks", err)
	}
	out, err := scanChunks(rows, true, res)
	return out, wrap("host metric chunks", err)
}

// LatestVMMetrics returns the latest sample of every VM in scope.
func (s *Store) LatestVMMetrics(ctx context.Context, scope novacron.Scope) ([]novacron.VMSample, error) {
	st, ok := store.ScopeTenant(scope)
	if !ok {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT l.vm_id::text, v.tenant_id::text, coalesce(l.node_id::text, ''), l.point
		FROM vm_metrics_latest l JOIN vms v ON v.id = l.vm_id
		WHERE ($1::uuid IS NULL OR v.tenant_id = $1) ORDER BY l.vm_id`, null(st))
	if err != nil {
		return nil, wrap("latest vm metrics", err)
	}
	defer rows.Close()
	var out []novacron.VMSample
	for rows.Next() {
		var sm novacron.VMSample
		var point []byte
		if err := rows.Scan(&sm.VMID, &sm.TenantID, &sm.NodeID, &point); err != nil {
			return nil, wrap("latest vm metrics", err)
		}
		if err := json.Unmarshal(point, &sm.VMPoint); err != nil {
			return nil, wrap("latest vm metrics", err)
		}
		out = append(out, sm)
	}
	return out, wrap("latest vm metrics", rows.Err())
}

// PruneMetrics deletes chunks and latest samples older than before.
func (s *Store) PruneMetrics(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		for _, q := range []string{
			`DELETE FROM vm_metrics WHERE chunk_end < $1`,
			`DELETE FROM system_metrics WHERE chunk_end < $1`,
			`DELETE FROM vm_metrics_latest WHERE ts < $1`,
		} {
			tag, err := tx.Exec(ctx, q, store.Time(before))
			if err != nil {
				return err
			}
			total += tag.RowsAffected()
		}
		return nil
	})
	return total, wrap("prune metrics", err)
}
