// Package sqlite implements novacron.Store on an SQLite file through
// modernc.org/sqlite (pure Go): the embedded default of the all-in-one
// server.
//
// SQLite allows one writer at a time. The store therefore keeps two pools
// on the same file: a pool of one connection for writes, whose transactions
// begin IMMEDIATE so that they take the write lock up front, and a pool of
// several read-only connections that WAL mode lets run beside the writer.
// Writers queue in Go for the single write connection instead of spinning
// on SQLITE_BUSY, which keeps many concurrent requests free of busy errors.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

var _ novacron.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite implementation of novacron.Store. It is safe for
// concurrent use.
type Store struct {
	write *sql.DB // one connection: every write and read-modify-write
	read  *sql.DB // read-only connections; write itself for ":memory:"
	now   func() time.Time
}

// pragmas are applied to every connection. journal_mode=WAL persists in the
// file; the others are per connection.
const pragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(ON)&_pragma=synchronous(NORMAL)"

// Open opens (creating it if needed) the SQLite database at path and brings
// its schema up to date. A path of ":memory:" gives a private in-memory
// database served by a single connection, for tests.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: invalid database path %q", path)
	}
	s := &Store{now: time.Now}
	var err error
	s.write, err = sql.Open("sqlite", path+"?"+pragmas+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.write.SetConnMaxLifetime(0)
	s.write.SetConnMaxIdleTime(0)
	if err := s.write.PingContext(ctx); err != nil {
		s.write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.write.Close()
		return nil, err
	}
	if path == ":memory:" {
		s.read = s.write
		return s, nil
	}
	s.read, err = sql.Open("sqlite", path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		s.write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.read.SetMaxOpenConns(n)
	s.read.SetMaxIdleConns(n)
	if err := s.read.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	var err error
	if s.read != nil && s.read != s.write {
		err = s.read.Close()
	}
	return errors.Join(err, s.write.Close())
}

// Ping checks that both pools answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := s.write.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL
	) STRICT`
	if _, err := s.write.ExecContext(ctx, create); err != nil {
		return fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	_, err := store.Migrate(ctx, migrations, "migrations", func(ctx context.Context, m store.Migration) (bool, error) {
		applied := false
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var n int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n)
			if err != nil || n > 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				m.Version, timeText(s.now()))
			applied = err == nil
			return err
		})
		return applied, err
	})
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

// inTx runs fn in a write transaction (BEGIN IMMEDIATE) and commits it when
// fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// timeFormat has a fixed width, so that comparing the text of two
// timestamps orders them in time.
const timeFormat = "2006-01-02T15:04:05.000000Z"

// timeText returns t as stored.
func timeText(t time.Time) string { return store.Time(t).Format(timeFormat) }

// nullTimeText returns t as stored, NULL for nil.
func nullTimeText(t *time.Time) any {
	if t == nil {
		return nil
	}
	return timeText(*t)
}

// nullText stores "" as NULL.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// timeCol scans a timestamp column into T.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("timestamp column holds %T", v)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*c.t = t.UTC()
	return nil
}

// nullTimeCol scans a nullable timestamp column into *T.
type nullTimeCol struct{ t **time.Time }

func (c nullTimeCol) Scan(v any) error {
	if v == nil {
		*c.t = nil
		return nil
	}
	var t time.Time
	if err := (timeCol{&t}).Scan(v); err != nil {
		return err
	}
	*c.t = &t
	return nil
}

// nullTextCol scans a nullable text column into a string, "" for NULL.
type nullTextCol struct{ s *string }

func (c nullTextCol) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*c.s = ""
	case string:
		*c.s = v
	case []byte:
		*c.s = string(v)
	default:
		return fmt.Errorf("text column holds %T", v)
	}
	return nil
}

var (
	_ sql.Scanner = timeCol{}
	_ sql.Scanner = nullTimeCol{}
	_ sql.Scanner = nullTextCol{}
)

// constraint returns the extended result code of a constraint violation
// (sqlite3.SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY, _FOREIGNKEY…), 0 for any
// other error.
func constraint(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT {
		return e.Code()
	}
	return 0
}

// uniqueConflict maps a unique violation to EConflict, with the message pk
// for a duplicate primary key and other for any other unique column, and
// returns nil for any other error. The SQL error is dropped: its text names
// the schema.
func uniqueConflict(err error, pk, other string) error {
	switch constraint(err) {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return novacron.Errorf(novacron.EConflict, "%s", pk)
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return novacron.Errorf(novacron.EConflict, "%s", other)
	}
	return nil
}

func isForeignKey(err error) bool {
	return constraint(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// rowsAffected returns how many rows res touched.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// wrap returns nil and coded (domain) errors as they are and wraps any
// other error with the operation that failed: it becomes an internal error
// upstream, its text for the log only.
func wrap(op string, err error) error {
	var e *novacron.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}
