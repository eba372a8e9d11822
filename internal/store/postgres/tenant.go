package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

const tenantColumns = `id, name, quotas, created_at, updated_at`

func scanTenant(row pgx.Row) (*novacron.Tenant, error) {
	var t novacron.Tenant
	var quotas []byte
	if err := row.Scan(&t.ID, &t.Name, &quotas, &t.CreatedAt, &t.UpdatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(quotas, &t.Quotas); err != nil {
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
	_, err = s.pool.Exec(ctx, `INSERT INTO tenants (`+tenantColumns+`) VALUES ($1, $2, $3, $4, $4)`,
		id, t.Name, quotas, now)
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
	t, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound("tenant")
	}
	return t, wrap("get tenant", err)
}

// GetTenantByName returns the tenant with the given name.
func (s *Store) GetTenantByName(ctx context.Context, name string) (*novacron.Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := s.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenants
		WHERE ($1::uuid IS NULL OR id = $1) AND id > $2
		ORDER BY id LIMIT $3`, null(st), after, limit+1)
	if err != nil {
		return nil, "", wrap("list tenants", err)
	}
	ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*novacron.Tenant, error) { return scanTenant(row) })
	if err != nil {
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
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var name string
		err := tx.QueryRow(ctx, `SELECT name FROM tenants WHERE id = $1 FOR UPDATE`, id).Scan(&name)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.NotFound("tenant")
		}
		if err != nil {
			return err
		}
		if name == novacron.DefaultTenantName && t.Name != name {
			return novacron.Errorf(novacron.EConflict, "the default tenant cannot be renamed")
		}
		return tx.QueryRow(ctx, `UPDATE tenants SET name = $1, quotas = $2, updated_at = $3 WHERE id = $4
			RETURNING created_at`, t.Name, quotas, now, id).Scan(&created.CreatedAt)
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The row lock waits for, and then blocks, inserts that
		// reference the tenant, so the checks below stay true until
		// the delete.
		var name string
		err := tx.QueryRow(ctx, `SELECT name FROM tenants WHERE id = $1 FOR UPDATE`, id).Scan(&name)
		if errors.Is(err, pgx.ErrNoRows) {
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
			var found bool
			q := `SELECT EXISTS (SELECT 1 FROM ` + owned.table + ` WHERE tenant_id = $1)`
			if err := tx.QueryRow(ctx, q, id).Scan(&found); err != nil {
				return err
			}
			if found {
				return novacron.Errorf(novacron.EConflict, "tenant still has %s", owned.what)
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM tenants WHERE id = $1`, id)
		return err
	})
	if isForeignKey(err) {
		return novacron.Errorf(novacron.EConflict, "tenant still has users or resources")
	}
	return wrap("delete tenant", err)
}
