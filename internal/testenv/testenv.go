// Package testenv gives tests the real prerequisites they need (PostgreSQL,
// QEMU, root) and decides what happens when one is
// missing: a skip on a bare laptop, a failure when NOVACRON_TEST_REQUIRE asks
// for it, as .ci/run does with NOVACRON_TEST_REQUIRE=all.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Required reports whether prerequisite what must be present: when
// NOVACRON_TEST_REQUIRE lists it or says "all".
func Required(what string) bool {
	for _, w := range strings.Split(os.Getenv("NOVACRON_TEST_REQUIRE"), ",") {
		w = strings.TrimSpace(w)
		if w == "all" || w == what {
			return true
		}
	}
	return false
}

// Missing skips the test, or fails it when the prerequisite is required.
func Missing(t testing.TB, what, why string) {
	t.Helper()
	if Required(what) {
		t.Fatalf("%s is required (NOVACRON_TEST_REQUIRE=%s) but missing: %s", what, os.Getenv("NOVACRON_TEST_REQUIRE"), why)
	}
	t.Skipf("%s missing: %s (`make test` sets up every prerequisite)", what, why)
}

// PostgresURL returns the URL of a new, empty database on the PostgreSQL
// server named by NOVACRON_TEST_PG_URL, dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("NOVACRON_TEST_PG_URL")
	if base == "" {
		Missing(t, "postgres", "NOVACRON_TEST_PG_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		Missing(t, "postgres", "cannot connect: "+err.Error())
	}
	defer admin.Close(context.Background())

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "nctest_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("NOVACRON_TEST_PG_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
