package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
	"github.com/novacron/novacron/internal/store/postgres"
	"github.com/novacron/novacron/internal/store/storetest"
	"github.com/novacron/novacron/internal/testenv"
)

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStore runs the conformance suite. Each subtest gets a schema of its
// own in one database, which is three times faster than a database of its
// own; TestSchema, TestReopen and TestConcurrentOpen use whole databases.
func TestStore(t *testing.T) {
	base := testenv.PostgresURL(t)
	admin := rawConn(t, base)
	n := 0
	storetest.Run(t, func(t *testing.T) storetest.Store {
		n++
		schema := fmt.Sprintf("suite%03d", n)
		if _, err := admin.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return open(t, u.String())
	})
}

// rawConn connects to the database beside the store.
func rawConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func names(c *pgx.Conn, q string) func() ([]string, error) {
	return func() ([]string, error) {
		rows, err := c.Query(context.Background(), q)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}
}

func TestSchema(t *testing.T) {
	url := testenv.PostgresURL(t)
	s := open(t, url)
	defer s.Close()
	c := rawConn(t, url)
	ctx := context.Background()
	storetest.RunSchema(t, storetest.DB{
		Exec: func(q string) error { _, err := c.Exec(ctx, q); return err },
		Count: func(q string) (n int, err error) {
			err = c.QueryRow(ctx, q).Scan(&n)
			return n, err
		},
		Tables:  names(c, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`),
		Indexes: names(c, `SELECT indexname FROM pg_indexes WHERE schemaname = 'public'`),
		Blob:    `'\x00'::bytea`,
	})
	// The native types of the design.
	for _, col := range []struct{ table, column, typ string }{
		{"tenants", "id", "uuid"}, {"tenants", "quotas", "jsonb"}, {"tenants", "created_at", "timestamp with time zone"},
		{"users", "tenant_id", "uuid"}, {"sessions", "revoked_at", "timestamp with time zone"},
		{"audit_logs", "user_id", "uuid"}, {"vms", "config", "jsonb"}, {"vm_metrics", "data", "bytea"},
	} {
		var typ string
		err := c.QueryRow(ctx, `SELECT data_type FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2`, col.table, col.column).Scan(&typ)
		if err != nil || typ != col.typ {
			t.Errorf("%s.%s has type %q (%v), want %q", col.table, col.column, typ, err, col.typ)
		}
	}
}

// TestReopen opens the same database again: the migrations are not
// applied twice and the data is kept.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	s := open(t, url)
	tn := &novacron.Tenant{Name: "acme"}
	if err := s.CreateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, url)
	defer s.Close()
	if _, err := s.GetTenant(ctx, novacron.AllTenants, tn.ID); err != nil {
		t.Fatalf("tenant lost on reopen: %v", err)
	}
	var n, v int
	if err := rawConn(t, url).QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
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
	url := testenv.PostgresURL(t)
	first, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	db := rawConn(t, url)
	const (
		tenant = "01900000-0000-7000-8000-00000000000a"
		image  = "01900000-0000-7000-8000-0000000000b1"
		ts     = "2025-01-01T00:00:00Z"
	)
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)`,
		string(first),
		`INSERT INTO schema_migrations (version, applied_at) VALUES (1, '` + ts + `')`,
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('` + tenant + `', 'acme', '` + ts + `', '` + ts + `')`,
		`INSERT INTO images (id, tenant_id, name, format, size, sha256, created_at)
			VALUES ('` + image + `', '` + tenant + `', 'rootfs', 'rootfs', 10, '` + strings.Repeat("a", 64) + `', '` + ts + `')`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%.200s", err, q)
		}
	}
	s := open(t, url)
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

// TestConcurrentOpen starts several replicas on one new database at once:
// the advisory lock makes them take turns at the migrations.
func TestConcurrentOpen(t *testing.T) {
	url := testenv.PostgresURL(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), url, 2)
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
	if err := rawConn(t, url).QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want, _ := latestMigration(t); n != want {
		t.Errorf("schema_migrations has %d rows, want %d", n, want)
	}
}

func TestOpenBadURL(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://user:secret@[::1", 0)
	if err == nil {
		t.Fatal("Open of a malformed url succeeded")
	}
	if got := err.Error(); strings.Contains(got, "secret") {
		t.Errorf("error %q leaks the password", got)
	}
}
