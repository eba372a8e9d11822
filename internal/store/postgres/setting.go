package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

// GetSetting returns the value of a server-wide setting.
func (s *Store) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", store.NotFound("setting")
	}
	return v, wrap("get setting", err)
}

// SetSettingIfAbsent stores value under key unless key is set, and returns
// the value stored: the first writer wins.
func (s *Store) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	if key == "" {
		return "", novacron.FieldError("key", "is required")
	}
	var v string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// A concurrent insert of the same key makes this one wait for
		// it to commit and then do nothing; the SELECT, a statement of
		// its own under READ COMMITTED, then sees the winner's row.
		_, err := tx.Exec(ctx, `INSERT INTO settings (key, value, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO NOTHING`, key, value, store.Time(s.now()))
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	})
	return v, wrap("set setting", err)
}
