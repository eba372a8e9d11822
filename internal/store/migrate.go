package store

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one versioned schema change: the file
// migrations/NNNN_name.sql of a dialect's embedded file system.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations reads the *.sql files of dir in fsys, named NNNN_name.sql,
// and returns them in version order. Versions must be unique and positive.
func Migrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %s: name is not NNNN_name.sql", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("store: migrations %s and %s share version %d", prev, name, v)
		}
		seen[v] = name
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("store: read migration %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Migrate applies the migrations of dir in fsys in version order. apply
// runs one migration and records it in schema_migrations, in one
// transaction, and does nothing when the database already records that
// version; it returns whether it applied the migration. The dialect
// creates schema_migrations and serializes concurrent Migrate calls (a
// write lock on SQLite, an advisory lock on PostgreSQL).
func Migrate(ctx context.Context, fsys fs.FS, dir string, apply func(context.Context, Migration) (bool, error)) (applied int, err error) {
	ms, err := Migrations(fsys, dir)
	if err != nil {
		return 0, err
	}
	for _, m := range ms {
		ok, err := apply(ctx, m)
		if err != nil {
			return applied, fmt.Errorf("store: migration %s: %w", m.Name, err)
		}
		if ok {
			applied++
		}
	}
	return applied, nil
}
