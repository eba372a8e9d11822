package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

var _ novacron.MetricsStore = (*Store)(nil)

// metricTable returns the table of a chunk and the table its id refers to.
func metricTable(host bool) (table, idCol, parent string) {
	if host {
		return "system_metrics", "node_id", "nodes"
	}
	return "vm_metrics", "vm_id", "vms"
}

type metricsTx struct{ tx *sql.Tx }

// UpdateMetrics runs fn in one write transaction.
func (s *Store) UpdateMetrics(ctx context.Context, fn func(tx novacron.MetricsTx) error) error {
	return wrap("update metrics", s.inTx(ctx, func(tx *sql.Tx) error { return fn(metricsTx{tx}) }))
}

func (m metricsTx) Chunks(ctx context.Context, keys []novacron.MetricChunkKey) ([]*novacron.MetricChunk, error) {
	var stmts [2]*sql.Stmt
	defer func() {
		for _, st := range stmts {
			if st != nil {
				st.Close()
			}
		}
	}()
	var out []*novacron.MetricChunk
	for _, k := range keys {
		id, ok := store.ParseID(k.ID)
		if !ok {
			continue
		}
		i := 0
		if k.Host {
			i = 1
		}
		if stmts[i] == nil {
			table, idCol, _ := metricTable(k.Host)
			st, err := m.tx.PrepareContext(ctx, `SELECT chunk_end, count, data FROM `+table+`
				WHERE `+idCol+` = ? AND resolution = ? AND chunk_start = ?`)
			if err != nil {
				return nil, wrap("load metric chunks", err)
			}
			stmts[i] = st
		}
		c := &novacron.MetricChunk{MetricChunkKey: k}
		c.ID = id
		err := stmts[i].QueryRowContext(ctx, id, k.Resolution, timeText(k.Start)).Scan(timeCol{&c.End}, &c.Count, &c.Data)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return nil, wrap("load metric chunks", err)
		}
		c.Start = store.Time(k.Start)
		out = append(out, c)
	}
	return out, nil
}

func (m metricsTx) PutChunks(ctx context.Context, chunks []*novacron.MetricChunk) error {
	var stmts [2]*sql.Stmt
	defer func() {
		for _, st := range stmts {
			if st != nil {
				st.Close()
			}
		}
	}()
	for _, c := range chunks {
		id, ok := store.ParseID(c.ID)
		if !ok {
			continue
		}
		i := 0
		if c.Host {
			i = 1
		}
		if stmts[i] == nil {
			table, idCol, parent := metricTable(c.Host)
			st, err := m.tx.PrepareContext(ctx, `INSERT INTO `+table+` (`+idCol+`, resolution, chunk_start, chunk_end, count, data)
				SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM `+parent+` WHERE id = ?1)
				ON CONFLICT (`+idCol+`, resolution, chunk_start) DO UPDATE
				SET chunk_end = excluded.chunk_end, count = excluded.count, data = excluded.data`)
			if err != nil {
				return wrap("put metric chunks", err)
			}
			stmts[i] = st
		}
		if _, err := stmts[i].ExecContext(ctx, id, c.Resolution, timeText(c.Start), timeText(c.End), c.Count, c.Data); err != nil {
			return wrap("put metric chunks", err)
		}
	}
	return nil
}

func (m metricsTx) PutLatest(ctx context.Context, samples []novacron.VMSample) error {
	if len(samples) == 0 {
		return nil
	}
	st, err := m.tx.PrepareContext(ctx, `INSERT INTO vm_metrics_latest (vm_id, node_id, ts, point)
		SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM vms WHERE id = ?1)
		ON CONFLICT (vm_id) DO UPDATE SET node_id = excluded.node_id, ts = excluded.ts, point = excluded.point
		WHERE excluded.ts >= vm_metrics_latest.ts`)
	if err != nil {
		return wrap("put latest metrics", err)
	}
	defer st.Close()
	for _, sm := range samples {
		id, ok := store.ParseID(sm.VMID)
		if !ok {
			continue
		}
		node, _ := store.ParseID(sm.NodeID)
		p, err := json.Marshal(sm.VMPoint)
		if err != nil {
			return fmt.Errorf("sqlite: put latest metrics: %w", err)
		}
		if _, err := st.ExecContext(ctx, id, nullText(node), timeText(sm.TS), string(p)); err != nil {
			return wrap("put latest metrics", err)
		}
	}
	return nil
}

func scanChunks(rows *sql.Rows, host bool, res int) ([]*novacron.MetricChunk, error) {
	defer rows.Close()
	var out []*novacron.MetricChunk
	for rows.Next() {
		c := &novacron.MetricChunk{MetricChunkKey: novacron.MetricChunkKey{Host: host, Resolution: res}}
		if err := rows.Scan(&c.ID, timeCol{&c.Start}, timeCol{&c.End}, &c.Count, &c.Data); err != nil {
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
	rows, err := s.read.QueryContext(ctx, `SELECT m.vm_id, m.chunk_start, m.chunk_end, m.count, m.data
		FROM vm_metrics m JOIN vms v ON v.id = m.vm_id
		WHERE m.vm_id = ?1 AND (?2 IS NULL OR v.tenant_id = ?2) AND m.resolution = ?3
		AND m.chunk_start >= ?4 AND m.chunk_start <= ?5 ORDER BY m.chunk_start`,
		id, nullText(st), res, timeText(from), timeText(to))
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
	rows, err := s.read.QueryContext(ctx, `SELECT node_id, chunk_start, chunk_end, count, data FROM system_metrics
		WHERE (?1 IS NULL OR node_id = ?1) AND resolution = ?2 AND chunk_start >= ?3 AND chunk_start <= ?4
		ORDER BY node_id, chunk_start`, node, res, timeText(from), timeText(to))
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
	rows, err := s.read.QueryContext(ctx, `SELECT l.vm_id, v.tenant_id, l.node_id, l.point
		FROM vm_metrics_latest l JOIN vms v ON v.id = l.vm_id
		WHERE (?1 IS NULL OR v.tenant_id = ?1) ORDER BY l.vm_id`, nullText(st))
	if err != nil {
		return nil, wrap("latest vm metrics", err)
	}
	defer rows.Close()
	var out []novacron.VMSample
	for rows.Next() {
		var sm novacron.VMSample
		var point string
		if err := rows.Scan(&sm.VMID, &sm.TenantID, nullTextCol{&sm.NodeID}, &point); err != nil {
			return nil, wrap("latest vm metrics", err)
		}
		if err := json.Unmarshal([]byte(point), &sm.VMPoint); err != nil {
			return nil, wrap("latest vm metrics", err)
		}
		out = append(out, sm)
	}
	return out, wrap("latest vm metrics", rows.Err())
}

// PruneMetrics deletes chunks and latest samples older than before.
func (s *Store) PruneMetrics(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM vm_metrics WHERE chunk_end < ?`,
			`DELETE FROM system_metrics WHERE chunk_end < ?`,
			`DELETE FROM vm_metrics_latest WHERE ts < ?`,
		} {
			n, err := rowsAffected(tx.ExecContext(ctx, q, timeText(before)))
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	return total, wrap("prune metrics", err)
}
