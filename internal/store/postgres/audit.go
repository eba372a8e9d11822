package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

const auditColumns = `id, ts, user_id, username, tenant_id, action, resource, resource_id, ip, user_agent, success, error, request_id`

func scanAudit(row pgx.Row) (*novacron.AuditEntry, error) {
	var e novacron.AuditEntry
	var user, tenant *string
	err := row.Scan(&e.ID, &e.TS, &user, &e.Username, &tenant, &e.Action, &e.Resource, &e.ResourceID,
		&e.IP, &e.UserAgent, &e.Success, &e.Error, &e.RequestID)
	if err != nil {
		return nil, err
	}
	e.UserID, e.TenantID = deref(user), deref(tenant)
	return &e, nil
}

// optionalID canonicalizes an optional id column: "" stays "" (NULL), a
// malformed id is an EInvalid error naming field.
func optionalID(field, id string) (string, error) {
	if id == "" {
		return "", nil
	}
	v, ok := store.ParseID(id)
	if !ok {
		return "", novacron.FieldError(field, "not a valid id")
	}
	return v, nil
}

// InsertAudit inserts e, giving it an id (when empty) and a time (when
// zero).
func (s *Store) InsertAudit(ctx context.Context, e *novacron.AuditEntry) error {
	if e.Action == "" {
		return novacron.FieldError("action", "is required")
	}
	user, err := optionalID("user_id", e.UserID)
	if err != nil {
		return err
	}
	tenant, err := optionalID("tenant_id", e.TenantID)
	if err != nil {
		return err
	}
	id := e.ID
	if err := store.AssignID(&id); err != nil {
		return err
	}
	ts := e.TS
	if ts.IsZero() {
		ts = s.now()
	}
	ts = store.Time(ts)
	_, err = s.pool.Exec(ctx, `INSERT INTO audit_logs (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		id, ts, null(user), e.Username, null(tenant), e.Action, e.Resource, e.ResourceID,
		e.IP, e.UserAgent, e.Success, e.Error, e.RequestID)
	if cerr := uniqueConflict(err, "audit entry id already exists", "audit entry already exists"); cerr != nil {
		return cerr
	}
	if err != nil {
		return wrap("insert audit", err)
	}
	e.ID, e.TS, e.UserID, e.TenantID = id, ts, user, tenant
	return nil
}

// ListAudit lists the entries within scope that match f, newest (by id)
// first.
func (s *Store) ListAudit(ctx context.Context, scope novacron.Scope, f novacron.AuditFilter) ([]*novacron.AuditEntry, string, error) {
	limit := store.Limit(f.Page)
	before, err := store.DecodeCursor(f.Cursor, store.MaxID)
	if err != nil {
		return nil, "", err
	}
	user, err := optionalID("user_id", f.UserID)
	if err != nil {
		return nil, "", err
	}
	st, ok := store.ScopeTenant(scope)
	if !ok {
		return nil, "", nil
	}
	var from, to *time.Time
	if !f.From.IsZero() {
		from = nullTime(&f.From)
	}
	if !f.To.IsZero() {
		to = nullTime(&f.To)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_logs
		WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::uuid IS NULL OR user_id = $2)
		  AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR resource = $4)
		  AND ($5::timestamptz IS NULL OR ts >= $5) AND ($6::timestamptz IS NULL OR ts < $6)
		  AND id < $7
		ORDER BY id DESC LIMIT $8`,
		null(st), null(user), null(f.Action), null(f.Resource), from, to, before, limit+1)
	if err != nil {
		return nil, "", wrap("list audit", err)
	}
	es, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*novacron.AuditEntry, error) { return scanAudit(row) })
	if err != nil {
		return nil, "", wrap("list audit", err)
	}
	es, next := store.NextCursor(es, limit, func(e *novacron.AuditEntry) string { return e.ID })
	return es, next, nil
}

// PruneAudit deletes the entries older than before.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_logs WHERE ts < $1`, store.Time(before))
	return tag.RowsAffected(), wrap("prune audit", err)
}
