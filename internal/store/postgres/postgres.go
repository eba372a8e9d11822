// Package postgres implements novacron.Store on PostgreSQL through pgx: the
// store of production, shared by every server replica. Ids are native uuid,
// times timestamptz and JSON documents jsonb.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

var _ novacron.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultMaxConns is the pool size that Open uses when asked for 0.
const DefaultMaxConns = 25

// migrationLock is the key of the advisory lock that serializes the schema
// migrations of replicas starting at once ("novacron" in ASCII).
const migrationLock int64 = 0x6e6f766163726f6e

// Store is the PostgreSQL implementation of novacron.Store. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string) with a pool of at most maxConns connections
// (DefaultMaxConns for 0) and brings its schema up to date.
func Open(ctx context.Context, url string, maxConns int32) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("postgres: invalid database url")
	}
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	cfg.MaxConns = maxConns
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		// Times come back in UTC, as the SQLite store returns them.
		c.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool, now: time.Now}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes every connection of the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// migrate applies the pending migrations on one connection that holds the
// migration advisory lock, so that replicas starting together take turns.
func (s *Store) migrate(ctx context.Context) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, migrationLock); uerr != nil {
			// A session lock lives as long as its connection: end it
			// rather than return a locked connection to the pool.
			_ = conn.Conn().Close(uctx)
			err = errors.Join(err, fmt.Errorf("postgres: migrate: unlock: %w", uerr))
		}
	}()
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL
	)`)
	if err != nil {
		return fmt.Errorf("postgres: create schema_migrations: %w", err)
	}
	_, err = store.Migrate(ctx, migrations, "migrations", func(ctx context.Context, m store.Migration) (bool, error) {
		applied := false
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var done bool
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&done)
			if err != nil || done {
				return err
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.Version, store.Time(s.now()))
			applied = err == nil
			return err
		})
		return applied, err
	})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction and commits it when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// null passes "" as NULL.
func null(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullTime passes nil as NULL and any other time as the stores keep it.
func nullTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := store.Time(*t)
	return &v
}

// deref returns *s, "" for nil: a NULL text or uuid column.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// pgError returns err's PostgreSQL error, if it is one.
func pgError(err error) (*pgconn.PgError, bool) {
	var e *pgconn.PgError
	ok := errors.As(err, &e)
	return e, ok
}

// uniqueConflict maps a unique violation to EConflict, with the message pk
// for a duplicate primary key and other for any other unique constraint,
// and returns nil for any other error. The SQL error is dropped: its text
// names the schema.
func uniqueConflict(err error, pk, other string) error {
	e, ok := pgError(err)
	if !ok || e.Code != "23505" { // unique_violation
		return nil
	}
	if strings.HasSuffix(e.ConstraintName, "_pkey") {
		return novacron.Errorf(novacron.EConflict, "%s", pk)
	}
	return novacron.Errorf(novacron.EConflict, "%s", other)
}

func isForeignKey(err error) bool {
	e, ok := pgError(err)
	return ok && e.Code == "23503" // foreign_key_violation
}

// wrap returns nil and coded (domain) errors as they are and wraps any
// other error with the operation that failed: it becomes an internal error
// upstream, its text for the log only.
func wrap(op string, err error) error {
	var e *novacron.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}
