package storetest

import (
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func testPing(t *testing.T, s Store) {
	noErr(t, s.Ping(ctx(t)), "Ping")
}

// testMalformedIDs closes the store first: a malformed id must be answered
// with ENotFound without a query, so a closed database cannot matter.
func testMalformedIDs(t *testing.T, s Store) {
	c := ctx(t)
	// A live row first, to show that the answers below are not about an
	// empty database.
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	vm, op := mustVM(t, s, tn.ID, "web", nil)
	noErr(t, s.Close(), "Close")
	for _, id := range malformedIDs {
		checks := map[string]error{}
		_, checks["GetTenant"] = s.GetTenant(c, novacron.AllTenants, id)
		checks["UpdateTenant"] = s.UpdateTenant(c, &novacron.Tenant{ID: id, Name: "x"})
		checks["DeleteTenant"] = s.DeleteTenant(c, id)
		_, checks["GetUser"] = s.GetUser(c, novacron.AllTenants, id)
		checks["UpdateUser"] = s.UpdateUser(c, novacron.AllTenants, &novacron.User{ID: id, Role: novacron.RoleUser, TenantID: tn.ID})
		checks["DeleteUser"] = s.DeleteUser(c, novacron.AllTenants, id)
		_, checks["GetSession"] = s.GetSession(c, id)
		checks["RevokeSession"] = s.RevokeSession(c, u.ID, id)
		checks["RevokeSession/user"] = s.RevokeSession(c, id, missingID)
		_, checks["GetVM"] = s.GetVM(c, novacron.AllTenants, id)
		checks["UpdateVMSpec"] = s.UpdateVMSpec(c, novacron.AllTenants, &novacron.VM{ID: id, Name: "web", CPUs: 1, MemoryMB: 1,
			RestartPolicy: novacron.RestartNever}, allStates)
		checks["BeginOperation"] = s.BeginOperation(c, &novacron.VM{ID: id}, allStates, novacron.StateStarting, "",
			&novacron.Operation{Action: "start"})
		checks["SetVMState"] = s.SetVMState(c, id, novacron.StateRunning, "", nil)
		checks["SetVMDesiredState"] = s.SetVMDesiredState(c, id, novacron.StateRunning)
		checks["DeleteVM"] = s.DeleteVM(c, id)
		_, checks["TenantUsage"] = s.TenantUsage(c, id)
		_, checks["GetOperation"] = s.GetOperation(c, novacron.AllTenants, id)
		checks["SetOperationPhase"] = s.SetOperationPhase(c, id, "x")
		checks["FinishOperation"] = s.FinishOperation(c, id, novacron.OpSucceeded, "")
		_, checks["GetNode"] = s.GetNode(c, id)
		_, checks["GetImage"] = s.GetImage(c, novacron.AllTenants, id)
		checks["DeleteImage"] = s.DeleteImage(c, novacron.AllTenants, id)
		_, checks["TenantImageBytes"] = s.TenantImageBytes(c, id)
		// A malformed scope sees nothing either.
		if id != "" {
			_, checks["GetTenant/scope"] = s.GetTenant(c, novacron.TenantScope(id), tn.ID)
			_, checks["GetUser/scope"] = s.GetUser(c, novacron.TenantScope(id), u.ID)
			checks["DeleteUser/scope"] = s.DeleteUser(c, novacron.TenantScope(id), u.ID)
			_, checks["GetVM/scope"] = s.GetVM(c, novacron.TenantScope(id), vm.ID)
			_, checks["GetVMByName/scope"] = s.GetVMByName(c, novacron.TenantScope(id), vm.Name)
			checks["UpdateVMSpec/scope"] = s.UpdateVMSpec(c, novacron.TenantScope(id), vm, allStates)
			_, checks["GetOperation/scope"] = s.GetOperation(c, novacron.TenantScope(id), op.ID)
			_, checks["GetImage/scope"] = s.GetImage(c, novacron.TenantScope(id), missingID)
			checks["DeleteImage/scope"] = s.DeleteImage(c, novacron.TenantScope(id), missingID)
		}
		for name, err := range checks {
			if !novacron.IsCode(err, novacron.ENotFound) {
				t.Errorf("%s(%q) = %v, want %s", name, id, err, novacron.ENotFound)
			}
		}
	}
}

func testTenantCreateGet(t *testing.T, s Store) {
	c := ctx(t)
	before := time.Now()
	tn := &novacron.Tenant{Name: "acme", Quotas: novacron.Quotas{VMs: ptr[int64](10), MemoryMB: ptr[int64](0)}}
	noErr(t, s.CreateTenant(c, tn), "CreateTenant")
	after := time.Now()
	wantID(t, tn.ID)
	wantStoreTime(t, "CreatedAt", tn.CreatedAt, before, after)
	if !tn.UpdatedAt.Equal(tn.CreatedAt) {
		t.Errorf("UpdatedAt = %v, want CreatedAt %v", tn.UpdatedAt, tn.CreatedAt)
	}

	got, err := s.GetTenant(c, novacron.AllTenants, tn.ID)
	noErr(t, err, "GetTenant")
	wantEqual(t, "GetTenant", got, tn)
	if got.Quotas.VCPUs != nil || got.Quotas.DiskGB != nil || got.Quotas.ImagesGB != nil {
		t.Errorf("unset quotas came back set: %+v", got.Quotas)
	}
	if got.Quotas.VMs == nil || *got.Quotas.VMs != 10 || got.Quotas.MemoryMB == nil || *got.Quotas.MemoryMB != 0 {
		t.Errorf("quotas = %+v, want vms 10 and memory 0", got.Quotas)
	}

	got, err = s.GetTenantByName(c, "acme")
	noErr(t, err, "GetTenantByName")
	wantEqual(t, "GetTenantByName", got, tn)
	_, err = s.GetTenantByName(c, "Acme")
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetTenantByName(c, "")
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetTenant(c, novacron.AllTenants, missingID)
	wantCode(t, err, novacron.ENotFound)

	// An id chosen by the caller is kept, in canonical form.
	chosen := &novacron.Tenant{ID: "0189ABCD-0000-7000-8000-000000000001", Name: "chosen"}
	noErr(t, s.CreateTenant(c, chosen), "CreateTenant with id")
	if chosen.ID != "0189abcd-0000-7000-8000-000000000001" {
		t.Errorf("chosen id = %q, want it lower-cased", chosen.ID)
	}
	got, err = s.GetTenant(c, novacron.AllTenants, "0189ABCD-0000-7000-8000-000000000001")
	noErr(t, err, "GetTenant upper-case id")
	wantEqual(t, "GetTenant chosen", got, chosen)
	err = s.CreateTenant(c, &novacron.Tenant{ID: chosen.ID, Name: "other"})
	wantMessage(t, err, novacron.EConflict, "tenant id already exists")
}

func testTenantCreateInvalid(t *testing.T, s Store) {
	c := ctx(t)
	wantCode(t, s.CreateTenant(c, &novacron.Tenant{}), novacron.EInvalid)
	wantCode(t, s.CreateTenant(c, &novacron.Tenant{ID: "nope", Name: "x"}), novacron.EInvalid)
	ts, _, err := s.ListTenants(c, novacron.AllTenants, novacron.Page{})
	noErr(t, err, "ListTenants")
	if len(ts) != 0 {
		t.Errorf("invalid creates left %d tenants", len(ts))
	}
}

func testTenantNameConflict(t *testing.T, s Store) {
	c := ctx(t)
	first := mustTenant(t, s, "acme")
	dup := &novacron.Tenant{Name: "acme"}
	wantMessage(t, s.CreateTenant(c, dup), novacron.EConflict, "tenant name already exists")
	if dup.ID != "" || !dup.CreatedAt.IsZero() {
		t.Errorf("failed create changed the tenant: %+v", dup)
	}
	got, err := s.GetTenantByName(c, "acme")
	noErr(t, err, "GetTenantByName")
	wantEqual(t, "tenant after conflict", got, first)
}

func testTenantScope(t *testing.T, s Store) {
	c := ctx(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	got, err := s.GetTenant(c, novacron.TenantScope(a.ID), a.ID)
	noErr(t, err, "GetTenant own")
	wantEqual(t, "GetTenant own", got, a)
	_, err = s.GetTenant(c, novacron.TenantScope(a.ID), b.ID)
	wantCode(t, err, novacron.ENotFound)

	list, next, err := s.ListTenants(c, novacron.TenantScope(b.ID), novacron.Page{})
	noErr(t, err, "ListTenants scoped")
	wantEqual(t, "ListTenants scoped", list, []*novacron.Tenant{b})
	if next != "" {
		t.Errorf("next = %q, want none", next)
	}
	list, _, err = s.ListTenants(c, novacron.TenantScope(missingID), novacron.Page{})
	noErr(t, err, "ListTenants scope of a missing tenant")
	if len(list) != 0 {
		t.Errorf("scope of a missing tenant lists %d tenants", len(list))
	}
	list, _, err = s.ListTenants(c, novacron.TenantScope("bogus"), novacron.Page{})
	noErr(t, err, "ListTenants malformed scope")
	if len(list) != 0 {
		t.Errorf("malformed scope lists %d tenants", len(list))
	}
	list, _, err = s.ListTenants(c, novacron.AllTenants, novacron.Page{})
	noErr(t, err, "ListTenants all")
	wantEqual(t, "ListTenants all", list, []*novacron.Tenant{a, b})
}

func testTenantUpdate(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	other := mustTenant(t, s, "other")
	created := tn.CreatedAt
	time.Sleep(2 * time.Millisecond)

	upd := &novacron.Tenant{ID: tn.ID, Name: "acme2", Quotas: novacron.Quotas{VCPUs: ptr[int64](8)}}
	before := time.Now()
	noErr(t, s.UpdateTenant(c, upd), "UpdateTenant")
	wantStoreTime(t, "UpdatedAt", upd.UpdatedAt, before, time.Now())
	if !upd.CreatedAt.Equal(created) {
		t.Errorf("CreatedAt = %v, want unchanged %v", upd.CreatedAt, created)
	}
	if !upd.UpdatedAt.After(created) {
		t.Errorf("UpdatedAt %v not after CreatedAt %v", upd.UpdatedAt, created)
	}
	got, err := s.GetTenant(c, novacron.AllTenants, tn.ID)
	noErr(t, err, "GetTenant")
	wantEqual(t, "updated tenant", got, upd)
	if got.Quotas.VMs != nil {
		t.Errorf("quota VMs = %v, want cleared", *got.Quotas.VMs)
	}
	_, err = s.GetTenantByName(c, "acme")
	wantCode(t, err, novacron.ENotFound)

	err = s.UpdateTenant(c, &novacron.Tenant{ID: tn.ID, Name: other.Name})
	wantMessage(t, err, novacron.EConflict, "tenant name already exists")
	wantCode(t, s.UpdateTenant(c, &novacron.Tenant{ID: tn.ID}), novacron.EInvalid)
	wantCode(t, s.UpdateTenant(c, &novacron.Tenant{ID: missingID, Name: "ghost"}), novacron.ENotFound)
	got, err = s.GetTenant(c, novacron.AllTenants, tn.ID)
	noErr(t, err, "GetTenant")
	wantEqual(t, "tenant after failed updates", got, upd)

	def := mustTenant(t, s, novacron.DefaultTenantName)
	wantCode(t, s.UpdateTenant(c, &novacron.Tenant{ID: def.ID, Name: "renamed"}), novacron.EConflict)
	def.Quotas.VMs = ptr[int64](3)
	noErr(t, s.UpdateTenant(c, def), "UpdateTenant default quotas")
	got, err = s.GetTenantByName(c, novacron.DefaultTenantName)
	noErr(t, err, "GetTenantByName default")
	wantEqual(t, "default tenant", got, def)
}

func testTenantDelete(t *testing.T, s Store) {
	c := ctx(t)
	def := mustTenant(t, s, novacron.DefaultTenantName)
	wantCode(t, s.DeleteTenant(c, def.ID), novacron.EConflict)
	if _, err := s.GetTenant(c, novacron.AllTenants, def.ID); err != nil {
		t.Fatalf("default tenant gone after refused delete: %v", err)
	}

	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	wantMessage(t, s.DeleteTenant(c, tn.ID), novacron.EConflict, "tenant still has users")
	if _, err := s.GetTenant(c, novacron.AllTenants, tn.ID); err != nil {
		t.Fatalf("tenant gone after refused delete: %v", err)
	}
	noErr(t, s.DeleteUser(c, novacron.AllTenants, u.ID), "DeleteUser")
	noErr(t, s.DeleteTenant(c, tn.ID), "DeleteTenant")
	_, err := s.GetTenant(c, novacron.AllTenants, tn.ID)
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetTenantByName(c, "acme")
	wantCode(t, err, novacron.ENotFound)
	wantCode(t, s.DeleteTenant(c, tn.ID), novacron.ENotFound)
	wantCode(t, s.DeleteTenant(c, missingID), novacron.ENotFound)

	// The name is free again.
	mustTenant(t, s, "acme")
}

func testTenantList(t *testing.T, s Store) {
	c := ctx(t)
	var want []string
	for i := range 7 {
		want = append(want, mustTenant(t, s, string(rune('a'+i))+"-tenant").ID)
	}
	list := func(limit int) func(string) ([]*novacron.Tenant, string, error) {
		return func(cursor string) ([]*novacron.Tenant, string, error) {
			return s.ListTenants(c, novacron.AllTenants, novacron.Page{Limit: limit, Cursor: cursor})
		}
	}
	wantEqual(t, "limit 3", collect(t, 3, 3, list(3), tenantID), want)
	wantEqual(t, "limit 7", collect(t, 7, 1, list(7), tenantID), want)
	wantEqual(t, "limit 1", collect(t, 1, 7, list(1), tenantID), want)
	wantEqual(t, "limit 0", collect(t, 50, 1, list(0), tenantID), want)

	// A page that ends exactly at the last row has no next cursor.
	mustTenant(t, s, "h-tenant")
	items, next, err := s.ListTenants(c, novacron.AllTenants, novacron.Page{Limit: 4})
	noErr(t, err, "ListTenants")
	if len(items) != 4 || next == "" {
		t.Fatalf("first page: %d items, next %q", len(items), next)
	}
	items, next, err = s.ListTenants(c, novacron.AllTenants, novacron.Page{Limit: 4, Cursor: next})
	noErr(t, err, "ListTenants")
	if len(items) != 4 || next != "" {
		t.Fatalf("last page: %d items, next %q; want 4 and none", len(items), next)
	}

	for _, bad := range []string{"!!", "bm90LWEtdXVpZA", missingID} {
		_, _, err := s.ListTenants(c, novacron.AllTenants, novacron.Page{Cursor: bad})
		wantCode(t, err, novacron.EInvalid)
	}
}
