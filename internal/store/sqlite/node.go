package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

const nodeColumns = `id, name, address, status, capabilities, resources, labels, last_seen, created_at, updated_at`

func scanNode(row scanner) (*novacron.Node, error) {
	var n novacron.Node
	var caps, res, labels string
	var seen *time.Time
	err := row.Scan(&n.ID, &n.Name, &n.Address, &n.Status, &caps, &res, &labels, nullTimeCol{&seen},
		timeCol{&n.CreatedAt}, timeCol{&n.UpdatedAt})
	if err != nil {
		return nil, err
	}
	if seen != nil {
		n.LastSeen = *seen
	}
	n.Capabilities, n.Resources = []byte(caps), []byte(res)
	if n.Labels, err = store.DecodeLabels([]byte(labels)); err != nil {
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
		seen = &v.LastSeen
	}
	got, err := scanNode(s.write.QueryRowContext(ctx, `INSERT INTO nodes (`+nodeColumns+`)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
		ON CONFLICT (name) DO UPDATE SET address = excluded.address, status = excluded.status,
			capabilities = excluded.capabilities, resources = excluded.resources, labels = excluded.labels,
			last_seen = coalesce(excluded.last_seen, nodes.last_seen), updated_at = excluded.updated_at
		RETURNING `+nodeColumns,
		v.ID, v.Name, v.Address, v.Status, string(js.Capabilities), string(js.Resources), string(js.Labels),
		nullTimeText(seen), timeText(s.now())))
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
	n, err := scanNode(s.read.QueryRowContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
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
	rows, err := s.read.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE id > ? ORDER BY id LIMIT ?`, after, limit+1)
	if err != nil {
		return nil, "", wrap("list nodes", err)
	}
	defer rows.Close()
	var ns []*novacron.Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, "", wrap("list nodes", err)
		}
		ns = append(ns, n)
	}
	if err := rows.Err(); err != nil {
		return nil, "", wrap("list nodes", err)
	}
	ns, next := store.NextCursor(ns, limit, func(n *novacron.Node) string { return n.ID })
	return ns, next, nil
}
