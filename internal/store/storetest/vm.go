package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

// allStates are the states of the VM state machine.
var allStates = []novacron.VMState{
	novacron.StateCreating, novacron.StateStopped, novacron.StateStarting, novacron.StateRunning,
	novacron.StateStopping, novacron.StateRestarting, novacron.StatePaused, novacron.StateMigrating,
	novacron.StateDeleting, novacron.StateFailed,
}

func vmID(v *novacron.VM) string        { return v.ID }
func opID(o *novacron.Operation) string { return o.ID }
func nodeID(n *novacron.Node) string    { return n.ID }

func mustNode(t *testing.T, s Store, name, status string) *novacron.Node {
	t.Helper()
	n := &novacron.Node{Name: name, Address: name + ".example.com:8443", Status: status}
	noErr(t, s.UpsertNode(ctx(t), n), "UpsertNode "+name)
	return n
}

// mustVM creates a small process VM named name in the tenant, changed by
// mod when not nil, and returns it with its creation operation.
func mustVM(t *testing.T, s Store, tenantID, name string, mod func(*novacron.VM)) (*novacron.VM, *novacron.Operation) {
	t.Helper()
	vm := &novacron.VM{Name: name, Driver: novacron.DriverProcess, TenantID: tenantID, CPUs: 1, MemoryMB: 64}
	if mod != nil {
		mod(vm)
	}
	op := &novacron.Operation{Action: string(novacron.ActionCreate)}
	noErr(t, s.CreateVM(ctx(t), vm, op), "CreateVM "+name)
	return vm, op
}

// mustSettle finishes the VM's running operation, moves it to state and
// returns the VM as stored.
func mustSettle(t *testing.T, s Store, vm *novacron.VM, state novacron.VMState) *novacron.VM {
	t.Helper()
	c := ctx(t)
	if vm.OperationID != "" {
		noErr(t, s.FinishOperation(c, vm.OperationID, novacron.OpSucceeded, ""), "FinishOperation")
	}
	noErr(t, s.SetVMState(c, vm.ID, state, "", nil), "SetVMState")
	return mustGetVM(t, s, vm.ID)
}

func mustGetVM(t *testing.T, s Store, id string) *novacron.VM {
	t.Helper()
	v, err := s.GetVM(ctx(t), novacron.AllTenants, id)
	noErr(t, err, "GetVM")
	return v
}

// jsonEqual fails unless got and want hold the same JSON value: PostgreSQL
// rewrites jsonb (key order, spaces), so the bytes may differ.
func jsonEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %q is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: want %q is not JSON: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s = %s, want %s", what, got, want)
	}
}

// wantDetails fails unless err is a *novacron.Error with the details.
func wantDetails(t *testing.T, err error, want map[string]any) {
	t.Helper()
	var e *novacron.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *novacron.Error", err)
	}
	wantEqual(t, "error details", e.Details, want)
}

// countOps counts the operations of a VM (of every VM for "").
func countOps(t *testing.T, s Store, vm string) int {
	t.Helper()
	ops := collect(t, 500, 1, func(cursor string) ([]*novacron.Operation, string, error) {
		return s.ListOperations(ctx(t), novacron.AllTenants, novacron.OperationFilter{VMID: vm, Page: novacron.Page{Limit: 500, Cursor: cursor}})
	}, opID)
	return len(ops)
}

func wantUsage(t *testing.T, s Store, tenant string, want novacron.Usage) {
	t.Helper()
	u, err := s.TenantUsage(ctx(t), tenant)
	noErr(t, err, "TenantUsage")
	wantEqual(t, "TenantUsage", u, want)
}

func testVMCreateGet(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	other := mustTenant(t, s, "other")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	node := mustNode(t, s, "node1", novacron.NodeOnline)

	config := json.RawMessage(`{"kernel": "/boot/vmlinuz",  "args":["quiet", 1],"nested":{"b":true,"a":null}}`)
	vm := &novacron.VM{Name: "web", Driver: novacron.DriverQEMU, DesiredState: novacron.StateRunning,
		NodeID: node.ID, TenantID: tn.ID, OwnerID: u.ID, CPUs: 2, MemoryMB: 2048, DiskGB: 20,
		Config: config, Labels: map[string]string{"tier": "web", "app.kubernetes.io/name": "shop"},
		RestartPolicy: novacron.RestartOnFailure, Autostart: true,
		// Neither is stored: the node's status is read from the node, the
		// operation is op.
		NodeStatus: "bogus", OperationID: missingID}
	op := &novacron.Operation{Action: string(novacron.ActionCreate), UserID: u.ID, Phase: "queued",
		Status: novacron.OpFailed, VMID: missingID, TenantID: other.ID}
	before := time.Now()
	noErr(t, s.CreateVM(c, vm, op), "CreateVM")
	after := time.Now()

	wantID(t, vm.ID)
	wantID(t, op.ID)
	if vm.ID == op.ID {
		t.Errorf("vm and operation share id %s", vm.ID)
	}
	wantStoreTime(t, "vm CreatedAt", vm.CreatedAt, before, after)
	jsonEqual(t, "Config", vm.Config, config)
	want := &novacron.VM{ID: vm.ID, Name: "web", Driver: novacron.DriverQEMU, State: novacron.StateCreating,
		DesiredState: novacron.StateRunning, NodeID: node.ID, NodeStatus: novacron.NodeOnline, TenantID: tn.ID,
		OwnerID: u.ID, CPUs: 2, MemoryMB: 2048, DiskGB: 20, Config: vm.Config,
		Labels: map[string]string{"tier": "web", "app.kubernetes.io/name": "shop"}, RestartPolicy: novacron.RestartOnFailure,
		Autostart: true, OperationID: op.ID, CreatedAt: vm.CreatedAt, UpdatedAt: vm.CreatedAt}
	wantEqual(t, "created vm", vm, want)
	wantOp := &novacron.Operation{ID: op.ID, VMID: vm.ID, TenantID: tn.ID, Action: "create", Status: novacron.OpRunning,
		Phase: "queued", UserID: u.ID, CreatedAt: vm.CreatedAt}
	wantEqual(t, "created operation", op, wantOp)

	for _, scope := range []novacron.Scope{novacron.AllTenants, novacron.TenantScope(tn.ID)} {
		got, err := s.GetVM(c, scope, vm.ID)
		noErr(t, err, "GetVM")
		wantEqual(t, "GetVM", got, want)
		gotOp, err := s.GetOperation(c, scope, op.ID)
		noErr(t, err, "GetOperation")
		wantEqual(t, "GetOperation", gotOp, wantOp)
	}
	_, err := s.GetVM(c, novacron.TenantScope(other.ID), vm.ID)
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetOperation(c, novacron.TenantScope(other.ID), op.ID)
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetVM(c, novacron.AllTenants, missingID)
	wantCode(t, err, novacron.ENotFound)
	_, err = s.GetVM(c, novacron.AllTenants, op.ID)
	wantCode(t, err, novacron.ENotFound)

	// The defaults: no config is {}, no labels an empty map, no node no
	// node status, no restart policy never; a given state and exit code
	// and a chosen (upper-case) id are kept.
	minimal := &novacron.VM{ID: "0189ABCD-0000-7000-8000-0000000000E1", Name: "min", Driver: novacron.DriverContainer,
		State: novacron.StateFailed, StateReason: "image pull failed", ExitCode: ptr(0), TenantID: tn.ID, CPUs: 1, MemoryMB: 1}
	minOp := &novacron.Operation{ID: "0189ABCD-0000-7000-8000-0000000000E2", Action: "import"}
	noErr(t, s.CreateVM(c, minimal, minOp), "CreateVM minimal")
	if minimal.ID != "0189abcd-0000-7000-8000-0000000000e1" || minOp.ID != "0189abcd-0000-7000-8000-0000000000e2" {
		t.Errorf("chosen ids = %s, %s; want them lower-cased", minimal.ID, minOp.ID)
	}
	jsonEqual(t, "default Config", minimal.Config, []byte(`{}`))
	wantMin := &novacron.VM{ID: minimal.ID, Name: "min", Driver: novacron.DriverContainer, State: novacron.StateFailed,
		StateReason: "image pull failed", ExitCode: ptr(0), TenantID: tn.ID, CPUs: 1, MemoryMB: 1, Config: minimal.Config,
		Labels: map[string]string{}, RestartPolicy: novacron.RestartNever, OperationID: minOp.ID,
		CreatedAt: minimal.CreatedAt, UpdatedAt: minimal.CreatedAt}
	wantEqual(t, "minimal vm", minimal, wantMin)
	got, err := s.GetVM(c, novacron.AllTenants, "0189ABCD-0000-7000-8000-0000000000E1")
	noErr(t, err, "GetVM upper-case id")
	wantEqual(t, "GetVM minimal", got, wantMin)
	if got.Labels == nil {
		t.Error("Labels is nil, want an empty map")
	}
	if minOp.UserID != "" || minOp.FinishedAt != nil || minOp.TenantID != tn.ID || minOp.VMID != minimal.ID {
		t.Errorf("minimal operation = %+v", minOp)
	}

	// A taken id, of the VM or of the operation, fails the whole
	// transaction.
	dup := &novacron.VM{ID: vm.ID, Name: "dup", Driver: novacron.DriverProcess, TenantID: tn.ID, CPUs: 1, MemoryMB: 1}
	wantMessage(t, s.CreateVM(c, dup, &novacron.Operation{Action: "create"}), novacron.EConflict, "vm id already exists")
	dup = &novacron.VM{Name: "dup", Driver: novacron.DriverProcess, TenantID: tn.ID, CPUs: 1, MemoryMB: 1}
	dupOp := &novacron.Operation{ID: op.ID, Action: "create"}
	wantMessage(t, s.CreateVM(c, dup, dupOp), novacron.EConflict, "operation id already exists")
	if dup.ID != "" || dup.State != "" || !dup.CreatedAt.IsZero() || dupOp.Status != "" {
		t.Errorf("failed create changed its arguments: %+v %+v", dup, dupOp)
	}
	_, err = s.GetVMByName(c, novacron.TenantScope(tn.ID), "dup")
	wantCode(t, err, novacron.ENotFound)
	wantUsage(t, s, tn.ID, novacron.Usage{VMs: 2, VCPUs: 3, MemoryMB: 2049, DiskGB: 20})
	if n := countOps(t, s, ""); n != 2 {
		t.Errorf("%d operations, want 2", n)
	}
}

func testVMCreateInvalid(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	node := mustNode(t, s, "node1", novacron.NodeOnline)
	valid := func() *novacron.VM {
		return &novacron.VM{Name: "web", Driver: novacron.DriverQEMU, TenantID: tn.ID, CPUs: 1, MemoryMB: 64, NodeID: node.ID}
	}
	for _, tc := range []struct {
		name, field string
		mod         func(*novacron.VM)
	}{
		{"no name", "name", func(v *novacron.VM) { v.Name = "" }},
		{"no driver", "driver", func(v *novacron.VM) { v.Driver = "" }},
		{"bad driver", "driver", func(v *novacron.VM) { v.Driver = "xen" }},
		{"no cpus", "cpus", func(v *novacron.VM) { v.CPUs = 0 }},
		{"negative cpus", "cpus", func(v *novacron.VM) { v.CPUs = -1 }},
		{"no memory", "memory_mb", func(v *novacron.VM) { v.MemoryMB = 0 }},
		{"negative disk", "disk_gb", func(v *novacron.VM) { v.DiskGB = -1 }},
		{"bad state", "state", func(v *novacron.VM) { v.State = "sleeping" }},
		{"bad desired state", "desired_state", func(v *novacron.VM) { v.DesiredState = "up" }},
		{"bad restart policy", "restart_policy", func(v *novacron.VM) { v.RestartPolicy = "sometimes" }},
		{"bad config", "config", func(v *novacron.VM) { v.Config = json.RawMessage(`{"a":`) }},
		{"no tenant", "tenant_id", func(v *novacron.VM) { v.TenantID = "" }},
		{"malformed tenant", "tenant_id", func(v *novacron.VM) { v.TenantID = "acme" }},
		{"missing tenant", "tenant_id", func(v *novacron.VM) { v.TenantID = missingID }},
		{"malformed node", "node_id", func(v *novacron.VM) { v.NodeID = "node1" }},
		{"missing node", "node_id", func(v *novacron.VM) { v.NodeID = missingID }},
		{"malformed image", "image_id", func(v *novacron.VM) { v.ImageID = "debian" }},
		{"missing image", "image_id", func(v *novacron.VM) { v.ImageID = missingID }},
		{"malformed owner", "owner_id", func(v *novacron.VM) { v.OwnerID = "alice" }},
		{"missing owner", "owner_id", func(v *novacron.VM) { v.OwnerID = missingID }},
		{"malformed id", "id", func(v *novacron.VM) { v.ID = "vm-1" }},
	} {
		vm := valid()
		tc.mod(vm)
		err := s.CreateVM(c, vm, &novacron.Operation{Action: "create"})
		if !novacron.IsCode(err, novacron.EInvalid) {
			t.Errorf("%s: CreateVM = %v, want %s", tc.name, err, novacron.EInvalid)
			continue
		}
		var e *novacron.Error
		if errors.As(err, &e) && e.Details["field"] != tc.field {
			t.Errorf("%s: error names field %v, want %s", tc.name, e.Details["field"], tc.field)
		}
	}
	for name, op := range map[string]*novacron.Operation{
		"no operation":       nil,
		"no action":          {},
		"malformed op id":    {ID: "op-1", Action: "create"},
		"malformed op user":  {Action: "create", UserID: "alice"},
		"reserved op min id": {ID: "00000000-0000-0000-0000-000000000000", Action: "create"},
	} {
		err := s.CreateVM(c, valid(), op)
		if !novacron.IsCode(err, novacron.EInvalid) {
			t.Errorf("%s: CreateVM = %v, want %s", name, err, novacron.EInvalid)
		}
	}
	wantUsage(t, s, tn.ID, novacron.Usage{})
	if n := countOps(t, s, ""); n != 0 {
		t.Errorf("invalid creates left %d operations", n)
	}
	// A VM may leave the node empty.
	vm := valid()
	vm.NodeID = ""
	noErr(t, s.CreateVM(c, vm, &novacron.Operation{Action: "create"}), "CreateVM without node")
}

func testVMNameConflict(t *testing.T, s Store) {
	c := ctx(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	first, _ := mustVM(t, s, a.ID, "web", nil)
	dup := &novacron.VM{Name: "web", Driver: novacron.DriverProcess, TenantID: a.ID, CPUs: 1, MemoryMB: 64}
	op := &novacron.Operation{Action: "create"}
	wantMessage(t, s.CreateVM(c, dup, op), novacron.EConflict, "a VM named web already exists")
	if dup.ID != "" || op.ID != "" {
		t.Errorf("failed create set ids %q, %q", dup.ID, op.ID)
	}
	got, err := s.GetVMByName(c, novacron.TenantScope(a.ID), "web")
	noErr(t, err, "GetVMByName")
	wantEqual(t, "vm after conflict", got, first)
	if n := countOps(t, s, ""); n != 1 {
		t.Errorf("%d operations after a refused create, want 1", n)
	}
	// Names are unique per tenant only, and exact.
	mustVM(t, s, b.ID, "web", nil)
	mustVM(t, s, a.ID, "Web", nil)
}

func testVMQuotas(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	tn.Quotas = novacron.Quotas{VMs: ptr[int64](4), VCPUs: ptr[int64](32), MemoryMB: ptr[int64](8192), DiskGB: ptr[int64](100)}
	noErr(t, s.UpdateTenant(c, tn), "UpdateTenant")
	// Another tenant's VMs do not count.
	free := mustTenant(t, s, "free")
	mustVM(t, s, free.ID, "big", func(v *novacron.VM) { v.CPUs, v.MemoryMB, v.DiskGB = 64, 65536, 1000 })

	mustVM(t, s, tn.ID, "a", func(v *novacron.VM) { v.CPUs, v.MemoryMB, v.DiskGB = 16, 2048, 40 })
	mustVM(t, s, tn.ID, "b", func(v *novacron.VM) { v.CPUs, v.MemoryMB, v.DiskGB = 14, 2048, 40 })
	wantUsage(t, s, tn.ID, novacron.Usage{VMs: 2, VCPUs: 30, MemoryMB: 4096, DiskGB: 80})

	create := func(name string, cpus, memory, disk int) error {
		vm := &novacron.VM{Name: name, Driver: novacron.DriverQEMU, TenantID: tn.ID, CPUs: cpus, MemoryMB: memory, DiskGB: disk}
		return s.CreateVM(c, vm, &novacron.Operation{Action: "create"})
	}
	err := create("c", 4, 64, 0)
	wantMessage(t, err, novacron.EQuotaExceeded, "quota vcpus exceeded: 30 used + 4 requested > 32")
	wantDetails(t, err, map[string]any{"quota": "vcpus", "limit": int64(32), "used": int64(30), "requested": int64(4)})
	err = create("c", 2, 4097, 0)
	wantMessage(t, err, novacron.EQuotaExceeded, "quota memory_mb exceeded: 4096 used + 4097 requested > 8192")
	wantDetails(t, err, map[string]any{"quota": "memory_mb", "limit": int64(8192), "used": int64(4096), "requested": int64(4097)})
	err = create("c", 2, 64, 21)
	wantMessage(t, err, novacron.EQuotaExceeded, "quota disk_gb exceeded: 80 used + 21 requested > 100")
	wantDetails(t, err, map[string]any{"quota": "disk_gb", "limit": int64(100), "used": int64(80), "requested": int64(21)})
	// Reaching a limit exactly is allowed.
	noErr(t, create("c", 2, 4096, 20), "CreateVM up to the limits")
	wantUsage(t, s, tn.ID, novacron.Usage{VMs: 3, VCPUs: 32, MemoryMB: 8192, DiskGB: 100})
	err = create("d", 1, 1, 0)
	wantMessage(t, err, novacron.EQuotaExceeded, "quota vcpus exceeded: 32 used + 1 requested > 32")

	// No limit on vcpus, memory and disk any more: the VM count still
	// holds, and is checked first.
	tn.Quotas = novacron.Quotas{VMs: ptr[int64](4)}
	noErr(t, s.UpdateTenant(c, tn), "UpdateTenant")
	noErr(t, create("d", 100, 100000, 1000), "CreateVM without resource quotas")
	err = create("e", 100, 100000, 1000)
	wantMessage(t, err, novacron.EQuotaExceeded, "quota vms exceeded: 4 used + 1 requested > 4")
	wantDetails(t, err, map[string]any{"quota": "vms", "limit": int64(4), "used": int64(4), "requested": int64(1)})
	wantUsage(t, s, tn.ID, novacron.Usage{VMs: 4, VCPUs: 132, MemoryMB: 108192, DiskGB: 1100})
	if n := countOps(t, s, ""); n != 5 {
		t.Errorf("%d operations, want 5: refused creates leave none", n)
	}

	// A zero quota allows nothing.
	none := mustTenant(t, s, "none")
	none.Quotas = novacron.Quotas{VCPUs: ptr[int64](0)}
	noErr(t, s.UpdateTenant(c, none), "UpdateTenant")
	err = s.CreateVM(c, &novacron.VM{Name: "x", Driver: novacron.DriverProcess, TenantID: none.ID, CPUs: 1, MemoryMB: 1},
		&novacron.Operation{Action: "create"})
	wantMessage(t, err, novacron.EQuotaExceeded, "quota vcpus exceeded: 0 used + 1 requested > 0")

	wantUsage(t, s, none.ID, novacron.Usage{})
	_, err = s.TenantUsage(c, missingID)
	wantCode(t, err, novacron.ENotFound)
}

func testVMGetByName(t *testing.T, s Store) {
	c := ctx(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	webA, _ := mustVM(t, s, a.ID, "web", nil)
	webB, _ := mustVM(t, s, b.ID, "web", nil)
	dbA, _ := mustVM(t, s, a.ID, "db", nil)

	for _, tc := range []struct {
		scope novacron.Scope
		name  string
		want  *novacron.VM
	}{
		{novacron.TenantScope(a.ID), "web", webA},
		{novacron.TenantScope(b.ID), "web", webB},
		{novacron.TenantScope(a.ID), "db", dbA},
		// Across every tenant a name used once is found.
		{novacron.AllTenants, "db", dbA},
	} {
		got, err := s.GetVMByName(c, tc.scope, tc.name)
		noErr(t, err, "GetVMByName "+tc.name)
		wantEqual(t, "GetVMByName "+tc.name, got, tc.want)
	}
	_, err := s.GetVMByName(c, novacron.AllTenants, "web")
	wantMessage(t, err, novacron.EConflict, "name is ambiguous; use the id")
	for _, tc := range []struct {
		scope novacron.Scope
		name  string
	}{
		{novacron.TenantScope(b.ID), "db"},
		{novacron.TenantScope(a.ID), "Web"},
		{novacron.TenantScope(a.ID), ""},
		{novacron.AllTenants, ""},
		{novacron.AllTenants, "nope"},
		{novacron.TenantScope(missingID), "web"},
		{novacron.TenantScope("bogus"), "web"},
		{novacron.TenantScope(a.ID), webA.ID},
	} {
		_, err := s.GetVMByName(c, tc.scope, tc.name)
		if !novacron.IsCode(err, novacron.ENotFound) {
			t.Errorf("GetVMByName(%+v, %q) = %v, want %s", tc.scope, tc.name, err, novacron.ENotFound)
		}
	}
}

func testVMList(t *testing.T, s Store) {
	c := ctx(t)
	a := mustTenant(t, s, "a")
	b := mustTenant(t, s, "b")
	n1 := mustNode(t, s, "n1", novacron.NodeOnline)
	n2 := mustNode(t, s, "n2", novacron.NodeMaintenance)
	type spec struct {
		tenant *novacron.Tenant
		name   string
		node   *novacron.Node
		driver string
		state  novacron.VMState
		labels map[string]string
	}
	specs := []spec{
		{a, "web1", n1, novacron.DriverQEMU, novacron.StateRunning, map[string]string{"tier": "web", "env": "prod"}},
		{a, "web2", n2, novacron.DriverQEMU, novacron.StateStopped, map[string]string{"tier": "web", "env": "dev"}},
		{b, "web1", n1, novacron.DriverContainer, novacron.StateRunning, map[string]string{"tier": "web", "env": "prod"}},
		{a, "db", n1, novacron.DriverContainer, novacron.StateRunning, map[string]string{"tier": "db", "env": "prod", `we"ird.key/x`: "a b"}},
		{a, "job", nil, novacron.DriverProcess, novacron.StateCreating, nil},
		{b, "cache", n2, novacron.DriverProcess, novacron.StateFailed, map[string]string{"tier": "cache", "env": "prod"}},
	}
	var all []*novacron.VM
	for _, sp := range specs {
		vm, _ := mustVM(t, s, sp.tenant.ID, sp.name, func(v *novacron.VM) {
			v.Driver, v.State, v.Labels = sp.driver, sp.state, sp.labels
			if sp.node != nil {
				v.NodeID = sp.node.ID
			}
		})
		all = append(all, vm)
	}
	pick := func(is ...int) []string {
		out := []string{}
		for _, i := range is {
			out = append(out, all[i].ID)
		}
		return out
	}
	list := func(scope novacron.Scope, f novacron.VMFilter) func(string) ([]*novacron.VM, string, error) {
		return func(cursor string) ([]*novacron.VM, string, error) {
			f.Cursor = cursor
			return s.ListVMs(c, scope, f)
		}
	}
	scopeA := novacron.TenantScope(a.ID)
	for _, tc := range []struct {
		name  string
		scope novacron.Scope
		f     novacron.VMFilter
		want  []string
	}{
		{"all", novacron.AllTenants, novacron.VMFilter{}, pick(0, 1, 2, 3, 4, 5)},
		{"tenant a", scopeA, novacron.VMFilter{}, pick(0, 1, 3, 4)},
		{"state running", novacron.AllTenants, novacron.VMFilter{State: novacron.StateRunning}, pick(0, 2, 3)},
		{"state running in a", scopeA, novacron.VMFilter{State: novacron.StateRunning}, pick(0, 3)},
		{"state unknown", novacron.AllTenants, novacron.VMFilter{State: "sleeping"}, pick()},
		{"node n2", novacron.AllTenants, novacron.VMFilter{NodeID: n2.ID}, pick(1, 5)},
		{"node missing", novacron.AllTenants, novacron.VMFilter{NodeID: missingID}, pick()},
		{"driver container", novacron.AllTenants, novacron.VMFilter{Driver: novacron.DriverContainer}, pick(2, 3)},
		{"name web1", novacron.AllTenants, novacron.VMFilter{Name: "web1"}, pick(0, 2)},
		{"name prefix", novacron.AllTenants, novacron.VMFilter{Name: "web"}, pick()},
		{"label tier=web", novacron.AllTenants, novacron.VMFilter{Labels: map[string]string{"tier": "web"}}, pick(0, 1, 2)},
		{"labels tier=web env=prod", novacron.AllTenants, novacron.VMFilter{Labels: map[string]string{"tier": "web", "env": "prod"}}, pick(0, 2)},
		{"labels env=prod in a", scopeA, novacron.VMFilter{Labels: map[string]string{"env": "prod"}}, pick(0, 3)},
		{"label odd key", novacron.AllTenants, novacron.VMFilter{Labels: map[string]string{`we"ird.key/x`: "a b"}}, pick(3)},
		{"label odd key, other value", novacron.AllTenants, novacron.VMFilter{Labels: map[string]string{`we"ird.key/x`: "a"}}, pick()},
		{"label value of another key", novacron.AllTenants, novacron.VMFilter{Labels: map[string]string{"tier": "prod"}}, pick()},
		{"label key absent", novacron.AllTenants, novacron.VMFilter{Labels: map[string]string{"owner": ""}}, pick()},
		{"empty labels", novacron.AllTenants, novacron.VMFilter{Labels: map[string]string{}}, pick(0, 1, 2, 3, 4, 5)},
		{"everything", novacron.AllTenants, novacron.VMFilter{State: novacron.StateRunning, NodeID: n1.ID,
			Driver: novacron.DriverQEMU, Name: "web1", Labels: map[string]string{"env": "prod"}}, pick(0)},
		{"missing tenant", novacron.TenantScope(missingID), novacron.VMFilter{}, pick()},
		{"malformed tenant", novacron.TenantScope("bogus"), novacron.VMFilter{}, pick()},
	} {
		wantEqual(t, tc.name, collect(t, 50, 1, list(tc.scope, tc.f), vmID), tc.want)
		wantEqual(t, tc.name+", limit 1", collect(t, 1, max(1, len(tc.want)), list(tc.scope, novacron.VMFilter{
			Page: novacron.Page{Limit: 1}, State: tc.f.State, NodeID: tc.f.NodeID, Driver: tc.f.Driver,
			Name: tc.f.Name, Labels: tc.f.Labels}), vmID), tc.want)
	}
	f := novacron.VMFilter{Page: novacron.Page{Limit: 4}}
	wantEqual(t, "all, limit 4", collect(t, 4, 2, list(novacron.AllTenants, f), vmID), pick(0, 1, 2, 3, 4, 5))

	// The items are whole VMs, with the status of their node.
	items, _, err := s.ListVMs(c, novacron.AllTenants, novacron.VMFilter{})
	noErr(t, err, "ListVMs")
	wantEqual(t, "ListVMs items", items, all)
	if items[1].NodeStatus != novacron.NodeMaintenance || items[4].NodeStatus != "" {
		t.Errorf("node statuses %q and %q, want maintenance and none", items[1].NodeStatus, items[4].NodeStatus)
	}

	for _, bad := range []novacron.VMFilter{
		{Page: novacron.Page{Cursor: "%%%"}},
		{Page: novacron.Page{Cursor: missingID}},
		{NodeID: "n1"},
	} {
		_, _, err := s.ListVMs(c, novacron.AllTenants, bad)
		wantCode(t, err, novacron.EInvalid)
	}
}

func testVMUpdateSpec(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	other := mustTenant(t, s, "other")
	vm, _ := mustVM(t, s, tn.ID, "web", func(v *novacron.VM) {
		v.CPUs, v.MemoryMB, v.DiskGB = 2, 1024, 10
		v.Labels = map[string]string{"tier": "web"}
		v.Config = json.RawMessage(`{"image":"debian"}`)
	})
	mustVM(t, s, tn.ID, "db", nil)
	vm = mustSettle(t, s, vm, novacron.StateStopped)
	resizable := novacron.Transitions[novacron.ActionResize].From
	time.Sleep(2 * time.Millisecond)

	upd := *vm
	upd.Name, upd.CPUs, upd.MemoryMB = "web2", 4, 2048
	upd.Labels = map[string]string{"tier": "frontend", "env": "prod"}
	upd.RestartPolicy, upd.Autostart = novacron.RestartAlways, true
	// Not written by UpdateVMSpec.
	upd.DiskGB, upd.State, upd.Driver, upd.Config, upd.StateReason = 99, novacron.StateRunning, novacron.DriverQEMU, json.RawMessage(`{}`), "x"
	before := time.Now()
	noErr(t, s.UpdateVMSpec(c, novacron.TenantScope(tn.ID), &upd, resizable), "UpdateVMSpec")
	wantStoreTime(t, "UpdatedAt", upd.UpdatedAt, before, time.Now())
	want := *vm
	want.Name, want.CPUs, want.MemoryMB = "web2", 4, 2048
	want.Labels = map[string]string{"tier": "frontend", "env": "prod"}
	want.RestartPolicy, want.Autostart, want.UpdatedAt = novacron.RestartAlways, true, upd.UpdatedAt
	wantEqual(t, "updated vm", &upd, &want)
	if !upd.UpdatedAt.After(vm.UpdatedAt) {
		t.Errorf("UpdatedAt %v not after %v", upd.UpdatedAt, vm.UpdatedAt)
	}
	wantEqual(t, "GetVM after update", mustGetVM(t, s, vm.ID), &want)
	wantUsage(t, s, tn.ID, novacron.Usage{VMs: 2, VCPUs: 5, MemoryMB: 2112, DiskGB: 10})

	// Keeping one's own name is no conflict; nil labels are stored empty.
	upd.Labels = nil
	noErr(t, s.UpdateVMSpec(c, novacron.AllTenants, &upd, resizable), "UpdateVMSpec same name")
	wantEqual(t, "labels", upd.Labels, map[string]string{})

	refuse := func(what string, scope novacron.Scope, mod func(*novacron.VM), states []novacron.VMState, code, msg string) {
		t.Helper()
		v := *mustGetVM(t, s, vm.ID)
		mod(&v)
		err := s.UpdateVMSpec(c, scope, &v, states)
		if msg != "" {
			wantMessage(t, err, code, msg)
		} else {
			wantCode(t, err, code)
		}
	}
	stored := mustGetVM(t, s, vm.ID)
	same := func(*novacron.VM) {}
	refuse("taken name", novacron.AllTenants, func(v *novacron.VM) { v.Name = "db" }, resizable, novacron.EConflict, "a VM named db already exists")
	refuse("other tenant", novacron.TenantScope(other.ID), same, resizable, novacron.ENotFound, "")
	refuse("malformed scope", novacron.TenantScope("bogus"), same, resizable, novacron.ENotFound, "")
	refuse("missing", novacron.AllTenants, func(v *novacron.VM) { v.ID = missingID }, resizable, novacron.ENotFound, "")
	refuse("no name", novacron.AllTenants, func(v *novacron.VM) { v.Name = "" }, resizable, novacron.EInvalid, "")
	refuse("no cpus", novacron.AllTenants, func(v *novacron.VM) { v.CPUs = 0 }, resizable, novacron.EInvalid, "")
	refuse("no memory", novacron.AllTenants, func(v *novacron.VM) { v.MemoryMB = -5 }, resizable, novacron.EInvalid, "")
	refuse("bad policy", novacron.AllTenants, func(v *novacron.VM) { v.RestartPolicy = "" }, resizable, novacron.EInvalid, "")
	refuse("wrong state", novacron.AllTenants, same, []novacron.VMState{novacron.StateRunning}, novacron.EInvalidState, "vm is stopped")
	refuse("no states", novacron.AllTenants, same, nil, novacron.EInvalidState, "vm is stopped")
	wantEqual(t, "vm after refused updates", mustGetVM(t, s, vm.ID), stored)

	// Growth is checked against the quotas; shrinking is not, even over a
	// lowered quota.
	tn.Quotas = novacron.Quotas{VCPUs: ptr[int64](6), MemoryMB: ptr[int64](2200)}
	noErr(t, s.UpdateTenant(c, tn), "UpdateTenant")
	err := s.UpdateVMSpec(c, novacron.AllTenants, &novacron.VM{ID: vm.ID, Name: "web2", CPUs: 6, MemoryMB: 2048,
		RestartPolicy: novacron.RestartNever}, resizable)
	wantMessage(t, err, novacron.EQuotaExceeded, "quota vcpus exceeded: 5 used + 2 requested > 6")
	wantDetails(t, err, map[string]any{"quota": "vcpus", "limit": int64(6), "used": int64(5), "requested": int64(2)})
	err = s.UpdateVMSpec(c, novacron.AllTenants, &novacron.VM{ID: vm.ID, Name: "web2", CPUs: 1, MemoryMB: 2200,
		RestartPolicy: novacron.RestartNever}, resizable)
	wantMessage(t, err, novacron.EQuotaExceeded, "quota memory_mb exceeded: 2112 used + 152 requested > 2200")
	noErr(t, s.UpdateVMSpec(c, novacron.AllTenants, &novacron.VM{ID: vm.ID, Name: "web2", CPUs: 5, MemoryMB: 2136,
		RestartPolicy: novacron.RestartNever}, resizable), "UpdateVMSpec up to the limits")
	tn.Quotas = novacron.Quotas{VCPUs: ptr[int64](1), MemoryMB: ptr[int64](1)}
	noErr(t, s.UpdateTenant(c, tn), "UpdateTenant")
	shrunk := &novacron.VM{ID: vm.ID, Name: "web3", CPUs: 2, MemoryMB: 2136, RestartPolicy: novacron.RestartNever}
	noErr(t, s.UpdateVMSpec(c, novacron.AllTenants, shrunk, resizable), "UpdateVMSpec shrinking over quota")
	if shrunk.CPUs != 2 || shrunk.Name != "web3" || shrunk.DiskGB != 10 {
		t.Errorf("shrunk vm = %+v", shrunk)
	}
	wantUsage(t, s, tn.ID, novacron.Usage{VMs: 2, VCPUs: 3, MemoryMB: 2200, DiskGB: 10})
}

func testVMBeginOperation(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	vm, create := mustVM(t, s, tn.ID, "web", nil)
	start := novacron.Transitions[novacron.ActionStart]

	// The creation operation runs: the VM is busy.
	busy := &novacron.Operation{Action: "start"}
	err := s.BeginOperation(c, vm, []novacron.VMState{novacron.StateCreating}, novacron.StateStarting, novacron.StateRunning, busy)
	wantMessage(t, err, novacron.EInvalidState, "vm is busy with operation "+create.ID)
	if busy.ID != "" || busy.Status != "" {
		t.Errorf("refused operation changed: %+v", busy)
	}
	err = s.BeginOperation(c, vm, start.From, start.During, start.Desired, busy)
	wantMessage(t, err, novacron.EInvalidState, "vm is creating")

	noErr(t, s.FinishOperation(c, create.ID, novacron.OpSucceeded, ""), "FinishOperation")
	noErr(t, s.SetVMState(c, vm.ID, novacron.StateStopped, "exited", ptr(3)), "SetVMState")
	noErr(t, s.SetVMDesiredState(c, vm.ID, novacron.StateStopped), "SetVMDesiredState")
	vm = mustGetVM(t, s, vm.ID)
	if vm.OperationID != "" {
		t.Fatalf("OperationID = %q after the operation finished", vm.OperationID)
	}
	time.Sleep(2 * time.Millisecond)

	op := &novacron.Operation{Action: string(novacron.ActionStart), UserID: u.ID, Status: novacron.OpFailed, VMID: missingID}
	before := time.Now()
	noErr(t, s.BeginOperation(c, vm, start.From, start.During, start.Desired, op), "BeginOperation")
	wantID(t, op.ID)
	wantStoreTime(t, "op CreatedAt", op.CreatedAt, before, time.Now())
	wantEqual(t, "operation", op, &novacron.Operation{ID: op.ID, VMID: vm.ID, TenantID: tn.ID, Action: "start",
		Status: novacron.OpRunning, UserID: u.ID, CreatedAt: op.CreatedAt})
	// The reason and exit code of the last stop stay until the service
	// clears them.
	if vm.State != novacron.StateStarting || vm.DesiredState != novacron.StateRunning || vm.OperationID != op.ID ||
		vm.StateReason != "exited" || vm.ExitCode == nil || *vm.ExitCode != 3 || !vm.UpdatedAt.Equal(op.CreatedAt) {
		t.Errorf("vm after BeginOperation = %+v", vm)
	}
	wantEqual(t, "GetVM", mustGetVM(t, s, vm.ID), vm)
	got, err := s.GetOperation(c, novacron.AllTenants, op.ID)
	noErr(t, err, "GetOperation")
	wantEqual(t, "GetOperation", got, op)

	// While it runs, nothing else begins, even from the state it shows.
	err = s.BeginOperation(c, vm, []novacron.VMState{novacron.StateStarting}, novacron.StateStopping, "", &novacron.Operation{Action: "stop"})
	wantMessage(t, err, novacron.EInvalidState, "vm is busy with operation "+op.ID)
	err = s.BeginOperation(c, vm, start.From, start.During, start.Desired, &novacron.Operation{Action: "start"})
	wantMessage(t, err, novacron.EInvalidState, "vm is starting")

	noErr(t, s.FinishOperation(c, op.ID, novacron.OpSucceeded, ""), "FinishOperation")
	noErr(t, s.SetVMState(c, vm.ID, novacron.StateRunning, "", nil), "SetVMState")
	// A pause keeps the state and an empty desired state keeps the desired
	// one; the VM is still busy until the pause finishes.
	pause := novacron.Transitions[novacron.ActionPause]
	p := &novacron.Operation{Action: "pause"}
	noErr(t, s.BeginOperation(c, vm, pause.From, pause.During, "", p), "BeginOperation pause")
	if vm.State != novacron.StateRunning || vm.DesiredState != novacron.StateRunning || vm.OperationID != p.ID {
		t.Errorf("vm after pause began = %+v", vm)
	}
	err = s.BeginOperation(c, vm, pause.From, pause.During, "", &novacron.Operation{Action: "pause"})
	wantMessage(t, err, novacron.EInvalidState, "vm is busy with operation "+p.ID)

	ops := countOps(t, s, vm.ID)
	for name, call := range map[string]func() error{
		"no from states": func() error {
			return s.BeginOperation(c, vm, nil, novacron.StateStopping, "", &novacron.Operation{Action: "stop"})
		},
		"missing vm": func() error {
			return s.BeginOperation(c, &novacron.VM{ID: missingID}, pause.From, pause.During, "", &novacron.Operation{Action: "pause"})
		},
		"bad state": func() error {
			return s.BeginOperation(c, vm, pause.From, "sleeping", "", &novacron.Operation{Action: "pause"})
		},
		"bad desired": func() error {
			return s.BeginOperation(c, vm, pause.From, pause.During, "up", &novacron.Operation{Action: "pause"})
		},
		"no operation": func() error { return s.BeginOperation(c, vm, pause.From, pause.During, "", nil) },
		"no action":    func() error { return s.BeginOperation(c, vm, pause.From, pause.During, "", &novacron.Operation{}) },
		"taken op id": func() error {
			noErr(t, s.FinishOperation(c, p.ID, novacron.OpSucceeded, ""), "FinishOperation")
			return s.BeginOperation(c, vm, pause.From, pause.During, "", &novacron.Operation{ID: p.ID, Action: "pause"})
		},
	} {
		err := call()
		want := map[string]string{"no from states": novacron.EInvalidState, "missing vm": novacron.ENotFound,
			"taken op id": novacron.EConflict}[name]
		if want == "" {
			want = novacron.EInvalid
		}
		if !novacron.IsCode(err, want) {
			t.Errorf("%s: BeginOperation = %v, want %s", name, err, want)
		}
	}
	if n := countOps(t, s, vm.ID); n != ops {
		t.Errorf("%d operations after refused begins, want %d", n, ops)
	}
	// The refused begin with a taken operation id left the VM alone.
	after := mustGetVM(t, s, vm.ID)
	if after.OperationID != "" || after.State != novacron.StateRunning {
		t.Errorf("vm after a refused begin = %+v", after)
	}
}

func testVMSetState(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	vm, _ := mustVM(t, s, tn.ID, "web", nil)
	time.Sleep(2 * time.Millisecond)
	before := time.Now()
	noErr(t, s.SetVMState(c, vm.ID, novacron.StateFailed, "guest crashed", ptr(139)), "SetVMState")
	got := mustGetVM(t, s, vm.ID)
	wantStoreTime(t, "UpdatedAt", got.UpdatedAt, before, time.Now())
	want := *vm
	want.State, want.StateReason, want.ExitCode, want.UpdatedAt = novacron.StateFailed, "guest crashed", ptr(139), got.UpdatedAt
	wantEqual(t, "vm after SetVMState", got, &want)

	noErr(t, s.SetVMState(c, vm.ID, novacron.StateRunning, "", nil), "SetVMState")
	got = mustGetVM(t, s, vm.ID)
	if got.State != novacron.StateRunning || got.StateReason != "" || got.ExitCode != nil {
		t.Errorf("vm after SetVMState running = %+v", got)
	}
	// The operation is the service's to finish.
	if got.OperationID != vm.OperationID {
		t.Errorf("OperationID = %q, want %q", got.OperationID, vm.OperationID)
	}

	noErr(t, s.SetVMDesiredState(c, vm.ID, novacron.StateStopped), "SetVMDesiredState")
	if got = mustGetVM(t, s, vm.ID); got.DesiredState != novacron.StateStopped || got.State != novacron.StateRunning {
		t.Errorf("vm after SetVMDesiredState = %+v", got)
	}
	noErr(t, s.SetVMDesiredState(c, vm.ID, ""), "SetVMDesiredState empty")
	if got = mustGetVM(t, s, vm.ID); got.DesiredState != "" {
		t.Errorf("DesiredState = %q, want none", got.DesiredState)
	}

	wantCode(t, s.SetVMState(c, vm.ID, "sleeping", "", nil), novacron.EInvalid)
	wantCode(t, s.SetVMState(c, missingID, novacron.StateRunning, "", nil), novacron.ENotFound)
	wantCode(t, s.SetVMDesiredState(c, vm.ID, "up"), novacron.EInvalid)
	wantCode(t, s.SetVMDesiredState(c, missingID, novacron.StateRunning), novacron.ENotFound)
	wantEqual(t, "vm after refused writes", mustGetVM(t, s, vm.ID), got)
}

func testVMDelete(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	u := mustUser(t, s, tn.ID, "alice", novacron.RoleUser)
	vm, op := mustVM(t, s, tn.ID, "web", func(v *novacron.VM) { v.OwnerID, v.CPUs = u.ID, 2 })
	keep, _ := mustVM(t, s, tn.ID, "db", func(v *novacron.VM) { v.OwnerID = u.ID })
	wantUsage(t, s, tn.ID, novacron.Usage{VMs: 2, VCPUs: 3, MemoryMB: 128})

	// The tenant cannot go while it has VMs, even without users.
	noErr(t, s.DeleteUser(c, novacron.AllTenants, u.ID), "DeleteUser owning VMs")
	if got := mustGetVM(t, s, vm.ID); got.OwnerID != "" {
		t.Errorf("OwnerID = %q after the owner was deleted, want none", got.OwnerID)
	}
	wantMessage(t, s.DeleteTenant(c, tn.ID), novacron.EConflict, "tenant still has VMs")

	noErr(t, s.DeleteVM(c, vm.ID), "DeleteVM")
	_, err := s.GetVM(c, novacron.AllTenants, vm.ID)
	wantCode(t, err, novacron.ENotFound)
	wantCode(t, s.DeleteVM(c, vm.ID), novacron.ENotFound)
	wantCode(t, s.DeleteVM(c, missingID), novacron.ENotFound)
	mustGetVM(t, s, keep.ID)
	wantUsage(t, s, tn.ID, novacron.Usage{VMs: 1, VCPUs: 1, MemoryMB: 64})
	// Operations outlive their VM.
	got, err := s.GetOperation(c, novacron.TenantScope(tn.ID), op.ID)
	noErr(t, err, "GetOperation of a deleted VM")
	if got.VMID != vm.ID {
		t.Errorf("operation VMID = %q, want %q", got.VMID, vm.ID)
	}
	// The name is free again.
	mustVM(t, s, tn.ID, "web", nil)

	vms, _, err := s.ListVMs(c, novacron.TenantScope(tn.ID), novacron.VMFilter{})
	noErr(t, err, "ListVMs")
	for _, v := range vms {
		noErr(t, s.DeleteVM(c, v.ID), "DeleteVM")
	}
	noErr(t, s.DeleteTenant(c, tn.ID), "DeleteTenant without VMs")
}

func testVMNodeStatus(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	node := mustNode(t, s, "node1", novacron.NodeOnline)
	vm, _ := mustVM(t, s, tn.ID, "web", func(v *novacron.VM) { v.NodeID = node.ID })
	if vm.NodeStatus != novacron.NodeOnline {
		t.Fatalf("NodeStatus = %q, want online", vm.NodeStatus)
	}
	node.Status = novacron.NodeOffline
	noErr(t, s.UpsertNode(c, node), "UpsertNode")
	for name, get := range map[string]func() (*novacron.VM, error){
		"GetVM":       func() (*novacron.VM, error) { return s.GetVM(c, novacron.AllTenants, vm.ID) },
		"GetVMByName": func() (*novacron.VM, error) { return s.GetVMByName(c, novacron.TenantScope(tn.ID), "web") },
		"ListVMs": func() (*novacron.VM, error) {
			vms, _, err := s.ListVMs(c, novacron.AllTenants, novacron.VMFilter{NodeID: node.ID})
			if err != nil || len(vms) != 1 {
				return nil, fmt.Errorf("ListVMs = %d vms, %v", len(vms), err)
			}
			return vms[0], nil
		},
	} {
		got, err := get()
		noErr(t, err, name)
		if got.NodeStatus != novacron.NodeOffline {
			t.Errorf("%s: NodeStatus = %q, want offline", name, got.NodeStatus)
		}
	}
	_, err := s.GetNode(c, node.ID)
	noErr(t, err, "GetNode")
}

// testVMObserveState: an observed state is written only while the VM is
// as it was read (state and updated_at) with no operation running.
func testVMObserveState(t *testing.T, s Store) {
	c := ctx(t)
	tn := mustTenant(t, s, "acme")
	vm, create := mustVM(t, s, tn.ID, "web", nil)
	// The create operation runs: nothing is observed.
	ok, err := s.ObserveVMState(c, mustGetVM(t, s, vm.ID), novacron.StateFailed, "gone", nil)
	noErr(t, err, "ObserveVMState")
	if ok {
		t.Fatal("observed a state while an operation runs")
	}
	noErr(t, s.FinishOperation(c, create.ID, novacron.OpSucceeded, ""), "FinishOperation")
	noErr(t, s.SetVMState(c, vm.ID, novacron.StateRunning, "", nil), "SetVMState")
	seen := mustGetVM(t, s, vm.ID)
	// The VM changed since it was read (a restart that ended running
	// again): nothing is written.
	time.Sleep(2 * time.Millisecond)
	noErr(t, s.SetVMState(c, vm.ID, novacron.StateRunning, "", nil), "SetVMState")
	ok, err = s.ObserveVMState(c, seen, novacron.StateFailed, "gone", nil)
	noErr(t, err, "ObserveVMState")
	if ok || mustGetVM(t, s, vm.ID).State != novacron.StateRunning {
		t.Fatal("observed a state over a newer one")
	}
	seen = mustGetVM(t, s, vm.ID)
	ok, err = s.ObserveVMState(c, seen, novacron.StateFailed, "exited with code 3", ptr(3))
	noErr(t, err, "ObserveVMState")
	got := mustGetVM(t, s, vm.ID)
	if !ok || got.State != novacron.StateFailed || got.StateReason != "exited with code 3" || got.ExitCode == nil || *got.ExitCode != 3 {
		t.Fatalf("after ObserveVMState: ok=%v %+v", ok, got)
	}
	// The same stale read does not write twice.
	if ok, _ := s.ObserveVMState(c, seen, novacron.StateStopped, "", nil); ok {
		t.Fatal("a stale read wrote")
	}
	if _, err := s.ObserveVMState(c, &novacron.VM{ID: "nope"}, novacron.StateFailed, "", nil); !novacron.IsCode(err, novacron.ENotFound) {
		t.Fatalf("malformed id: %v", err)
	}
}
