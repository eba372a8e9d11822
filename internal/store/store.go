// Package store holds what the implementations of novacron.Store share so
// that they behave alike: identifiers, clock, page limits, cursors and the
// schema migration runner. The implementations live in the sqlite and
// postgres subpackages; storetest is the conformance suite both pass.
package store

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/novacron/novacron"
)

// Page size bounds: a Page.Limit of zero or less asks for DefaultLimit, one
// above MaxLimit gets MaxLimit.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// NewID returns a new time-ordered identifier (a UUIDv7 string). Keyset
// pagination on ids relies on that order.
func NewID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("store: new id: %w", err)
	}
	return id.String(), nil
}

// ParseID returns the canonical (lower-case, hyphenated) form of id and
// whether id is a UUID at all. Stores look up only canonical ids, so that a
// malformed id never reaches the database.
func ParseID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// AssignID gives *id a new identifier when it is empty and canonicalizes it
// otherwise. A caller-chosen id that is not a UUID is EInvalid.
func AssignID(id *string) error {
	if *id == "" {
		v, err := NewID()
		if err != nil {
			return err
		}
		*id = v
		return nil
	}
	v, ok := ParseID(*id)
	if !ok || v == MinID || v == MaxID {
		return novacron.FieldError("id", "not a valid id")
	}
	*id = v
	return nil
}

// Time returns t as the stores keep it: in UTC, truncated to microseconds
// (PostgreSQL's precision), so that every implementation round-trips the
// same value.
func Time(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// Limit returns the number of items a page may hold.
func Limit(p novacron.Page) int {
	switch {
	case p.Limit <= 0:
		return DefaultLimit
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

// EncodeCursor returns the opaque cursor of the page that follows the item
// with the given id.
func EncodeCursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// MinID and MaxID bound every id: a list in ascending order starts after
// MinID, one in descending order before MaxID. No row may have either.
const (
	MinID = "00000000-0000-0000-0000-000000000000"
	MaxID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
)

// DecodeCursor returns the id a cursor was made from, first for the empty
// cursor (the first page: MinID or MaxID, after the order of the list), and
// EInvalid for anything that EncodeCursor did not make.
func DecodeCursor(cursor, first string) (string, error) {
	if cursor == "" {
		return first, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return "", novacron.FieldError("cursor", "malformed cursor")
	}
	id, ok := ParseID(string(b))
	if !ok {
		return "", novacron.FieldError("cursor", "malformed cursor")
	}
	return id, nil
}

// NextCursor trims a list fetched with limit+1 rows to limit and returns the
// cursor of the next page, "" when there is none. id returns an item's id.
func NextCursor[T any](items []T, limit int, id func(T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, EncodeCursor(id(items[limit-1]))
}

// ScopeTenant returns the canonical tenant id a scope restricts to ("" for
// all tenants) and false when the scope names a malformed tenant id, which
// can see nothing.
func ScopeTenant(s novacron.Scope) (string, bool) {
	if s.TenantID == "" {
		return "", true
	}
	return ParseID(s.TenantID)
}

// NotFound returns the ENotFound error of a missing, hidden or malformed
// row: the three look the same to the caller.
func NotFound(what string) error {
	return novacron.Errorf(novacron.ENotFound, "%s not found", what)
}
