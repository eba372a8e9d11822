package vm_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver/fake"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/vm"
)

// next returns the subscription's next event.
func next(t *testing.T, s *events.Subscription) events.Event {
	t.Helper()
	select {
	case e := <-s.C:
		return e
	case <-s.Dropped:
		t.Fatal("the subscription was dropped")
	case <-time.After(30 * time.Second):
		t.Fatal("no event")
	}
	return events.Event{}
}

// TestEvents: what the service publishes, with its audience, as the API
// shows it; and the operations it counts.
func TestEvents(t *testing.T) {
	w := newWorld(t)
	sub := w.bus.Subscribe(1000, nil)
	defer sub.Close()

	// A node (re)added: for operators and admins.
	w.svc.Close()
	w.open()
	e := next(t, sub)
	n, ok := e.Data.(*novacron.Node)
	if e.Type != events.TypeNode || !ok || n.Name != "node1" || n.Status != novacron.NodeOnline || !e.Operators || e.TenantID != "" {
		t.Fatalf("node event %+v", e)
	}

	v := w.create("web", fake.Config{}, func(r *vm.CreateRequest) { r.Start = true })
	var got []string
	for len(got) < 6 {
		e := next(t, sub)
		if e.TenantID != w.tenant.ID || e.VMID != v.ID {
			t.Fatalf("event %s for tenant %q, vm %q", e.Type, e.TenantID, e.VMID)
		}
		switch d := e.Data.(type) {
		case *novacron.VM:
			got = append(got, string(d.State))
		case *novacron.Operation:
			got = append(got, d.Action+":"+string(d.Status))
		default:
			t.Fatalf("event %s with %T", e.Type, e.Data)
		}
	}
	if want := []string{"creating", "create:running", "stopped", "starting", "running", "create:succeeded"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}

	// A guest that exits on its own: the reconcile loop sees it.
	if err := w.drv.Exit(v.ID, 3); err != nil {
		t.Fatal(err)
	}
	e = next(t, sub)
	if d, ok := e.Data.(*novacron.VM); !ok || d.State != novacron.StateFailed || d.ExitCode == nil || *d.ExitCode != 3 {
		t.Fatalf("after the guest's exit: %+v", e)
	}

	// A failed operation is counted as failed.
	w.drv.FailNext(fake.MethodStart, errors.New("no luck"))
	v2, err := w.svc.Act(context.Background(), w.admin, v.ID, novacron.ActionStart, vm.StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.wait(v2.OperationID)
	counts := map[string]uint64{}
	for _, c := range w.svc.OperationsEnded() {
		counts[c.Action+":"+string(c.Status)] = c.N
	}
	if counts["create:succeeded"] != 1 || counts["start:failed"] != 1 || len(counts) != 2 {
		t.Fatalf("operations ended: %v", counts)
	}
}
