package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store/sqlite"
	"github.com/novacron/novacron/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) novacron.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "novacron.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestStoreMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) novacron.Store {
		s, err := sqlite.Open(context.Background(), ":memory:")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
