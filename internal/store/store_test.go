package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/novacron/novacron"
)

func TestLimit(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{-1, DefaultLimit}, {0, DefaultLimit}, {1, 1}, {50, 50}, {500, 500}, {501, MaxLimit}, {1 << 30, MaxLimit},
	} {
		if got := Limit(novacron.Page{Limit: tc.in}); got != tc.want {
			t.Errorf("Limit(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestCursor(t *testing.T) {
	id, err := NewID()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCursor(EncodeCursor(id), MinID)
	if err != nil || got != id {
		t.Fatalf("DecodeCursor(EncodeCursor(%s)) = %q, %v", id, got, err)
	}
	if got, err := DecodeCursor("", MaxID); err != nil || got != MaxID {
		t.Errorf("DecodeCursor(\"\") = %q, %v; want the first-page bound", got, err)
	}
	for _, bad := range []string{"!", "====", EncodeCursor("not-an-id"), id, EncodeCursor(id) + "="} {
		if _, err := DecodeCursor(bad, MinID); !novacron.IsCode(err, novacron.EInvalid) {
			t.Errorf("DecodeCursor(%q) = %v, want %s", bad, err, novacron.EInvalid)
		}
	}
}

func TestAssignID(t *testing.T) {
	var id string
	if err := AssignID(&id); err != nil {
		t.Fatal(err)
	}
	if v, ok := ParseID(id); !ok || v != id {
		t.Errorf("AssignID gave %q", id)
	}
	id = "0189ABCD-0000-7000-8000-000000000001"
	if err := AssignID(&id); err != nil || id != "0189abcd-0000-7000-8000-000000000001" {
		t.Errorf("AssignID kept %q, %v; want the canonical form", id, err)
	}
	for _, bad := range []string{"x", MinID, MaxID} {
		id := bad
		if err := AssignID(&id); !novacron.IsCode(err, novacron.EInvalid) {
			t.Errorf("AssignID(%q) = %v, want %s", bad, err, novacron.EInvalid)
		}
	}
}

func TestNextCursor(t *testing.T) {
	id := func(s string) string { return s }
	items, next := NextCursor([]string{MinID, MaxID}, 2, id)
	if len(items) != 2 || next != "" {
		t.Errorf("full last page: %v, %q", items, next)
	}
	items, next = NextCursor([]string{"a", MinID, "c"}, 2, id)
	if !reflect.DeepEqual(items, []string{"a", MinID}) || next != EncodeCursor(MinID) {
		t.Errorf("page with more: %v, %q", items, next)
	}
}

func TestMigrations(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_users.sql": {Data: []byte("two")},
		"m/0001_init.sql":  {Data: []byte("one")},
		"m/0010_late.sql":  {Data: []byte("ten")},
		"m/README":         {Data: []byte("not a migration")},
	}
	var seen []int
	n, err := Migrate(context.Background(), fsys, "m", func(_ context.Context, m Migration) (bool, error) {
		seen = append(seen, m.Version)
		return m.Version != 2, nil // 2 is already applied
	})
	if err != nil || n != 2 || !reflect.DeepEqual(seen, []int{1, 2, 10}) {
		t.Fatalf("Migrate = %d, %v; applied in order %v", n, err, seen)
	}

	boom := errors.New("boom")
	seen = nil
	_, err = Migrate(context.Background(), fsys, "m", func(_ context.Context, m Migration) (bool, error) {
		seen = append(seen, m.Version)
		if m.Version == 2 {
			return false, boom
		}
		return true, nil
	})
	if !errors.Is(err, boom) || !reflect.DeepEqual(seen, []int{1, 2}) {
		t.Errorf("Migrate after a failure = %v, went on to %v", err, seen)
	}

	for name, bad := range map[string]fstest.MapFS{
		"duplicate": {"m/0001_a.sql": {}, "m/1_b.sql": {}},
		"no number": {"m/init.sql": {}},
		"zero":      {"m/0000_init.sql": {}},
		"no dir":    {},
	} {
		if _, err := Migrations(bad, "m"); err == nil {
			t.Errorf("%s: Migrations accepted it", name)
		}
	}
}
