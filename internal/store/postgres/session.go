package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

const sessionColumns = `id, user_id, kind, name, token_hash, ip, user_agent, created_at, expires_at, revoked_at`

func scanSession(row pgx.Row) (*novacron.Session, error) {
	var s novacron.Session
	var hash *string
	err := row.Scan(&s.ID, &s.UserID, &s.Kind, &s.Name, &hash, &s.IP, &s.UserAgent, &s.CreatedAt, &s.ExpiresAt, &s.RevokedAt)
	if err != nil {
		return nil, err
	}
	s.TokenHash = deref(hash)
	return &s, nil
}

// CreateSession inserts sess, giving it an id (when empty) and its creation
// time.
func (s *Store) CreateSession(ctx context.Context, sess *novacron.Session) error {
	if sess.Kind != novacron.SessionLogin && sess.Kind != novacron.SessionToken {
		return novacron.FieldError("kind", "must be login or token")
	}
	if sess.ExpiresAt.IsZero() {
		return novacron.FieldError("expires_at", "is required")
	}
	user, ok := store.ParseID(sess.UserID)
	if !ok {
		return store.NotFound("user")
	}
	id := sess.ID
	if err := store.AssignID(&id); err != nil {
		return err
	}
	now := store.Time(s.now())
	expires := store.Time(sess.ExpiresAt)
	revoked := nullTime(sess.RevokedAt)
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		id, user, sess.Kind, sess.Name, null(sess.TokenHash), sess.IP, sess.UserAgent, now, expires, revoked)
	if cerr := uniqueConflict(err, "session id already exists", "token already exists"); cerr != nil {
		return cerr
	}
	if isForeignKey(err) {
		return store.NotFound("user")
	}
	if err != nil {
		return wrap("create session", err)
	}
	sess.ID, sess.UserID, sess.CreatedAt, sess.ExpiresAt, sess.RevokedAt = id, user, now, expires, revoked
	return nil
}

// GetSession returns the session with the given id, revoked or expired ones
// included.
func (s *Store) GetSession(ctx context.Context, id string) (*novacron.Session, error) {
	id, ok := store.ParseID(id)
	if !ok {
		return nil, store.NotFound("session")
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound("session")
	}
	return sess, wrap("get session", err)
}

// GetSessionByTokenHash returns the session with the given token hash,
// revoked or expired ones included.
func (s *Store) GetSessionByTokenHash(ctx context.Context, hash string) (*novacron.Session, error) {
	if hash == "" {
		return nil, store.NotFound("session")
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound("session")
	}
	return sess, wrap("get session", err)
}

// ListSessions lists the user's active sessions of the given kind (of every
// kind when kind is ""), newest first.
func (s *Store) ListSessions(ctx context.Context, userID string, kind novacron.SessionKind, page novacron.Page) ([]*novacron.Session, string, error) {
	limit := store.Limit(page)
	before, err := store.DecodeCursor(page.Cursor, store.MaxID)
	if err != nil {
		return nil, "", err
	}
	user, ok := store.ParseID(userID)
	if !ok {
		return nil, "", nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = $1 AND ($2::text IS NULL OR kind = $2) AND revoked_at IS NULL AND expires_at > $3
		  AND id < $4
		ORDER BY id DESC LIMIT $5`, user, null(string(kind)), store.Time(s.now()), before, limit+1)
	if err != nil {
		return nil, "", wrap("list sessions", err)
	}
	ss, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*novacron.Session, error) { return scanSession(row) })
	if err != nil {
		return nil, "", wrap("list sessions", err)
	}
	ss, next := store.NextCursor(ss, limit, func(s *novacron.Session) string { return s.ID })
	return ss, next, nil
}

// RevokeSession revokes one session of the user. Revoking a revoked session
// succeeds and keeps its first revocation time.
func (s *Store) RevokeSession(ctx context.Context, userID, id string) error {
	user, uok := store.ParseID(userID)
	id, ok := store.ParseID(id)
	if !ok || !uok {
		return store.NotFound("session")
	}
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET revoked_at = coalesce(revoked_at, $1)
		WHERE id = $2 AND user_id = $3`, store.Time(s.now()), id, user)
	if err != nil {
		return wrap("revoke session", err)
	}
	if tag.RowsAffected() == 0 {
		return store.NotFound("session")
	}
	return nil
}

// RevokeUserSessions revokes the user's sessions that are not revoked yet
// and returns how many it revoked.
func (s *Store) RevokeUserSessions(ctx context.Context, userID string) (int64, error) {
	user, ok := store.ParseID(userID)
	if !ok {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET revoked_at = $1
		WHERE user_id = $2 AND revoked_at IS NULL`, store.Time(s.now()), user)
	return tag.RowsAffected(), wrap("revoke sessions", err)
}

// PruneSessions deletes the sessions that expired or were revoked before t.
func (s *Store) PruneSessions(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1`, store.Time(before))
	return tag.RowsAffected(), wrap("prune sessions", err)
}
