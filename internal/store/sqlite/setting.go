package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

// GetSetting returns the value of a server-wide setting.
func (s *Store) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.read.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value, created_at) VALUES (?, ?, ?)
			ON CONFLICT (key) DO NOTHING`, key, value, timeText(s.now()))
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	})
	return v, wrap("set setting", err)
}
