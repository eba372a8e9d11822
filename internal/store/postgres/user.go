package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

const userColumns = `id, username, email, role, tenant_id, password_hash, created_at, updated_at`

func scanUser(row pgx.Row) (*novacron.User, error) {
	var u novacron.User
	err := row.Scan(&u.ID, &u.Username, &u.Email, &u.Role, &u.TenantID, &u.PasswordHash, &u.CreatedAt, &u.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateUser inserts u, giving it an id (when empty) and its timestamps.
func (s *Store) CreateUser(ctx context.Context, u *novacron.User) error {
	if u.Username == "" {
		return novacron.FieldError("username", "is required")
	}
	if !u.Role.Valid() {
		return novacron.FieldError("role", "must be admin, operator or user")
	}
	tenant, ok := store.ParseID(u.TenantID)
	if !ok {
		return novacron.FieldError("tenant_id", "tenant does not exist")
	}
	id := u.ID
	if err := store.AssignID(&id); err != nil {
		return err
	}
	now := store.Time(s.now())
	_, err := s.pool.Exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
		id, u.Username, u.Email, u.Role, tenant, u.PasswordHash, now)
	if cerr := uniqueConflict(err, "user id already exists", "username already exists"); cerr != nil {
		return cerr
	}
	if isForeignKey(err) {
		return novacron.FieldError("tenant_id", "tenant does not exist")
	}
	if err != nil {
		return wrap("create user", err)
	}
	u.ID, u.TenantID, u.CreatedAt, u.UpdatedAt = id, tenant, now, now
	return nil
}

// GetUser returns the user with the given id within scope.
func (s *Store) GetUser(ctx context.Context, scope novacron.Scope, id string) (*novacron.User, error) {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return nil, store.NotFound("user")
	}
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users
		WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)`, id, null(st)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound("user")
	}
	return u, wrap("get user", err)
}

// GetUserByUsername returns the user with the given username, in any tenant.
func (s *Store) GetUserByUsername(ctx context.Context, username string) (*novacron.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound("user")
	}
	return u, wrap("get user", err)
}

// ListUsers lists the users within scope that match f, in id (creation)
// order.
func (s *Store) ListUsers(ctx context.Context, scope novacron.Scope, f novacron.UserFilter) ([]*novacron.User, string, error) {
	limit := store.Limit(f.Page)
	after, err := store.DecodeCursor(f.Cursor, store.MinID)
	if err != nil {
		return nil, "", err
	}
	st, ok := store.ScopeTenant(scope)
	if !ok {
		return nil, "", nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users
		WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR role = $2) AND ($3::text IS NULL OR username = $3)
		  AND id > $4
		ORDER BY id LIMIT $5`, null(st), null(string(f.Role)), null(f.Username), after, limit+1)
	if err != nil {
		return nil, "", wrap("list users", err)
	}
	us, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*novacron.User, error) { return scanUser(row) })
	if err != nil {
		return nil, "", wrap("list users", err)
	}
	us, next := store.NextCursor(us, limit, func(u *novacron.User) string { return u.ID })
	return us, next, nil
}

// UpdateUser writes u's Email, Role, TenantID and PasswordHash and reloads
// u from the row. A tenant scope can neither see users of other tenants nor
// move a user to one.
func (s *Store) UpdateUser(ctx context.Context, scope novacron.Scope, u *novacron.User) error {
	id, ok := store.ParseID(u.ID)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return store.NotFound("user")
	}
	if !u.Role.Valid() {
		return novacron.FieldError("role", "must be admin, operator or user")
	}
	tenant, ok := store.ParseID(u.TenantID)
	if !ok {
		return novacron.FieldError("tenant_id", "tenant does not exist")
	}
	if st != "" && tenant != st {
		// Say so only to a caller who can see the user.
		if _, err := s.GetUser(ctx, scope, id); err != nil {
			return err
		}
		return novacron.Errorf(novacron.EForbidden, "cannot move a user to another tenant")
	}
	now := store.Time(s.now())
	got, err := scanUser(s.pool.QueryRow(ctx, `UPDATE users
		SET email = $1, role = $2, tenant_id = $3, password_hash = $4, updated_at = $5
		WHERE id = $6 AND ($7::uuid IS NULL OR tenant_id = $7)
		RETURNING `+userColumns, u.Email, u.Role, tenant, u.PasswordHash, now, id, null(st)))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.NotFound("user")
	}
	if isForeignKey(err) {
		return novacron.FieldError("tenant_id", "tenant does not exist")
	}
	if err != nil {
		return wrap("update user", err)
	}
	*u = *got
	return nil
}

// DeleteUser deletes the user within scope; its sessions go with it (ON
// DELETE CASCADE) and its VMs lose their owner.
func (s *Store) DeleteUser(ctx context.Context, scope novacron.Scope, id string) error {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return store.NotFound("user")
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM users WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)`, id, null(st))
	if err != nil {
		return wrap("delete user", err)
	}
	if tag.RowsAffected() == 0 {
		return store.NotFound("user")
	}
	return nil
}

// CountUsers returns the number of users in every tenant.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, wrap("count users", err)
}
