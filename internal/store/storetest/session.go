package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func testSessionCreateGet(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	expires := time.Date(2100, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	before := time.Now()
	login := &novacron.Session{UserID: u.ID, Kind: novacron.SessionLogin, IP: "192.0.2.7", UserAgent: "curl/8", ExpiresAt: expires}
	noErr(t, s.CreateSession(c, login), "CreateSession login")
	wantID(t, login.ID)
	wantStoreTime(t, "CreatedAt", login.CreatedAt, before, time.Now())
	wantExpires := time.Date(2100, 1, 2, 2, 4, 5, 123456000, time.UTC)
	if login.ExpiresAt != wantExpires {
		t.Errorf("ExpiresAt = %v, want %v (UTC, microseconds)", login.ExpiresAt, wantExpires)
	}
	got, err := s.GetSession(c, login.ID)
	noErr(t, err, "GetSession")
	wantEqual(t, "GetSession login", got, login)
	if !got.Active(time.Now()) {
		t.Error("new session is not active")
	}

	// Any number of login sessions have no token hash.
	login2 := mustSession(t, s, u.ID, novacron.SessionLogin, "", expires)
	token := &novacron.Session{UserID: u.ID, Kind: novacron.SessionToken, Name: "ci", TokenHash: "abc123", ExpiresAt: expires}
	noErr(t, s.CreateSession(c, token), "CreateSession token")
	got, err = s.GetSessionByTokenHash(c, "abc123")
	noErr(t, err, "GetSessionByTokenHash")
	wantEqual(t, "GetSessionByTokenHash", got, token)
	got, err = s.GetSession(c, login2.ID)
	noErr(t, err, "GetSession login2")
	wantEqual(t, "GetSession login2", got, login2)

	_, err = s.GetSessionByTokenHash(c, "abc124")
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetSessionByTokenHash(c, "")
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetSession(c, missingID)
	wantCode(t, err, novacron.ENotFound)

	dup := &novacron.Session{UserID: u.ID, Kind: novacron.SessionToken, TokenHash: "abc123", ExpiresAt: expires}
	wantMessage(t, s.CreateSession(c, dup), novacron.EConflict, "token already exists")
	err = s.CreateSession(c, &novacron.Session{ID: login.ID, UserID: u.ID, Kind: novacron.SessionLogin, ExpiresAt: expires})
	wantMessage(t, err, novacron.EConflict, "session id already exists")

	// Revoked and expired sessions are still returned: callers check Active.
	noErr(t, s.RevokeSession(c, u.ID, token.ID), "RevokeSession")
	got, err = s.GetSessionByTokenHash(c, "abc123")
	noErr(t, err, "GetSessionByTokenHash revoked")
	if got.RevokedAt == nil || got.Active(time.Now()) {
		t.Errorf("revoked session: RevokedAt %v, active %v", got.RevokedAt, got.Active(time.Now()))
	}
	old := mustSession(t, s, u.ID, novacron.SessionToken, "old", time.Now().Add(-time.Hour))
	got, err = s.GetSession(c, old.ID)
	noErr(t, err, "GetSession expired")
	wantEqual(t, "expired session", got, old)
	if got.Active(time.Now()) {
		t.Error("expired session is active")
	}
}

func testSessionCreateInvalid(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	exp := time.Now().Add(time.Hour)
	wantCode(t, s.CreateSession(c, &novacron.Session{UserID: u.ID, Kind: "cookie", ExpiresAt: exp}), novacron.EInvalid)
	wantCode(t, s.CreateSession(c, &novacron.Session{UserID: u.ID, Kind: novacron.SessionLogin}), novacron.EInvalid)
	wantCode(t, s.CreateSession(c, &novacron.Session{ID: "x", UserID: u.ID, Kind: novacron.SessionLogin, ExpiresAt: exp}), novacron.EInvalid)
	wantCode(t, s.CreateSession(c, &novacron.Session{UserID: missingID, Kind: novacron.SessionLogin, ExpiresAt: exp}), novacron.ENotFound)
	wantCode(t, s.CreateSession(c, &novacron.Session{UserID: "alice", Kind: novacron.SessionLogin, ExpiresAt: exp}), novacron.ENotFound)
	list, _, err := s.ListSessions(c, u.ID, "", novacron.Page{})
	noErr(t, err, "ListSessions")
	if len(list) != 0 {
		t.Errorf("invalid creates left %d sessions", len(list))
	}
}

func testSessionList(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	other := mustUser(t, s, tn.ID, "bob", novacron.RoleUser)
	exp := time.Now().Add(time.Hour)
	var logins, tokens, every []string
	for i := range 5 {
		l := mustSession(t, s, u.ID, novacron.SessionLogin, "", exp)
		k := mustSession(t, s, u.ID, novacron.SessionToken, fmt.Sprintf("hash-%d", i), exp)
		logins = append(logins, l.ID)
		tokens = append(tokens, k.ID)
		every = append(every, l.ID, k.ID)
	}
	mustSession(t, s, other.ID, novacron.SessionToken, "bob-hash", exp)
	revoked := mustSession(t, s, u.ID, novacron.SessionToken, "revoked", exp)
	noErr(t, s.RevokeSession(c, u.ID, revoked.ID), "RevokeSession")
	mustSession(t, s, u.ID, novacron.SessionToken, "expired", time.Now().Add(-time.Second))

	list := func(kind novacron.SessionKind, limit int) func(string) ([]*novacron.Session, string, error) {
		return func(cursor string) ([]*novacron.Session, string, error) {
			return s.ListSessions(c, u.ID, kind, novacron.Page{Limit: limit, Cursor: cursor})
		}
	}
	// Newest first, without the revoked and the expired ones.
	wantEqual(t, "tokens, limit 2", collect(t, 2, 3, list(novacron.SessionToken, 2), sessionID), reversed(tokens))
	wantEqual(t, "logins, limit 5", collect(t, 5, 1, list(novacron.SessionLogin, 5), sessionID), reversed(logins))
	wantEqual(t, "every kind, limit 3", collect(t, 3, 4, list("", 3), sessionID), reversed(every))

	first, _, err := s.ListSessions(c, u.ID, novacron.SessionToken, novacron.Page{Limit: 1})
	noErr(t, err, "ListSessions")
	want, err := s.GetSession(c, tokens[4])
	noErr(t, err, "GetSession")
	wantEqual(t, "listed session", first, []*novacron.Session{want})

	for _, id := range []string{missingID, "bogus", ""} {
		got, next, err := s.ListSessions(c, id, novacron.SessionToken, novacron.Page{})
		noErr(t, err, "ListSessions of "+id)
		if len(got) != 0 || next != "" {
			t.Errorf("ListSessions(%q) = %d sessions, next %q", id, len(got), next)
		}
	}
	_, _, err = s.ListSessions(c, u.ID, novacron.SessionToken, novacron.Page{Cursor: "zzz"})
	wantCode(t, err, novacron.EInvalid)
}

func testSessionRevoke(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	other := mustUser(t, s, tn.ID, "bob", novacron.RoleUser)
	sess := mustSession(t, s, u.ID, novacron.SessionToken, "h", time.Now().Add(time.Hour))

	wantCode(t, s.RevokeSession(c, other.ID, sess.ID), novacron.ENotFound)
	wantCode(t, s.RevokeSession(c, u.ID, missingID), novacron.ENotFound)
	got, err := s.GetSession(c, sess.ID)
	noErr(t, err, "GetSession")
	if got.RevokedAt != nil {
		t.Fatalf("another user revoked the session at %v", got.RevokedAt)
	}

	before := time.Now()
	noErr(t, s.RevokeSession(c, u.ID, sess.ID), "RevokeSession")
	got, err = s.GetSession(c, sess.ID)
	noErr(t, err, "GetSession")
	if got.RevokedAt == nil {
		t.Fatal("RevokedAt not set")
	}
	wantStoreTime(t, "RevokedAt", *got.RevokedAt, before, time.Now())
	if got.Active(time.Now()) {
		t.Error("revoked session is active")
	}
	first := *got.RevokedAt

	time.Sleep(2 * time.Millisecond)
	noErr(t, s.RevokeSession(c, u.ID, sess.ID), "RevokeSession again")
	got, err = s.GetSession(c, sess.ID)
	noErr(t, err, "GetSession")
	if got.RevokedAt == nil || !got.RevokedAt.Equal(first) {
		t.Errorf("second revocation moved RevokedAt from %v to %v", first, got.RevokedAt)
	}
}

func testSessionRevokeUser(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	other := mustUser(t, s, tn.ID, "bob", novacron.RoleUser)
	exp := time.Now().Add(time.Hour)
	var mine []*novacron.Session
	for i := range 3 {
		mine = append(mine, mustSession(t, s, u.ID, novacron.SessionToken, fmt.Sprintf("a%d", i), exp))
	}
	mine = append(mine, mustSession(t, s, u.ID, novacron.SessionLogin, "", exp))
	noErr(t, s.RevokeSession(c, u.ID, mine[0].ID), "RevokeSession")
	theirs := mustSession(t, s, other.ID, novacron.SessionLogin, "", exp)

	n, err := s.RevokeUserSessions(c, u.ID)
	noErr(t, err, "RevokeUserSessions")
	if n != 3 {
		t.Errorf("RevokeUserSessions = %d, want 3 (one was revoked already)", n)
	}
	for _, sess := range mine {
		got, err := s.GetSession(c, sess.ID)
		noErr(t, err, "GetSession")
		if got.RevokedAt == nil {
			t.Errorf("session %s not revoked", sess.ID)
		}
	}
	got, err := s.GetSession(c, theirs.ID)
	noErr(t, err, "GetSession")
	wantEqual(t, "other user's session", got, theirs)
	list, _, err := s.ListSessions(c, u.ID, "", novacron.Page{})
	noErr(t, err, "ListSessions")
	if len(list) != 0 {
		t.Errorf("ListSessions lists %d sessions after RevokeUserSessions", len(list))
	}

	n, err = s.RevokeUserSessions(c, u.ID)
	noErr(t, err, "RevokeUserSessions again")
	if n != 0 {
		t.Errorf("RevokeUserSessions again = %d, want 0", n)
	}
	for _, id := range []string{missingID, "bogus"} {
		n, err = s.RevokeUserSessions(c, id)
		noErr(t, err, "RevokeUserSessions of "+id)
		if n != 0 {
			t.Errorf("RevokeUserSessions(%q) = %d", id, n)
		}
	}
}

func testSessionPrune(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	now := time.Now()
	expiredLong := mustSession(t, s, u.ID, novacron.SessionToken, "expired-long", now.Add(-48*time.Hour))
	expiredRecent := mustSession(t, s, u.ID, novacron.SessionToken, "expired-recent", now.Add(-time.Minute))
	active := mustSession(t, s, u.ID, novacron.SessionToken, "active", now.Add(time.Hour))
	revokedOld := &novacron.Session{UserID: u.ID, Kind: novacron.SessionLogin, ExpiresAt: now.Add(time.Hour),
		RevokedAt: ptr(now.Add(-48 * time.Hour))}
	noErr(t, s.CreateSession(c, revokedOld), "CreateSession revoked")
	revokedNow := mustSession(t, s, u.ID, novacron.SessionLogin, "", now.Add(time.Hour))
	noErr(t, s.RevokeSession(c, u.ID, revokedNow.ID), "RevokeSession")

	n, err := s.PruneSessions(c, now.Add(-24*time.Hour))
	noErr(t, err, "PruneSessions")
	if n != 2 {
		t.Errorf("PruneSessions(-24h) = %d, want 2", n)
	}
	for _, gone := range []*novacron.Session{expiredLong, revokedOld} {
		_, err := s.GetSession(c, gone.ID)
		wantCode(t, err, novacron.ENotFound)
	}
	for _, kept := range []*novacron.Session{expiredRecent, active, revokedNow} {
		if _, err := s.GetSession(c, kept.ID); err != nil {
			t.Errorf("session %s pruned too early: %v", kept.TokenHash, err)
		}
	}

	n, err = s.PruneSessions(c, time.Now().Add(time.Second))
	noErr(t, err, "PruneSessions now")
	if n != 2 {
		t.Errorf("PruneSessions(now) = %d, want 2", n)
	}
	got, err := s.GetSession(c, active.ID)
	noErr(t, err, "GetSession active")
	wantEqual(t, "active session", got, active)
	for _, gone := range []*novacron.Session{expiredRecent, revokedNow} {
		_, err := s.GetSession(c, gone.ID)
		wantCode(t, err, novacron.ENotFound)
	}
}
