package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store/sqlite"
	"github.com/novacron/novacron/internal/store/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return open(t, filepath.Join(t.TempDir(), "novacron.db"))
	})
}

func TestStoreMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t, ":memory:") })
}

// rawDB opens the database file beside the store, as a store connection
// would (foreign keys on).
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(ON)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func names(db *sql.DB, kind string) func() ([]string, error) {
	return func() ([]string, error) {
		rows, err := db.Query(`SELECT name FROM sqlite_schema WHERE type = ?`, kind)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return nil, err
			}
			out = append(out, n)
		}
		return out, rows.Err()
	}
}

func TestSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "novacron.db")
	s := open(t, path)
	defer s.Close()
	db := rawDB(t, path)
	storetest.RunSchema(t, storetest.DB{
		Exec: func(q string) error { _, err := db.Exec(q); return err },
		Count: func(q string) (n int, err error) {
			err = db.QueryRow(q).Scan(&n)
			return n, err
		},
		Tables:  names(db, "table"),
		Indexes: names(db, "index"),
		Blob:    `X'00'`,
	})
}

func TestPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "novacron.db")
	s := open(t, path)
	defer s.Close()
	var mode string
	if err := rawDB(t, path).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

// TestReopen opens the same file again: the migrations are not applied
// twice and the data is kept.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "novacron.db")
	s := open(t, path)
	tn := &novacron.Tenant{Name: "acme"}
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if _, err := s.GetTenant(ctx, novacron.AllTenants, tn.ID); err != nil {
		t.Fatalf("tenant lost on reopen: %v", err)
	}
	var n, v int
	if err := rawDB(t, path).QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != 1 || v != 1 {
		t.Errorf("schema_migrations has %d rows up to version %d, want 1 and 1", n, v)
	}
}

// TestConcurrentOpen opens one new file from several goroutines at once,
// as several processes could.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "novacron.db")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sqlite.Open(context.Background(), path)
			if err == nil {
				err = s.Ping(context.Background())
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var n int
	if err := rawDB(t, path).QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("schema_migrations has %d rows, want 1", n)
	}
}

func TestOpenInvalidPath(t *testing.T) {
	for _, p := range []string{"", "a.db?_pragma=x", filepath.Join(t.TempDir(), "missing", "dir", "x.db")} {
		if s, err := sqlite.Open(context.Background(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}
