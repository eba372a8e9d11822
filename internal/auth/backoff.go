package auth

import (
	"sync"
	"time"
)

// Backoff slows down repeated login failures per key (a username, an IP).
// The first Free failures within Window cost nothing; each one after that
// doubles the wait before the next attempt, from Base up to Max. A success
// clears the key.
type Backoff struct {
	Free   int
	Base   time.Duration
	Max    time.Duration
	Window time.Duration
	// MaxKeys bounds memory under a storm of distinct keys.
	MaxKeys int
	Now     func() time.Time

	mu      sync.Mutex
	entries map[string]*backoffEntry
}

type backoffEntry struct {
	failures int
	last     time.Time
	until    time.Time
}

// NewBackoff returns a back-off with the defaults: 5 free failures in 15
// minutes, then 1s doubling up to 5 minutes.
func NewBackoff() *Backoff {
	return &Backoff{Free: 5, Base: time.Second, Max: 5 * time.Minute, Window: 15 * time.Minute,
		MaxKeys: 100000, Now: time.Now}
}

// Wait returns how long key must wait before its next attempt (0: go ahead).
func (b *Backoff) Wait(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	if e == nil {
		return 0
	}
	now := b.Now()
	if now.Sub(e.last) > b.Window {
		delete(b.entries, key)
		return 0
	}
	if d := e.until.Sub(now); d > 0 {
		return d
	}
	return 0
}

// Fail records a failed attempt of key.
func (b *Backoff) Fail(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.Now()
	if b.entries == nil {
		b.entries = make(map[string]*backoffEntry)
	}
	e := b.entries[key]
	if e == nil || now.Sub(e.last) > b.Window {
		if len(b.entries) >= b.MaxKeys {
			b.sweep(now)
		}
		e = &backoffEntry{}
		b.entries[key] = e
	}
	e.failures++
	e.last = now
	if over := e.failures - b.Free; over > 0 {
		d := b.Base
		for i := 1; i < over && d < b.Max; i++ {
			d *= 2
		}
		e.until = now.Add(min(d, b.Max))
	}
}

// Succeed clears key's failures.
func (b *Backoff) Succeed(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, key)
}

// sweep drops stale entries and, if still full, the oldest half. The caller
// holds b.mu.
func (b *Backoff) sweep(now time.Time) {
	for k, e := range b.entries {
		if now.Sub(e.last) > b.Window {
			delete(b.entries, k)
		}
	}
	if len(b.entries) < b.MaxKeys {
		return
	}
	cut := now.Add(-b.Window / 2)
	for k, e := range b.entries {
		if e.last.Before(cut) || len(b.entries) >= b.MaxKeys {
			delete(b.entries, k)
		}
	}
}
