package storetest

import (
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func testOperationList(t *testing.T, s Store) {
	c := ctx(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	va, createA := mustVM(t, s, a.ID, "web", nil)
	vb, createB := mustVM(t, s, b.ID, "web", nil)
	noErr(t, s.FinishOperation(c, createA.ID, novacron.OpSucceeded, ""), "FinishOperation")
	noErr(t, s.FinishOperation(c, createB.ID, novacron.OpFailed, "no capacity"), "FinishOperation")
	// Oldest first: the ids the lists must give in reverse.
	ops := []*novacron.Operation{createA, createB}
	for i := range 3 {
		noErr(t, s.SetVMState(c, va.ID, novacron.StateStopped, "", nil), "SetVMState")
		op := &novacron.Operation{Action: "start"}
		noErr(t, s.BeginOperation(c, va, []novacron.VMState{novacron.StateStopped}, novacron.StateStarting, "", op), "BeginOperation")
		if i < 2 {
			noErr(t, s.FinishOperation(c, op.ID, novacron.OpSucceeded, ""), "FinishOperation")
		}
		ops = append(ops, op)
	}
	// ops: createA, createB, start1, start2, start3 (running).
	pick := func(is ...int) []string {
		out := []string{}
		for _, i := range is {
			out = append(out, ops[i].ID)
		}
		return out
	}
	list := func(scope novacron.Scope, f novacron.OperationFilter) func(string) ([]*novacron.Operation, string, error) {
		return func(cursor string) ([]*novacron.Operation, string, error) {
			f.Cursor = cursor
			return s.ListOperations(c, scope, f)
		}
	}
	for _, tc := range []struct {
		name  string
		scope novacron.Scope
		f     novacron.OperationFilter
		want  []string
	}{
		{"all", novacron.AllTenants, novacron.OperationFilter{}, pick(4, 3, 2, 1, 0)},
		{"tenant a", novacron.TenantScope(a.ID), novacron.OperationFilter{}, pick(4, 3, 2, 0)},
		{"tenant b", novacron.TenantScope(b.ID), novacron.OperationFilter{}, pick(1)},
		{"vm a", novacron.AllTenants, novacron.OperationFilter{VMID: va.ID}, pick(4, 3, 2, 0)},
		{"vm b in a", novacron.TenantScope(a.ID), novacron.OperationFilter{VMID: vb.ID}, pick()},
		{"running", novacron.AllTenants, novacron.OperationFilter{Status: novacron.OpRunning}, pick(4)},
		{"succeeded", novacron.AllTenants, novacron.OperationFilter{Status: novacron.OpSucceeded}, pick(3, 2, 0)},
		{"failed", novacron.AllTenants, novacron.OperationFilter{Status: novacron.OpFailed}, pick(1)},
		{"succeeded of vm a", novacron.AllTenants, novacron.OperationFilter{VMID: va.ID, Status: novacron.OpSucceeded}, pick(3, 2, 0)},
		{"missing vm", novacron.AllTenants, novacron.OperationFilter{VMID: missingID}, pick()},
		{"missing tenant", novacron.TenantScope(missingID), novacron.OperationFilter{}, pick()},
		{"malformed tenant", novacron.TenantScope("bogus"), novacron.OperationFilter{}, pick()},
	} {
		wantEqual(t, tc.name, collect(t, 50, 1, list(tc.scope, tc.f), opID), tc.want)
		f := tc.f
		f.Limit = 2
		wantEqual(t, tc.name+", limit 2", collect(t, 2, max(1, (len(tc.want)+1)/2), list(tc.scope, f), opID), tc.want)
	}

	items, _, err := s.ListOperations(c, novacron.AllTenants, novacron.OperationFilter{VMID: vb.ID})
	noErr(t, err, "ListOperations")
	if len(items) != 1 || items[0].Status != novacron.OpFailed || items[0].Error != "no capacity" ||
		items[0].FinishedAt == nil || items[0].TenantID != b.ID || items[0].Action != "create" {
		t.Errorf("operation of vm b = %+v", deref(items))
	}
	for _, bad := range []novacron.OperationFilter{
		{Page: novacron.Page{Cursor: "%%%"}},
		{Page: novacron.Page{Cursor: missingID}},
		{VMID: "web"},
	} {
		_, _, err := s.ListOperations(c, novacron.AllTenants, bad)
		wantCode(t, err, novacron.EInvalid)
	}
	_, err = s.GetOperation(c, novacron.AllTenants, missingID)
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetOperation(c, novacron.TenantScope(b.ID), createA.ID)
	wantCode(t, err, novacron.ENotFound)
}

func testOperationFinish(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	vm, op := mustVM(t, s, tn.ID, "web", nil)
	other, otherOp := mustVM(t, s, tn.ID, "db", nil)

	noErr(t, s.SetOperationPhase(c, op.ID, "downloading image"), "SetOperationPhase")
	got, err := s.GetOperation(c, novacron.AllTenants, op.ID)
	noErr(t, err, "GetOperation")
	if got.Phase != "downloading image" || got.Status != novacron.OpRunning {
		t.Errorf("operation after SetOperationPhase = %+v", got)
	}

	before := time.Now()
	noErr(t, s.FinishOperation(c, op.ID, novacron.OpFailed, "image not found"), "FinishOperation")
	got, err = s.GetOperation(c, novacron.AllTenants, op.ID)
	noErr(t, err, "GetOperation")
	if got.FinishedAt == nil {
		t.Fatal("FinishedAt not set")
	}
	wantStoreTime(t, "FinishedAt", *got.FinishedAt, before, time.Now())
	want := *op
	want.Phase, want.Status, want.Error, want.FinishedAt = "downloading image", novacron.OpFailed, "image not found", got.FinishedAt
	wantEqual(t, "finished operation", got, &want)

	v := mustGetVM(t, s, vm.ID)
	if v.OperationID != "" {
		t.Errorf("OperationID = %q after its operation finished, want none", v.OperationID)
	}
	if !v.UpdatedAt.After(vm.UpdatedAt) && !v.UpdatedAt.Equal(*got.FinishedAt) {
		t.Errorf("UpdatedAt = %v, want the finish time %v", v.UpdatedAt, *got.FinishedAt)
	}
	// Only the VM that pointed at it lets go.
	if o := mustGetVM(t, s, other.ID); o.OperationID != otherOp.ID {
		t.Errorf("other VM's OperationID = %q, want %q", o.OperationID, otherOp.ID)
	}

	wantMessage(t, s.FinishOperation(c, op.ID, novacron.OpSucceeded, ""), novacron.EConflict, "operation already finished")
	wantMessage(t, s.SetOperationPhase(c, op.ID, "late"), novacron.EConflict, "operation already finished")
	again, err := s.GetOperation(c, novacron.AllTenants, op.ID)
	noErr(t, err, "GetOperation")
	wantEqual(t, "operation after refused writes", again, got)

	wantCode(t, s.FinishOperation(c, otherOp.ID, novacron.OpRunning, ""), novacron.EInvalid)
	wantCode(t, s.FinishOperation(c, otherOp.ID, "", ""), novacron.EInvalid)
	wantCode(t, s.FinishOperation(c, missingID, novacron.OpSucceeded, ""), novacron.ENotFound)
	wantCode(t, s.SetOperationPhase(c, missingID, "x"), novacron.ENotFound)
	noErr(t, s.FinishOperation(c, otherOp.ID, novacron.OpSucceeded, ""), "FinishOperation")
	got, err = s.GetOperation(c, novacron.AllTenants, otherOp.ID)
	noErr(t, err, "GetOperation")
	if got.Status != novacron.OpSucceeded || got.Error != "" {
		t.Errorf("succeeded operation = %+v", got)
	}

	// An operation of a deleted VM still finishes.
	noErr(t, s.SetVMState(c, other.ID, novacron.StateStopped, "", nil), "SetVMState")
	del := &novacron.Operation{Action: "delete"}
	noErr(t, s.BeginOperation(c, other, []novacron.VMState{novacron.StateStopped}, novacron.StateDeleting, "", del), "BeginOperation")
	noErr(t, s.DeleteVM(c, other.ID), "DeleteVM")
	noErr(t, s.FinishOperation(c, del.ID, novacron.OpSucceeded, ""), "FinishOperation of a deleted VM")
}
