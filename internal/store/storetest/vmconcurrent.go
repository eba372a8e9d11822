package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/novacron/novacron"
)

// race runs fn(i) for i in [0, n) at once and returns the errors by i.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// testVMQuotaRace creates twice as many VMs at once as the tenant's quota
// allows: exactly the quota succeeds, whichever check runs first.
func testVMQuotaRace(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	tn.Quotas = novacron.Quotas{VMs: ptr[int64](10), VCPUs: ptr[int64](1000)}
	noErr(t, s.UpdateTenant(c, tn), "UpdateTenant")
	errs := race(20, func(i int) error {
		vm := &novacron.VM{Name: fmt.Sprintf("vm%02d", i), Driver: novacron.DriverProcess, TenantID: tn.ID, CPUs: 2, MemoryMB: 64}
		return s.CreateVM(c, vm, &novacron.Operation{Action: "create"})
	})
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !novacron.IsCode(err, novacron.EQuotaExceeded):
			t.Errorf("CreateVM = %v, want success or %s", err, novacron.EQuotaExceeded)
		}
	}
	if ok != 10 {
		t.Errorf("%d creates succeeded, want 10", ok)
	}
	wantUsage(t, s, tn.ID, novacron.Usage{VMs: 10, VCPUs: 20, MemoryMB: 640})
	if n := countOps(t, s, ""); n != 10 {
		t.Errorf("%d operations, want 10", n)
	}

	// Growth races too: ten resizes of 2 → 101 vcpus against 1000, of
	// which at most (1000-20)/99 = 9 fit.
	vms, _, err := s.ListVMs(c, novacron.AllTenants, novacron.VMFilter{})
	noErr(t, err, "ListVMs")
	for _, v := range vms {
		mustSettle(t, s, v, novacron.StateStopped)
	}
	errs = race(len(vms), func(i int) error {
		v := *vms[i]
		v.CPUs = 101
		return s.UpdateVMSpec(c, novacron.AllTenants, &v, []novacron.VMState{novacron.StateStopped})
	})
	ok = 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !novacron.IsCode(err, novacron.EQuotaExceeded):
			t.Errorf("UpdateVMSpec = %v, want success or %s", err, novacron.EQuotaExceeded)
		}
	}
	if ok != 9 {
		t.Errorf("%d resizes succeeded, want 9", ok)
	}
	wantUsage(t, s, tn.ID, novacron.Usage{VMs: 10, VCPUs: 9*101 + 2, MemoryMB: 640})
}

// testVMBeginRace races BeginOperation on one VM: exactly one wins, both
// for an action that changes the state (start) and for one that keeps it
// (pause), where only the running operation tells the callers apart.
func testVMBeginRace(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	vm, _ := mustVM(t, s, tn.ID, "web", nil)
	vm = mustSettle(t, s, vm, novacron.StateStopped)
	for _, action := range []novacron.Action{novacron.ActionStart, novacron.ActionPause} {
		tr := novacron.Transitions[action]
		if action == novacron.ActionPause {
			vm = mustSettle(t, s, mustGetVM(t, s, vm.ID), novacron.StateRunning)
		}
		ops := make([]*novacron.Operation, 10)
		errs := race(len(ops), func(i int) error {
			v := *vm
			ops[i] = &novacron.Operation{Action: string(action)}
			return s.BeginOperation(c, &v, tr.From, tr.During, tr.Desired, ops[i])
		})
		var winner *novacron.Operation
		for i, err := range errs {
			switch {
			case err == nil && winner != nil:
				t.Errorf("%s: two callers won: %s and %s", action, winner.ID, ops[i].ID)
			case err == nil:
				winner = ops[i]
			case !novacron.IsCode(err, novacron.EInvalidState):
				t.Errorf("%s: BeginOperation = %v, want success or %s", action, err, novacron.EInvalidState)
			}
		}
		if winner == nil {
			t.Fatalf("%s: no caller won", action)
		}
		got := mustGetVM(t, s, vm.ID)
		if got.OperationID != winner.ID || got.State != tr.During {
			t.Errorf("%s: vm = %+v, want operation %s in state %s", action, got, winner.ID, tr.During)
		}
		running := collect(t, 50, 1, func(cursor string) ([]*novacron.Operation, string, error) {
			return s.ListOperations(c, novacron.AllTenants, novacron.OperationFilter{VMID: vm.ID, Status: novacron.OpRunning,
				Page: novacron.Page{Cursor: cursor}})
		}, opID)
		wantEqual(t, string(action)+": running operations", running, []string{winner.ID})
		vm = got
	}

	// Finishing races too: one caller ends the operation.
	errs := race(10, func(int) error {
		return s.FinishOperation(c, vm.OperationID, novacron.OpSucceeded, "")
	})
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !novacron.IsCode(err, novacron.EConflict):
			t.Errorf("FinishOperation = %v, want success or %s", err, novacron.EConflict)
		}
	}
	if ok != 1 {
		t.Errorf("%d finishes succeeded, want 1", ok)
	}
}
