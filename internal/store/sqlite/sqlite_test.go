package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
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
	if wn, wv := latestMigration(t); n != wn || v != wv {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d and %d", n, v, wn, wv)
	}
}

// latestMigration returns how many migrations there are and the highest
// version: what a store records once it is migrated.
func latestMigration(t *testing.T) (n, version int) {
	t.Helper()
	ms, err := store.Migrations(os.DirFS("."), "migrations")
	if err != nil || len(ms) == 0 {
		t.Fatalf("migrations: %d, %v", len(ms), err)
	}
	return len(ms), ms[len(ms)-1].Version
}

// TestUpgradeImageCommand opens a database of the first schema, with an
// image in it: the images gain their command column, NULL for the images
// there were.
func TestUpgradeImageCommand(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "novacron.db")
	first, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	const (
		tenant = "01900000-0000-7000-8000-00000000000a"
		image  = "01900000-0000-7000-8000-0000000000b1"
		ts     = "2025-01-01T00:00:00.000000Z"
	)
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL) STRICT`,
		string(first),
		`INSERT INTO schema_migrations (version, applied_at) VALUES (1, '` + ts + `')`,
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('` + tenant + `', 'acme', '` + ts + `', '` + ts + `')`,
		`INSERT INTO images (id, tenant_id, name, format, size, sha256, created_at)
			VALUES ('` + image + `', '` + tenant + `', 'rootfs', 'rootfs', 10, '` + strings.Repeat("a", 64) + `', '` + ts + `')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%v\n%.200s", err, q)
		}
	}
	s := open(t, path)
	defer s.Close()
	img, err := s.GetImage(ctx, novacron.AllTenants, image)
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "rootfs" || img.Command != nil {
		t.Errorf("the old image reads %+v", img)
	}
	withCmd := &novacron.Image{Name: "busybox", Format: novacron.ImageRootfs, SHA256: strings.Repeat("b", 64), TenantID: tenant,
		Command: []string{"/bin/sh"}}
	if err := s.CreateImage(ctx, withCmd); err != nil {
		t.Fatal(err)
	}
	if len(withCmd.Command) != 1 || withCmd.Command[0] != "/bin/sh" {
		t.Errorf("command after the upgrade: %q", withCmd.Command)
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
	if want, _ := latestMigration(t); n != want {
		t.Errorf("schema_migrations has %d rows, want %d", n, want)
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

// TestUpgradeAlerts applies the alert tables' rebuild to a database that
// already holds a rule and its alerts: the rows stay, with their rule.
func TestUpgradeAlerts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "novacron.db")
	first, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	const (
		tenant = "01900000-0000-7000-8000-00000000000a"
		rule   = "01900000-0000-7000-8000-0000000000d1"
		alert  = "01900000-0000-7000-8000-0000000000d2"
		ts     = "2025-01-01T00:00:00.000000Z"
	)
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL) STRICT`,
		string(first),
		`INSERT INTO schema_migrations (version, applied_at) VALUES (1, '` + ts + `')`,
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('` + tenant + `', 'acme', '` + ts + `', '` + ts + `')`,
		`INSERT INTO alert_rules (id, tenant_id, name, metric, comparator, threshold, for_seconds, severity, scope, created_at, updated_at)
			VALUES ('` + rule + `', '` + tenant + `', 'cpu', 'cpu_usage', '>', 90, 60, 'warning', '{"node_id": "` + tenant + `"}', '` + ts + `', '` + ts + `')`,
		`INSERT INTO alerts (id, rule_id, name, severity, status, resource, resource_id, tenant_id, current_value, labels, start_time)
			VALUES ('` + alert + `', '` + rule + `', 'cpu', 'warning', 'firing', 'vm', 'x', '` + tenant + `', 93, '{}', '` + ts + `')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%v\n%.200s", err, q)
		}
	}
	s := open(t, path)
	defer s.Close()
	r, err := s.GetAlertRule(ctx, novacron.AllTenants, rule)
	if err != nil {
		t.Fatal(err)
	}
	if r.Resource != novacron.ResourceVM || r.For != time.Minute || r.Scope.NodeID != tenant || r.Scope.TenantID != tenant {
		t.Errorf("the old rule reads %+v", r)
	}
	a, err := s.GetAlert(ctx, novacron.AllTenants, alert)
	if err != nil {
		t.Fatal(err)
	}
	if a.RuleID != rule || a.CurrentValue == nil || *a.CurrentValue != 93 || a.Status != novacron.AlertFiring {
		t.Errorf("the old alert reads %+v", a)
	}
	var fk int
	if err := db.QueryRow(`SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil || fk != 0 {
		t.Errorf("foreign key check: %d, %v", fk, err)
	}
}
