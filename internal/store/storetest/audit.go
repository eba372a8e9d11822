package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func testAuditInsertList(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	before := time.Now()
	e1 := &novacron.AuditEntry{UserID: u.ID, Username: "alice", TenantID: tn.ID, Action: "vm.create",
		Resource: "vm", ResourceID: "vm-1", IP: "192.0.2.1", UserAgent: "ua", Success: true, RequestID: "r1"}
	noErr(t, s.InsertAudit(c, e1), "InsertAudit")
	wantID(t, e1.ID)
	wantStoreTime(t, "TS", e1.TS, before, time.Now())

	// A failed login of an unknown user has neither user nor tenant id; a
	// given time is kept (in UTC, to the microsecond).
	ts := time.Date(2024, 5, 6, 7, 8, 9, 987654321, time.FixedZone("Y", -7200))
	e2 := &novacron.AuditEntry{Username: "mallory", Action: "auth.login", Resource: "session",
		IP: "198.51.100.9", Success: false, Error: "invalid credentials", TS: ts}
	noErr(t, s.InsertAudit(c, e2), "InsertAudit failed login")
	if want := time.Date(2024, 5, 6, 9, 8, 9, 987654000, time.UTC); e2.TS != want {
		t.Errorf("TS = %v, want %v", e2.TS, want)
	}

	list, next, err := s.ListAudit(c, novacron.AllTenants, novacron.AuditFilter{})
	noErr(t, err, "ListAudit")
	wantEqual(t, "ListAudit", list, []*novacron.AuditEntry{e2, e1})
	if next != "" {
		t.Errorf("next = %q, want none", next)
	}

	// Entries outlive their user and tenant.
	noErr(t, s.DeleteUser(c, novacron.AllTenants, u.ID), "DeleteUser")
	noErr(t, s.DeleteTenant(c, tn.ID), "DeleteTenant")
	list, _, err = s.ListAudit(c, novacron.AllTenants, novacron.AuditFilter{UserID: u.ID})
	noErr(t, err, "ListAudit")
	wantEqual(t, "entries of a deleted user", list, []*novacron.AuditEntry{e1})

	wantCode(t, s.InsertAudit(c, &novacron.AuditEntry{Action: "x", UserID: "alice"}), novacron.EInvalid)
	wantCode(t, s.InsertAudit(c, &novacron.AuditEntry{Action: "x", TenantID: "acme"}), novacron.EInvalid)
	wantCode(t, s.InsertAudit(c, &novacron.AuditEntry{}), novacron.EInvalid)
	wantCode(t, s.InsertAudit(c, &novacron.AuditEntry{ID: e1.ID, Action: "x"}), novacron.EConflict)
}

func testAuditFilters(t *testing.T, s Store) {
	c := ctx(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	ua := mustUser(t, s, a.ID, "alice", novacron.RoleUser)
	ub := mustUser(t, s, b.ID, "bob", novacron.RoleUser)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	type row struct {
		user     *novacron.User
		action   string
		resource string
		minute   int
	}
	rows := []row{
		{ua, "vm.create", "vm", 0},
		{ua, "vm.delete", "vm", 1},
		{ub, "vm.create", "vm", 2},
		{ub, "user.update", "user", 3},
		{nil, "auth.login", "session", 4},
		{ua, "vm.create", "vm", 5},
	}
	var es []*novacron.AuditEntry
	for _, r := range rows {
		e := &novacron.AuditEntry{Action: r.action, Resource: r.resource, TS: base.Add(time.Duration(r.minute) * time.Minute), Success: true}
		if r.user != nil {
			e.UserID, e.Username, e.TenantID = r.user.ID, r.user.Username, r.user.TenantID
		}
		noErr(t, s.InsertAudit(c, e), "InsertAudit")
		es = append(es, e)
	}
	pick := func(idx ...int) []string {
		out := []string{}
		for i := len(idx) - 1; i >= 0; i-- { // newest first
			out = append(out, es[idx[i]].ID)
		}
		return out
	}
	at := func(minute int) time.Time { return base.Add(time.Duration(minute) * time.Minute) }
	for _, tc := range []struct {
		name  string
		scope novacron.Scope
		f     novacron.AuditFilter
		want  []string
	}{
		{"all", novacron.AllTenants, novacron.AuditFilter{}, pick(0, 1, 2, 3, 4, 5)},
		{"tenant a", novacron.TenantScope(a.ID), novacron.AuditFilter{}, pick(0, 1, 5)},
		{"tenant b", novacron.TenantScope(b.ID), novacron.AuditFilter{}, pick(2, 3)},
		{"missing tenant", novacron.TenantScope(missingID), novacron.AuditFilter{}, pick()},
		{"malformed tenant", novacron.TenantScope("a"), novacron.AuditFilter{}, pick()},
		{"user", novacron.AllTenants, novacron.AuditFilter{UserID: ub.ID}, pick(2, 3)},
		{"user outside scope", novacron.TenantScope(a.ID), novacron.AuditFilter{UserID: ub.ID}, pick()},
		{"action", novacron.AllTenants, novacron.AuditFilter{Action: "vm.create"}, pick(0, 2, 5)},
		{"action is exact", novacron.AllTenants, novacron.AuditFilter{Action: "vm"}, pick()},
		{"resource", novacron.AllTenants, novacron.AuditFilter{Resource: "vm"}, pick(0, 1, 2, 5)},
		{"action and tenant", novacron.TenantScope(a.ID), novacron.AuditFilter{Action: "vm.create"}, pick(0, 5)},
		{"from inclusive", novacron.AllTenants, novacron.AuditFilter{From: at(4)}, pick(4, 5)},
		{"to exclusive", novacron.AllTenants, novacron.AuditFilter{To: at(2)}, pick(0, 1)},
		{"from and to", novacron.AllTenants, novacron.AuditFilter{From: at(1), To: at(4)}, pick(1, 2, 3)},
		{"from in another zone", novacron.AllTenants, novacron.AuditFilter{From: at(5).In(time.FixedZone("Z", 5*3600))}, pick(5)},
		{"sub-minute bounds", novacron.AllTenants, novacron.AuditFilter{From: at(2).Add(-time.Microsecond), To: at(2).Add(time.Microsecond)}, pick(2)},
		{"everything", novacron.AllTenants, novacron.AuditFilter{UserID: ua.ID, Action: "vm.create", Resource: "vm", From: at(0), To: at(5)}, pick(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := collect(t, 2, max(1, (len(tc.want)+1)/2), func(cursor string) ([]*novacron.AuditEntry, string, error) {
				f := tc.f
				f.Limit, f.Cursor = 2, cursor
				return s.ListAudit(c, tc.scope, f)
			}, auditID)
			wantEqual(t, "ids", got, tc.want)
		})
	}
	_, _, err := s.ListAudit(c, novacron.AllTenants, novacron.AuditFilter{UserID: "alice"})
	wantCode(t, err, novacron.EInvalid)
	_, _, err = s.ListAudit(c, novacron.AllTenants, novacron.AuditFilter{Page: novacron.Page{Cursor: "AAAA"}})
	wantCode(t, err, novacron.EInvalid)
}

func testAuditPages(t *testing.T, s Store) {
	c := ctx(t)
	var all []string
	for i := range 520 {
		e := &novacron.AuditEntry{Action: "test", ResourceID: fmt.Sprint(i)}
		noErr(t, s.InsertAudit(c, e), "InsertAudit")
		all = append(all, e.ID)
	}
	newest := reversed(all)
	for _, tc := range []struct {
		limit, want int
	}{{0, 50}, {-3, 50}, {1, 1}, {499, 499}, {500, 500}, {501, 500}, {100000, 500}} {
		list, next, err := s.ListAudit(c, novacron.AllTenants, novacron.AuditFilter{Page: novacron.Page{Limit: tc.limit}})
		noErr(t, err, "ListAudit")
		if len(list) != tc.want || next == "" {
			t.Errorf("limit %d: %d entries, next %q; want %d and a cursor", tc.limit, len(list), next, tc.want)
			continue
		}
		wantEqual(t, fmt.Sprintf("limit %d", tc.limit), ids(list, auditID), newest[:tc.want])
	}
	wantEqual(t, "limit 0 pages", collect(t, 50, 11, func(cursor string) ([]*novacron.AuditEntry, string, error) {
		return s.ListAudit(c, novacron.AllTenants, novacron.AuditFilter{Page: novacron.Page{Cursor: cursor}})
	}, auditID), newest)
	wantEqual(t, "limit 500 pages", collect(t, 500, 2, func(cursor string) ([]*novacron.AuditEntry, string, error) {
		return s.ListAudit(c, novacron.AllTenants, novacron.AuditFilter{Page: novacron.Page{Limit: 500, Cursor: cursor}})
	}, auditID), newest)
	wantEqual(t, "limit 52 pages", collect(t, 52, 10, func(cursor string) ([]*novacron.AuditEntry, string, error) {
		return s.ListAudit(c, novacron.AllTenants, novacron.AuditFilter{Page: novacron.Page{Limit: 52, Cursor: cursor}})
	}, auditID), newest)
}

func testAuditPrune(t *testing.T, s Store) {
	c := ctx(t)
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var es []*novacron.AuditEntry
	for i := range 5 {
		e := &novacron.AuditEntry{Action: "test", TS: base.Add(time.Duration(i) * time.Hour)}
		noErr(t, s.InsertAudit(c, e), "InsertAudit")
		es = append(es, e)
	}
	n, err := s.PruneAudit(c, base.Add(2*time.Hour))
	noErr(t, err, "PruneAudit")
	if n != 2 {
		t.Errorf("PruneAudit = %d, want 2", n)
	}
	list, _, err := s.ListAudit(c, novacron.AllTenants, novacron.AuditFilter{})
	noErr(t, err, "ListAudit")
	wantEqual(t, "kept entries", list, []*novacron.AuditEntry{es[4], es[3], es[2]})
	n, err = s.PruneAudit(c, base.Add(2*time.Hour))
	noErr(t, err, "PruneAudit again")
	if n != 0 {
		t.Errorf("PruneAudit again = %d, want 0", n)
	}
}
