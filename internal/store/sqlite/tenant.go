package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

const tenantColumns = `id, name, quotas, created_at, updated_at`

func scanTenant(row interface{ Scan(...any) error }) (*novacron.Tenant, error) {
	var t novacron.Tenant
	var quotas string
	if err := row.Scan(&t.ID, &t.Name, &quotas, timeCol{&t.CreatedAt}, timeCol{&t.UpdatedAt}); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(quotas), &t.Quotas); err != nil {
		return nil, fmt.Errorf("quotas: %w", err)
	}
	return &t, nil
}

// CreateTenant inserts t, giving it an id (when empty) and its timestamps.
func (s *Store) CreateTenant(ctx context.Context, t *novacron.Tenant) error {
	if t.Name == "" {
		return novacron.FieldError("name", "is required")
	}
	id := t.ID
	if err := store.AssignID(&id); err != nil {
		return err
	}
	quotas, err := json.Marshal(t.Quotas)
	if err != nil {
		return wrap("create tenant", err)
	}
	now := store.Time(s.now())
	_, err = s.write.ExecContext(ctx, `INSERT INTO tenants (`+tenantColumns+`) VALUES (?, ?, ?, ?, ?)`,
		id, t.Name, string(quotas), timeText(now), timeText(now))
	if cerr := uniqueConflict(err, "tenant id already exists", "tenant name already exists"); cerr != nil {
		return cerr
	}
	if err != nil {
		return wrap("create tenant", err)
	}
	t.ID, t.CreatedAt, t.UpdatedAt = id, now, now
	return nil
}

// GetTenant returns the tenant with the given id; a tenant scope sees only
// its own tenant.
func (s *Store) GetTenant(ctx context.Context, scope novacron.Scope, id string) (*novacron.Tenant, error) {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok || (st != "" && st != id) {
		return nil, store.NotFound("tenant")
	}
	t, err := scanTenant(s.read.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.NotFound("tenant")
	}
	return t, wrap("get tenant", err)
}

// GetTenantByName returns the tenant with the given name.
func (s *Store) GetTenantByName(ctx context.Context, name string) (*novacron.Tenant, error) {
	t, err := scanTenant(s.read.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.NotFound("tenant")
	}
	return t, wrap("get tenant", err)
}

// ListTenants lists tenants in id (creation) order.
func (s *Store) ListTenants(ctx context.Context, scope novacron.Scope, page novacron.Page) ([]*novacron.Tenant, string, error) {
	limit := store.Limit(page)
	after, err := store.DecodeCursor(page.Cursor, store.MinID)
	if err != nil {
		return nil, "", err
	}
	st, ok := store.ScopeTenant(scope)
	if !ok {
		return nil, "", nil
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants
		WHERE (?1 IS NULL OR id = ?1) AND id > ?2
		ORDER BY id LIMIT ?3`, nullText(st), after, limit+1)
	if err != nil {
		return nil, "", wrap("list tenants", err)
	}
	defer rows.Close()
	var ts []*novacron.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, "", wrap("list tenants", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", wrap("list tenants", err)
	}
	ts, next := store.NextCursor(ts, limit, func(t *novacron.Tenant) string { return t.ID })
	return ts, next, nil
}

// UpdateTenant writes t's Name and Quotas and refreshes its timestamps. The
// default tenant keeps its name.
func (s *Store) UpdateTenant(ctx context.Context, t *novacron.Tenant) error {
	id, ok := store.ParseID(t.ID)
	if !ok {
		return store.NotFound("tenant")
	}
	if t.Name == "" {
		return novacron.FieldError("name", "is required")
	}
	quotas, err := json.Marshal(t.Quotas)
	if err != nil {
		return wrap("update tenant", err)
	}
	now := store.Time(s.now())
	var created novacron.Tenant
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var name string
		err := tx.QueryRowContext(ctx, `SELECT name FROM tenants WHERE id = ?`, id).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return store.NotFound("tenant")
		}
		if err != nil {
			return err
		}
		if name == novacron.DefaultTenantName && t.Name != name {
			return novacron.Errorf(novacron.EConflict, "the default tenant cannot be renamed")
		}
		return tx.QueryRowContext(ctx, `UPDATE tenants SET name = ?, quotas = ?, updated_at = ? WHERE id = ?
			RETURNING created_at`, t.Name, string(quotas), timeText(now), id).Scan(timeCol{&created.CreatedAt})
	})
	if cerr := uniqueConflict(err, "tenant id already exists", "tenant name already exists"); cerr != nil {
		return cerr
	}
	if err != nil {
		return wrap("update tenant", err)
	}
	t.ID, t.CreatedAt, t.UpdatedAt = id, created.CreatedAt, now
	return nil
}

// DeleteTenant deletes an empty tenant other than the default one.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	id, ok := store.ParseID(id)
	if !ok {
		return store.NotFound("tenant")
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var name string
		err := tx.QueryRowContext(ctx, `SELECT name FROM tenants WHERE id = ?`, id).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return store.NotFound("tenant")
		}
		if err != nil {
			return err
		}
		if name == novacron.DefaultTenantName {
			return novacron.Errorf(novacron.EConflict, "the default tenant cannot be deleted")
		}
		for _, owned := range []struct{ table, what string }{
			{"users", "users"}, {"vms", "VMs"}, {"images", "images"},
		} {
			var n int
			q := `SELECT count(*) FROM (SELECT 1 FROM ` + owned.table + ` WHERE tenant_id = ? LIMIT 1)`
			if err := tx.QueryRowContext(ctx, q, id).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return novacron.Errorf(novacron.EConflict, "tenant still has %s", owned.what)
			}
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM tenants WHERE id = ?`, id)
		return err
	})
	if isForeignKey(err) {
		return novacron.Errorf(novacron.EConflict, "tenant still has users or resources")
	}
	return wrap("delete tenant", err)
}
