package vm_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/agent"
	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/fake"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/nodeclient"
	"github.com/novacron/novacron/internal/store/sqlite"
	"github.com/novacron/novacron/internal/vm"
)

// world is a control plane over a real SQLite store and a node whose
// "process" driver is the fake one: the logic above drivers, tested.
type world struct {
	t      *testing.T
	store  *sqlite.Store
	drv    *fake.Driver
	dir    string
	svc    *vm.Service
	agent  *agent.Agent
	admin  *novacron.Actor
	tenant *novacron.Tenant
	bus    *events.Bus
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ten := &novacron.Tenant{Name: "default"}
	if err := st.CreateTenant(context.Background(), ten); err != nil {
		t.Fatal(err)
	}
	u := &novacron.User{Username: "admin", Email: "a@example.com", Role: novacron.RoleAdmin, TenantID: ten.ID, PasswordHash: "x"}
	if err := st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, store: st, drv: fake.New("process"), dir: dir, tenant: ten, bus: events.NewBus(),
		admin: &novacron.Actor{UserID: u.ID, Username: u.Username, TenantID: ten.ID, Role: novacron.RoleAdmin}}
	w.open()
	return w
}

// open starts (or restarts) the service and its agent over the same store,
// driver and directory: a restart of the control plane.
func (w *world) open() {
	w.t.Helper()
	ag, err := agent.New(agent.Config{Dir: filepath.Join(w.dir, "agent"), NodeName: "node1", Drivers: []driver.Driver{w.drv}})
	if err != nil {
		w.t.Fatal(err)
	}
	w.agent = ag
	w.svc = vm.New(w.store, vm.Config{ReconcileInterval: 50 * time.Millisecond, StopTimeout: time.Second, Events: w.bus}, nil)
	if _, err := w.svc.AddNode(context.Background(), ag, "local"); err != nil {
		w.t.Fatal(err)
	}
	svc := w.svc
	w.t.Cleanup(svc.Close)
}

func (w *world) create(name string, cfg fake.Config, mod func(*vm.CreateRequest)) *novacron.VM {
	w.t.Helper()
	raw, _ := json.Marshal(cfg)
	req := vm.CreateRequest{Name: name, Driver: "process", CPUs: 1, MemoryMB: 64, Config: raw}
	if mod != nil {
		mod(&req)
	}
	v, err := w.svc.Create(context.Background(), w.admin, req)
	if err != nil {
		w.t.Fatalf("create %s: %v", name, err)
	}
	w.wait(v.OperationID)
	return v
}

func (w *world) wait(opID string) *novacron.Operation {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op, err := w.svc.Wait(ctx, novacron.AllTenants, opID)
	if err != nil || op.Status == novacron.OpRunning {
		w.t.Fatalf("operation %s: %+v %v", opID, op, err)
	}
	return op
}

func (w *world) get(id string) *novacron.VM {
	w.t.Helper()
	v, err := w.store.GetVM(context.Background(), novacron.AllTenants, id)
	if err != nil {
		w.t.Fatalf("get %s: %v", id, err)
	}
	return v
}

func (w *world) eventually(what string, ok func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			w.t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFailedCreateLeavesNothing(t *testing.T) {
	w := newWorld(t)
	w.drv.FailNext(fake.MethodCreate, errors.New("disk full"))
	v, err := w.svc.Create(context.Background(), w.admin, vm.CreateRequest{Name: "web", Driver: "process", CPUs: 1, MemoryMB: 64, Config: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	op := w.wait(v.OperationID)
	if op.Status != novacron.OpFailed || !strings.Contains(op.Error, "disk full") {
		t.Fatalf("operation %+v", op)
	}
	if _, err := w.store.GetVM(context.Background(), novacron.AllTenants, v.ID); !novacron.IsCode(err, novacron.ENotFound) {
		t.Fatalf("the VM of a failed create remains: %v", err)
	}
	if g, _ := w.agent.ListGuests(context.Background()); len(g) != 0 {
		t.Fatalf("guests left: %+v", g)
	}
	// The failure is in the audit log too.
	entries, _, err := w.store.ListAudit(context.Background(), novacron.AllTenants, novacron.AuditFilter{Action: "vm.create"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Success || entries[0].ResourceID != v.ID || entries[0].UserID != w.admin.UserID ||
		entries[0].TenantID != w.tenant.ID || !strings.Contains(entries[0].Error, "disk full") {
		t.Fatalf("audit of the failed create: %+v", entries)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "agent", "guests", v.ID+".json")); !os.IsNotExist(err) {
		t.Fatalf("the agent kept a record: %v", err)
	}
}

func TestExitsAndRestartPolicies(t *testing.T) {
	w := newWorld(t)
	start := func(r *vm.CreateRequest) { r.Start = true }
	never := w.create("never", fake.Config{}, start)
	onFail := w.create("onfail", fake.Config{}, func(r *vm.CreateRequest) { r.Start = true; r.RestartPolicy = novacron.RestartOnFailure })
	always := w.create("always", fake.Config{}, func(r *vm.CreateRequest) { r.Start = true; r.RestartPolicy = novacron.RestartAlways })
	clean := w.create("clean", fake.Config{}, func(r *vm.CreateRequest) { r.Start = true; r.RestartPolicy = novacron.RestartOnFailure })

	for _, id := range []string{never.ID, onFail.ID, always.ID} {
		if err := w.drv.Exit(id, 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.drv.Exit(clean.ID, 0); err != nil {
		t.Fatal(err)
	}
	w.eventually("never failed with code 3", func() bool {
		v := w.get(never.ID)
		return v.State == novacron.StateFailed && v.ExitCode != nil && *v.ExitCode == 3
	})
	w.eventually("clean exit stopped, not restarted by on-failure", func() bool {
		v := w.get(clean.ID)
		return v.State == novacron.StateStopped && v.ExitCode != nil && *v.ExitCode == 0
	})
	for _, id := range []string{onFail.ID, always.ID} {
		w.eventually("restarted by its policy", func() bool {
			return w.drv.Calls(fake.MethodStart) >= 5 && w.get(id).State == novacron.StateRunning
		})
	}
	// A crash loop is given up after RestartLimit restarts.
	for i := 0; i < 10 && !strings.Contains(w.get(always.ID).StateReason, "not restarted"); i++ {
		w.eventually("running again", func() bool { return w.get(always.ID).State == novacron.StateRunning })
		n := w.drv.Calls(fake.MethodStart)
		if err := w.drv.Exit(always.ID, 1); err != nil {
			t.Fatal(err)
		}
		w.eventually("restarted or given up", func() bool {
			return w.drv.Calls(fake.MethodStart) > n || strings.Contains(w.get(always.ID).StateReason, "not restarted")
		})
	}
	w.eventually("crash loop given up", func() bool {
		v := w.get(always.ID)
		return v.State == novacron.StateFailed && strings.Contains(v.StateReason, "not restarted")
	})
}

func TestRestartSettlesInterruptedOperations(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	running := w.create("running", fake.Config{}, func(r *vm.CreateRequest) { r.Start = true })
	stopped := w.create("stopped", fake.Config{}, nil)
	doomed := w.create("doomed", fake.Config{}, func(r *vm.CreateRequest) { r.Start = true })

	// A previous control plane recorded operations and died before doing
	// them.
	begin := func(v *novacron.VM, a novacron.Action) *novacron.Operation {
		tr := novacron.Transitions[a]
		op := &novacron.Operation{Action: string(a), UserID: w.admin.UserID}
		cur := w.get(v.ID)
		if err := w.store.BeginOperation(ctx, cur, tr.From, tr.During, tr.Desired, op); err != nil {
			t.Fatal(err)
		}
		return op
	}
	stopOp := begin(running, novacron.ActionStop)   // never stopped: the guest still runs
	startOp := begin(stopped, novacron.ActionStart) // never started
	delOp := begin(doomed, novacron.ActionDelete)   // the delete is carried on
	w.svc.Close()
	w.open()

	op := func(id string) *novacron.Operation {
		o, err := w.store.GetOperation(ctx, novacron.AllTenants, id)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if o := op(stopOp.ID); o.Status != novacron.OpFailed || !strings.Contains(o.Error, "running") {
		t.Errorf("interrupted stop: %+v", o)
	}
	if v := w.get(running.ID); v.State != novacron.StateRunning || v.OperationID != "" {
		t.Errorf("VM of the interrupted stop: %+v", v)
	}
	if o := op(startOp.ID); o.Status != novacron.OpFailed {
		t.Errorf("interrupted start: %+v", o)
	}
	if v := w.get(stopped.ID); v.State != novacron.StateStopped || v.OperationID != "" {
		t.Errorf("VM of the interrupted start: %+v", v)
	}
	w.wait(delOp.ID)
	if o := op(delOp.ID); o.Status != novacron.OpSucceeded {
		t.Errorf("interrupted delete: %+v", o)
	}
	if _, err := w.store.GetVM(ctx, novacron.AllTenants, doomed.ID); !novacron.IsCode(err, novacron.ENotFound) {
		t.Errorf("the deleted VM remains: %v", err)
	}
	if _, err := w.drv.Status(ctx, doomed.ID); !novacron.IsCode(err, novacron.ENotFound) {
		t.Errorf("the deleted VM's guest remains: %v", err)
	}
	// The settled VMs take new actions.
	v, err := w.svc.Act(ctx, w.admin, running.ID, novacron.ActionStop, vm.StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o := w.wait(v.OperationID); o.Status != novacron.OpSucceeded {
		t.Fatalf("stop after the restart: %+v", o)
	}
}

func TestOrphansAreReportedNotTouched(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	spec := nodeclient.GuestSpec{Driver: "process", Spec: driver.Spec{ID: "0190a0a0-0000-7000-8000-000000000001", Name: "stray",
		CPUs: 1, MemoryMB: 16, Config: json.RawMessage(`{}`)}}
	if err := w.agent.CreateGuest(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := w.agent.StartGuest(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // several reconcile rounds
	st, err := w.agent.GuestStatus(ctx, spec.ID)
	if err != nil || st.State != driver.GuestRunning {
		t.Fatalf("orphan: %+v %v", st, err)
	}
	if w.drv.Calls(fake.MethodStop) != 0 || w.drv.Calls(fake.MethodDelete) != 0 {
		t.Fatal("the control plane touched a guest it does not know")
	}
}

func TestAutostartOnFreshBoot(t *testing.T) {
	w := newWorld(t)
	auto := w.create("auto", fake.Config{}, func(r *vm.CreateRequest) { r.Autostart = true })
	manual := w.create("manual", fake.Config{}, nil)
	// A restart of the control plane alone starts nothing.
	w.svc.Close()
	w.open()
	time.Sleep(200 * time.Millisecond)
	if w.get(auto.ID).State != novacron.StateStopped {
		t.Fatal("an autostart VM started without a boot of its node")
	}
	// The host rebooted: the kernel's boot id changed.
	if err := os.WriteFile(filepath.Join(w.dir, "agent", "boot_id"), []byte("previous-boot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.svc.Close()
	w.open()
	w.eventually("autostart VM running", func() bool { return w.get(auto.ID).State == novacron.StateRunning })
	if w.get(manual.ID).State != novacron.StateStopped {
		t.Fatal("a VM without autostart started on boot")
	}
}

func TestStateMachineRefusals(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	v := w.create("web", fake.Config{}, nil)
	for _, a := range []novacron.Action{novacron.ActionStop, novacron.ActionPause, novacron.ActionResume, novacron.ActionRestart} {
		if _, err := w.svc.Act(ctx, w.admin, v.ID, a, vm.StopOptions{}); !novacron.IsCode(err, novacron.EInvalidState) {
			t.Errorf("%s of a stopped VM: %v", a, err)
		}
	}
	w.drv.SetDelay(fake.MethodStart, 300*time.Millisecond)
	s, err := w.svc.Act(ctx, w.admin, v.ID, novacron.ActionStart, vm.StopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// While it starts, nothing else goes.
	for _, a := range []novacron.Action{novacron.ActionStart, novacron.ActionStop, novacron.ActionPause} {
		if _, err := w.svc.Act(ctx, w.admin, v.ID, a, vm.StopOptions{}); !novacron.IsCode(err, novacron.EInvalidState) {
			t.Errorf("%s while starting: %v", a, err)
		}
	}
	if _, err := w.svc.Delete(ctx, w.admin, v.ID); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Errorf("delete while starting: %v", err)
	}
	w.wait(s.OperationID)
	if _, err := w.svc.Update(ctx, w.admin, v.ID, vm.UpdateRequest{CPUs: ptr(4)}); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Errorf("resize while running: %v", err)
	}
	if _, err := w.svc.Update(ctx, w.admin, v.ID, vm.UpdateRequest{Name: ptr("renamed")}); err != nil {
		t.Errorf("rename while running: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
