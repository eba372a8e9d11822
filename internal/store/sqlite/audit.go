package sqlite

import (
	"context"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

const auditColumns = `id, ts, user_id, username, tenant_id, action, resource, resource_id, ip, user_agent, success, error, request_id`

func scanAudit(row interface{ Scan(...any) error }) (*novacron.AuditEntry, error) {
	var e novacron.AuditEntry
	err := row.Scan(&e.ID, timeCol{&e.TS}, nullTextCol{&e.UserID}, &e.Username, nullTextCol{&e.TenantID},
		&e.Action, &e.Resource, &e.ResourceID, &e.IP, &e.UserAgent, &e.Success, &e.Error, &e.RequestID)
	if err != nil {
		return nil, err
	}
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
	_, err = s.write.ExecContext(ctx, `INSERT INTO audit_logs (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, timeText(ts), nullText(user), e.Username, nullText(tenant), e.Action, e.Resource, e.ResourceID,
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
	var from, to any
	if !f.From.IsZero() {
		from = timeText(f.From)
	}
	if !f.To.IsZero() {
		to = timeText(f.To)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit_logs
		WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR user_id = ?2)
		  AND (?3 IS NULL OR action = ?3) AND (?4 IS NULL OR resource = ?4)
		  AND (?5 IS NULL OR ts >= ?5) AND (?6 IS NULL OR ts < ?6)
		  AND id < ?7
		ORDER BY id DESC LIMIT ?8`,
		nullText(st), nullText(user), nullText(f.Action), nullText(f.Resource), from, to, before, limit+1)
	if err != nil {
		return nil, "", wrap("list audit", err)
	}
	defer rows.Close()
	var es []*novacron.AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, "", wrap("list audit", err)
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", wrap("list audit", err)
	}
	es, next := store.NextCursor(es, limit, func(e *novacron.AuditEntry) string { return e.ID })
	return es, next, nil
}

// PruneAudit deletes the entries older than before.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	n, err := rowsAffected(s.write.ExecContext(ctx, `DELETE FROM audit_logs WHERE ts < ?`, timeText(before)))
	return n, wrap("prune audit", err)
}
