package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func testUserCreateGet(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	before := time.Now()
	u := &novacron.User{Username: "alice", Email: "alice@example.com", Role: novacron.RoleOperator,
		TenantID: tn.ID, PasswordHash: "$2a$10$hash"}
	noErr(t, s.CreateUser(c, u), "CreateUser")
	wantID(t, u.ID)
	wantStoreTime(t, "CreatedAt", u.CreatedAt, before, time.Now())
	if !u.UpdatedAt.Equal(u.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", u.UpdatedAt, u.CreatedAt)
	}

	got, err := s.GetUser(c, novacron.AllTenants, u.ID)
	noErr(t, err, "GetUser")
	wantEqual(t, "GetUser", got, u)
	if got.PasswordHash != "$2a$10$hash" {
		t.Errorf("PasswordHash = %q", got.PasswordHash)
	}
	got, err = s.GetUser(c, novacron.TenantScope(tn.ID), u.ID)
	noErr(t, err, "GetUser scoped")
	wantEqual(t, "GetUser scoped", got, u)
	got, err = s.GetUserByUsername(c, "alice")
	noErr(t, err, "GetUserByUsername")
	wantEqual(t, "GetUserByUsername", got, u)

	_, err = s.GetUserByUsername(c, "bob")
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetUserByUsername(c, "")
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetUser(c, novacron.AllTenants, missingID)
	wantCode(t, err, novacron.ENotFound)
}

func testUserCreateInvalid(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	for name, u := range map[string]*novacron.User{
		"no username":      {Role: novacron.RoleUser, TenantID: tn.ID},
		"bad role":         {Username: "a", Role: "root", TenantID: tn.ID},
		"no role":          {Username: "b", TenantID: tn.ID},
		"no tenant":        {Username: "c", Role: novacron.RoleUser},
		"malformed tenant": {Username: "d", Role: novacron.RoleUser, TenantID: "acme"},
		"missing tenant":   {Username: "e", Role: novacron.RoleUser, TenantID: missingID},
		"malformed id":     {ID: "x", Username: "f", Role: novacron.RoleUser, TenantID: tn.ID},
	} {
		err := s.CreateUser(c, u)
		if !novacron.IsCode(err, novacron.EInvalid) {
			t.Errorf("%s: CreateUser = %v, want %s", name, err, novacron.EInvalid)
		}
	}
	n, err := s.CountUsers(c)
	noErr(t, err, "CountUsers")
	if n != 0 {
		t.Errorf("invalid creates left %d users", n)
	}
}

func testUserUsernameConflict(t *testing.T, s Store) {
	c := ctx(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	first := mustUser(t, s, a.ID, "alice", novacron.RoleUser)
	// Usernames are unique across tenants: they log in without one.
	dup := &novacron.User{Username: "alice", Role: novacron.RoleAdmin, TenantID: b.ID}
	wantMessage(t, s.CreateUser(c, dup), novacron.EConflict, "username already exists")
	if dup.ID != "" {
		t.Errorf("failed create set id %q", dup.ID)
	}
	got, err := s.GetUserByUsername(c, "alice")
	noErr(t, err, "GetUserByUsername")
	wantEqual(t, "user after conflict", got, first)
	err = s.CreateUser(c, &novacron.User{ID: first.ID, Username: "alice2", Role: novacron.RoleUser, TenantID: a.ID})
	wantMessage(t, err, novacron.EConflict, "user id already exists")
}

func testUserScope(t *testing.T, s Store) {
	c := ctx(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	ua := mustUser(t, s, a.ID, "alice", novacron.RoleUser)
	ub := mustUser(t, s, b.ID, "bob", novacron.RoleUser)
	scopeA := novacron.TenantScope(a.ID)

	_, err := s.GetUser(c, scopeA, ub.ID)
	wantCode(t, err, novacron.ENotFound)
	upd := *ub
	upd.Email = "hacked@example.com"
	wantCode(t, s.UpdateUser(c, scopeA, &upd), novacron.ENotFound)
	// Moving someone else's user into one's own tenant is no way around it.
	upd.TenantID = a.ID
	wantCode(t, s.UpdateUser(c, scopeA, &upd), novacron.ENotFound)
	wantCode(t, s.DeleteUser(c, scopeA, ub.ID), novacron.ENotFound)
	got, err := s.GetUser(c, novacron.AllTenants, ub.ID)
	noErr(t, err, "GetUser")
	wantEqual(t, "user of another tenant after scoped writes", got, ub)

	// A scoped caller cannot move its own user out of its tenant.
	out := *ua
	out.TenantID = b.ID
	wantCode(t, s.UpdateUser(c, scopeA, &out), novacron.EForbidden)
	got, err = s.GetUser(c, novacron.AllTenants, ua.ID)
	noErr(t, err, "GetUser")
	wantEqual(t, "user after refused move", got, ua)

	list, next, err := s.ListUsers(c, scopeA, novacron.UserFilter{})
	noErr(t, err, "ListUsers scoped")
	wantEqual(t, "ListUsers scoped", list, []*novacron.User{ua})
	if next != "" {
		t.Errorf("next = %q, want none", next)
	}
	list, _, err = s.ListUsers(c, novacron.AllTenants, novacron.UserFilter{})
	noErr(t, err, "ListUsers")
	wantEqual(t, "ListUsers", list, []*novacron.User{ua, ub})
	list, _, err = s.ListUsers(c, novacron.TenantScope("bogus"), novacron.UserFilter{})
	noErr(t, err, "ListUsers malformed scope")
	if len(list) != 0 {
		t.Errorf("malformed scope lists %d users", len(list))
	}
}

func testUserUpdate(t *testing.T, s Store) {
	c := ctx(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	u := mustUser(t, s, a.ID, "alice", novacron.RoleUser)
	mustUser(t, s, a.ID, "bob", novacron.RoleUser)
	time.Sleep(2 * time.Millisecond)

	upd := &novacron.User{ID: u.ID, Username: "bob", Email: "new@example.com", Role: novacron.RoleAdmin,
		TenantID: b.ID, PasswordHash: "new-hash"}
	before := time.Now()
	noErr(t, s.UpdateUser(c, novacron.AllTenants, upd), "UpdateUser")
	// Username is not written: the update neither renames alice nor
	// collides with bob, and upd is reloaded from the row.
	want := &novacron.User{ID: u.ID, Username: "alice", Email: "new@example.com", Role: novacron.RoleAdmin,
		TenantID: b.ID, PasswordHash: "new-hash", CreatedAt: u.CreatedAt, UpdatedAt: upd.UpdatedAt}
	wantEqual(t, "updated user", upd, want)
	wantStoreTime(t, "UpdatedAt", upd.UpdatedAt, before, time.Now())
	if !upd.UpdatedAt.After(u.CreatedAt) {
		t.Errorf("UpdatedAt %v not after CreatedAt %v", upd.UpdatedAt, u.CreatedAt)
	}
	got, err := s.GetUser(c, novacron.TenantScope(b.ID), u.ID)
	noErr(t, err, "GetUser in new tenant")
	wantEqual(t, "GetUser after update", got, want)
	_, err = s.GetUser(c, novacron.TenantScope(a.ID), u.ID)
	wantCode(t, err, novacron.ENotFound)

	// A scoped update within the tenant works.
	upd.Email = "scoped@example.com"
	noErr(t, s.UpdateUser(c, novacron.TenantScope(b.ID), upd), "UpdateUser scoped")
	got, err = s.GetUserByUsername(c, "alice")
	noErr(t, err, "GetUserByUsername")
	if got.Email != "scoped@example.com" {
		t.Errorf("Email = %q after scoped update", got.Email)
	}

	bad := *got
	bad.Role = "superuser"
	wantCode(t, s.UpdateUser(c, novacron.AllTenants, &bad), novacron.EInvalid)
	bad = *got
	bad.TenantID = missingID
	wantCode(t, s.UpdateUser(c, novacron.AllTenants, &bad), novacron.EInvalid)
	bad.TenantID = "b"
	wantCode(t, s.UpdateUser(c, novacron.AllTenants, &bad), novacron.EInvalid)
	bad = *got
	bad.ID = missingID
	wantCode(t, s.UpdateUser(c, novacron.AllTenants, &bad), novacron.ENotFound)
	again, err := s.GetUser(c, novacron.AllTenants, u.ID)
	noErr(t, err, "GetUser")
	wantEqual(t, "user after failed updates", again, got)
}

func testUserDelete(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	keep := mustUser(t, s, tn.ID, "bob", novacron.RoleUser)
	exp := time.Now().Add(time.Hour)
	s1 := mustSession(t, s, u.ID, novacron.SessionLogin, "", exp)
	s2 := mustSession(t, s, u.ID, novacron.SessionToken, "h-alice", exp)
	s3 := mustSession(t, s, keep.ID, novacron.SessionToken, "h-bob", exp)

	noErr(t, s.DeleteUser(c, novacron.TenantScope(tn.ID), u.ID), "DeleteUser")
	_, err := s.GetUser(c, novacron.AllTenants, u.ID)
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetUserByUsername(c, "alice")
	wantCode(t, err, novacron.ENotFound)
	for _, id := range []string{s1.ID, s2.ID} {
		_, err = s.GetSession(c, id)
		wantCode(t, err, novacron.ENotFound)
	}
	_, err = s.GetSessionByTokenHash(c, "h-alice")
	wantCode(t, err, novacron.ENotFound)
	got, err := s.GetSession(c, s3.ID)
	noErr(t, err, "GetSession of another user")
	wantEqual(t, "other user's session", got, s3)
	wantCode(t, s.DeleteUser(c, novacron.AllTenants, u.ID), novacron.ENotFound)
	wantCode(t, s.DeleteUser(c, novacron.AllTenants, missingID), novacron.ENotFound)

	// The username is free again.
	mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
}

func testUserList(t *testing.T, s Store) {
	c := ctx(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	var all, inA, admins []string
	for i := range 9 {
		tn, role := a, novacron.RoleUser
		if i%3 == 0 {
			tn = b
		}
		if i%2 == 0 {
			role = novacron.RoleAdmin
		}
		u := mustUser(t, s, tn.ID, fmt.Sprintf("user%d", i), role)
		all = append(all, u.ID)
		if tn == a {
			inA = append(inA, u.ID)
		}
		if role == novacron.RoleAdmin {
			admins = append(admins, u.ID)
		}
	}
	list := func(scope novacron.Scope, f novacron.UserFilter) func(string) ([]*novacron.User, string, error) {
		return func(cursor string) ([]*novacron.User, string, error) {
			f.Cursor = cursor
			return s.ListUsers(c, scope, f)
		}
	}
	page := func(n int) novacron.UserFilter { return novacron.UserFilter{Page: novacron.Page{Limit: n}} }
	wantEqual(t, "all, limit 2", collect(t, 2, 5, list(novacron.AllTenants, page(2)), userID), all)
	wantEqual(t, "all, limit 9", collect(t, 9, 1, list(novacron.AllTenants, page(9)), userID), all)
	wantEqual(t, "tenant a, limit 4", collect(t, 4, 2, list(novacron.TenantScope(a.ID), page(4)), userID), inA)
	f := page(2)
	f.Role = novacron.RoleAdmin
	wantEqual(t, "admins, limit 2", collect(t, 2, 3, list(novacron.AllTenants, f), userID), admins)
	f = page(0)
	f.Username = "user4"
	wantEqual(t, "by username", collect(t, 50, 1, list(novacron.AllTenants, f), userID), []string{all[4]})
	f.Username = "user"
	wantEqual(t, "by username prefix", collect(t, 50, 1, list(novacron.AllTenants, f), userID), []string{})
	f = page(0)
	f.Role = novacron.RoleOperator
	wantEqual(t, "operators", collect(t, 50, 1, list(novacron.AllTenants, f), userID), []string{})

	_, _, err := s.ListUsers(c, novacron.AllTenants, novacron.UserFilter{Page: novacron.Page{Cursor: "%%%"}})
	wantCode(t, err, novacron.EInvalid)
}

func testUserCount(t *testing.T, s Store) {
	c := ctx(t)
	n, err := s.CountUsers(c)
	noErr(t, err, "CountUsers")
	if n != 0 {
		t.Fatalf("CountUsers = %d on an empty store", n)
	}
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	mustUser(t, s, a.ID, "u1", novacron.RoleUser)
	u2 := mustUser(t, s, b.ID, "u2", novacron.RoleUser)
	mustUser(t, s, b.ID, "u3", novacron.RoleAdmin)
	n, err = s.CountUsers(c)
	noErr(t, err, "CountUsers")
	if n != 3 {
		t.Fatalf("CountUsers = %d, want 3", n)
	}
	noErr(t, s.DeleteUser(c, novacron.AllTenants, u2.ID), "DeleteUser")
	n, err = s.CountUsers(c)
	noErr(t, err, "CountUsers")
	if n != 2 {
		t.Fatalf("CountUsers = %d after a delete, want 2", n)
	}
}
