package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

// testConcurrentWriters writes from many goroutines at once, as the HTTP
// server under load does: no write may fail (no SQLITE_BUSY, no lost row).
func testConcurrentWriters(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	const n = 50
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				u := &novacron.User{Username: fmt.Sprintf("user%02d", i), Role: novacron.RoleUser, TenantID: tn.ID}
				if err := s.CreateUser(c, u); err != nil {
					return fmt.Errorf("CreateUser: %w", err)
				}
				sess := &novacron.Session{UserID: u.ID, Kind: novacron.SessionToken, TokenHash: fmt.Sprintf("h%02d", i),
					ExpiresAt: time.Now().Add(time.Hour)}
				if err := s.CreateSession(c, sess); err != nil {
					return fmt.Errorf("CreateSession: %w", err)
				}
				for j := range 3 {
					e := &novacron.AuditEntry{UserID: u.ID, TenantID: tn.ID, Action: "test", ResourceID: fmt.Sprint(j)}
					if err := s.InsertAudit(c, e); err != nil {
						return fmt.Errorf("InsertAudit: %w", err)
					}
				}
				if err := s.RevokeSession(c, u.ID, sess.ID); err != nil {
					return fmt.Errorf("RevokeSession: %w", err)
				}
				// Read-modify-write transactions: on SQLite a deferred
				// transaction that reads and then writes fails with
				// SQLITE_BUSY here, whatever the busy timeout.
				own := &novacron.Tenant{Name: fmt.Sprintf("tenant%02d", i)}
				if err := s.CreateTenant(c, own); err != nil {
					return fmt.Errorf("CreateTenant: %w", err)
				}
				for q := range 3 {
					shared := &novacron.Tenant{ID: tn.ID, Name: tn.Name, Quotas: novacron.Quotas{VMs: ptr(int64(q))}}
					if err := s.UpdateTenant(c, shared); err != nil {
						return fmt.Errorf("UpdateTenant: %w", err)
					}
					own.Quotas.VMs = ptr(int64(q))
					if err := s.UpdateTenant(c, own); err != nil {
						return fmt.Errorf("UpdateTenant: %w", err)
					}
				}
				if err := s.DeleteTenant(c, own.ID); err != nil {
					return fmt.Errorf("DeleteTenant: %w", err)
				}
				u.Email = "changed@example.com"
				if err := s.UpdateUser(c, novacron.TenantScope(tn.ID), u); err != nil {
					return fmt.Errorf("UpdateUser: %w", err)
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	tenants, _, err := s.ListTenants(c, novacron.AllTenants, novacron.Page{})
	noErr(t, err, "ListTenants")
	if len(tenants) != 1 || tenants[0].Quotas.VMs == nil || *tenants[0].Quotas.VMs != 2 {
		t.Errorf("tenants after concurrent updates: %+v", deref(tenants))
	}
	count, err := s.CountUsers(c)
	noErr(t, err, "CountUsers")
	if count != n {
		t.Errorf("CountUsers = %d, want %d", count, n)
	}
	entries := collect(t, 500, 1, func(cursor string) ([]*novacron.AuditEntry, string, error) {
		return s.ListAudit(c, novacron.TenantScope(tn.ID), novacron.AuditFilter{Page: novacron.Page{Limit: 500, Cursor: cursor}})
	}, auditID)
	if len(entries) != 3*n {
		t.Errorf("%d audit entries, want %d", len(entries), 3*n)
	}
	users := collect(t, 500, 1, func(cursor string) ([]*novacron.User, string, error) {
		return s.ListUsers(c, novacron.AllTenants, novacron.UserFilter{Page: novacron.Page{Limit: 500, Cursor: cursor}})
	}, userID)
	for _, id := range users {
		u, err := s.GetUser(c, novacron.AllTenants, id)
		noErr(t, err, "GetUser")
		if u.Email != "changed@example.com" {
			t.Errorf("user %s email %q, update lost", u.Username, u.Email)
		}
	}
}

// testConcurrentReadWrite mixes readers with writers of the same rows.
func testConcurrentReadWrite(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	sess := mustSession(t, s, u.ID, novacron.SessionToken, "shared", time.Now().Add(time.Hour))
	const workers, rounds = 32, 20
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for r := range rounds {
					if w%2 == 0 {
						got, err := s.GetSessionByTokenHash(c, "shared")
						if err != nil {
							return fmt.Errorf("GetSessionByTokenHash: %w", err)
						}
						if got.ID != sess.ID {
							return fmt.Errorf("GetSessionByTokenHash = %s, want %s", got.ID, sess.ID)
						}
						if _, err := s.GetUser(c, novacron.TenantScope(tn.ID), u.ID); err != nil {
							return fmt.Errorf("GetUser: %w", err)
						}
						continue
					}
					e := &novacron.AuditEntry{UserID: u.ID, TenantID: tn.ID, Action: "auth.token", ResourceID: fmt.Sprint(w, r)}
					if err := s.InsertAudit(c, e); err != nil {
						return fmt.Errorf("InsertAudit: %w", err)
					}
					if _, err := s.SetSettingIfAbsent(c, fmt.Sprintf("k%d", r), fmt.Sprint(w)); err != nil {
						return fmt.Errorf("SetSettingIfAbsent: %w", err)
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := collect(t, 500, 1, func(cursor string) ([]*novacron.AuditEntry, string, error) {
		return s.ListAudit(c, novacron.AllTenants, novacron.AuditFilter{Action: "auth.token", Page: novacron.Page{Limit: 500, Cursor: cursor}})
	}, auditID)
	if want := workers / 2 * rounds; len(got) != want {
		t.Errorf("%d audit entries, want %d", len(got), want)
	}
}

// testConcurrentBurst is the shape of the API under a 1000-connection
// benchmark: every request authenticates (a read) and is audited (a write).
func testConcurrentBurst(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	sess := mustSession(t, s, u.ID, novacron.SessionToken, "burst", time.Now().Add(time.Hour))
	const n = 1000
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				got, err := s.GetSessionByTokenHash(c, "burst")
				if err != nil {
					return fmt.Errorf("GetSessionByTokenHash: %w", err)
				}
				if got.ID != sess.ID {
					return fmt.Errorf("GetSessionByTokenHash = %s, want %s", got.ID, sess.ID)
				}
				e := &novacron.AuditEntry{UserID: u.ID, TenantID: tn.ID, Action: "burst", ResourceID: fmt.Sprint(i), Success: true}
				if err := s.InsertAudit(c, e); err != nil {
					return fmt.Errorf("InsertAudit: %w", err)
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed++; failed <= 5 {
				t.Error(err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests failed", failed, n)
	}
	got := collect(t, 500, 2, func(cursor string) ([]*novacron.AuditEntry, string, error) {
		return s.ListAudit(c, novacron.TenantScope(tn.ID), novacron.AuditFilter{Action: "burst", Page: novacron.Page{Limit: 500, Cursor: cursor}})
	}, auditID)
	if len(got) != n {
		t.Errorf("%d audit entries, want %d", len(got), n)
	}
}
