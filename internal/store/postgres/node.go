package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

const nodeColumns = `id, name, address, status, capabilities, resources, labels, last_seen, created_at, updated_at`

func scanNode(row pgx.Row) (*novacron.Node, error) {
	var n novacron.Node
	var caps, res, labels []byte
	var seen *time.Time
	err := row.Scan(&n.ID, &n.Name, &n.Address, &n.Status, &caps, &res, &labels, &seen, &n.CreatedAt, &n.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if seen != nil {
		n.LastSeen = *seen
	}
	n.Capabilities, n.Resources = caps, res
	if n.Labels, err = store.DecodeLabels(labels); err != nil {
		return nil, err
	}
	return &n, nil
}

// UpsertNode creates the node named n.Name, or updates the address,
// status, capabilities, resources, labels and (when n.LastSeen is not
// zero) last_seen of the one that exists, and reloads n from the row.
func (s *Store) UpsertNode(ctx context.Context, n *novacron.Node) error {
	v, js, err := store.PrepareNode(n)
	if err != nil {
		return err
	}
	var seen *time.Time
	if !v.LastSeen.IsZero() {
		seen = nullTime(&v.LastSeen)
	}
	got, err := scanNode(s.pool.QueryRow(ctx, `INSERT INTO nodes (`+nodeColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
		ON CONFLICT (name) DO UPDATE SET address = excluded.address, status = excluded.status,
			capabilities = excluded.capabilities, resources = excluded.resources, labels = excluded.labels,
			last_seen = coalesce(excluded.last_seen, nodes.last_seen), updated_at = excluded.updated_at
		RETURNING `+nodeColumns,
		v.ID, v.Name, v.Address, v.Status, js.Capabilities, js.Resources, js.Labels, seen, store.Time(s.now())))
	if cerr := uniqueConflict(err, "node id already exists", "node already exists"); cerr != nil {
		return cerr
	}
	if err != nil {
		return wrap("upsert node", err)
	}
	*n = *got
	return nil
}

// GetNode returns the node with the given id.
func (s *Store) GetNode(ctx context.Context, id string) (*novacron.Node, error) {
	id, ok := store.ParseID(id)
	if !ok {
		return nil, store.NotFound("node")
	}
	n, err := scanNode(s.pool.QueryRow(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound("node")
	}
	return n, wrap("get node", err)
}

// ListNodes lists nodes in id (creation) order.
func (s *Store) ListNodes(ctx context.Context, page novacron.Page) ([]*novacron.Node, string, error) {
	limit := store.Limit(page)
	after, err := store.DecodeCursor(page.Cursor, store.MinID)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE id > $1 ORDER BY id LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, "", wrap("list nodes", err)
	}
	ns, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*novacron.Node, error) { return scanNode(row) })
	if err != nil {
		return nil, "", wrap("list nodes", err)
	}
	ns, next := store.NextCursor(ns, limit, func(n *novacron.Node) string { return n.ID })
	return ns, next, nil
}
