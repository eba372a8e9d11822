package postgres_test

import (
	"context"
	"testing"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store/postgres"
	"github.com/novacron/novacron/internal/store/storetest"
	"github.com/novacron/novacron/internal/testenv"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) novacron.Store {
		s, err := postgres.Open(context.Background(), testenv.PostgresURL(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
