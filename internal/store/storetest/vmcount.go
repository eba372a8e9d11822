package storetest

import (
	"maps"
	"testing"

	"github.com/novacron/novacron"
)

func testVMCountByState(t *testing.T, s Store) {
	count := func() map[novacron.VMState]int {
		t.Helper()
		got, err := s.CountVMsByState(ctx(t))
		noErr(t, err, "CountVMsByState")
		return got
	}
	if got := count(); len(got) != 0 {
		t.Fatalf("an empty store counts %v", got)
	}
	a, b := mustTenant(t, s, "acme"), mustTenant(t, s, "globex")
	mustVM(t, s, a.ID, "one", nil)
	two, _ := mustVM(t, s, a.ID, "two", nil)
	three, _ := mustVM(t, s, b.ID, "three", nil)
	four, _ := mustVM(t, s, b.ID, "four", nil)
	noErr(t, s.SetVMState(ctx(t), two.ID, novacron.StateRunning, "", nil), "SetVMState")
	noErr(t, s.SetVMState(ctx(t), three.ID, novacron.StateRunning, "", nil), "SetVMState")
	noErr(t, s.SetVMState(ctx(t), four.ID, novacron.StateFailed, "crashed", nil), "SetVMState")
	want := map[novacron.VMState]int{novacron.StateCreating: 1, novacron.StateRunning: 2, novacron.StateFailed: 1}
	if got := count(); !maps.Equal(got, want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	noErr(t, s.DeleteVM(ctx(t), four.ID), "DeleteVM")
	delete(want, novacron.StateFailed)
	if got := count(); !maps.Equal(got, want) {
		t.Fatalf("counts after a delete %v, want %v", got, want)
	}
}
