package alert

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/store/sqlite"
)

// clock is the engine's fake time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func (c *clock) at(d time.Duration) time.Time {
	return time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC).Add(d)
}

type fixture struct {
	t       *testing.T
	ctx     context.Context
	st      *sqlite.Store
	e       *Engine
	clk     *clock
	sub     *events.Subscription
	tenant  *novacron.Tenant
	other   *novacron.Tenant
	node    *novacron.Node
	admin   *novacron.Actor
	op      *novacron.Actor
	otherOp *novacron.Actor
}

// newFixture is an engine over a fresh SQLite database with its default
// rules, driven by hand: no goroutine runs, the test calls observe and
// tick at the times it sets.
func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, ctx: ctx, st: st, clk: &clock{}}
	f.clk.t = f.clk.at(0)
	f.tenant = &novacron.Tenant{Name: "acme"}
	f.other = &novacron.Tenant{Name: "other"}
	for _, tn := range []*novacron.Tenant{f.tenant, f.other} {
		if err := st.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
	}
	f.node = &novacron.Node{Name: "n1", Status: novacron.NodeOnline, Labels: map[string]string{"zone": "a"}}
	if err := st.UpsertNode(ctx, f.node); err != nil {
		t.Fatal(err)
	}
	f.admin = &novacron.Actor{UserID: "a", Username: "admin", TenantID: f.tenant.ID, Role: novacron.RoleAdmin}
	f.op = &novacron.Actor{UserID: "o", Username: "olga", TenantID: f.tenant.ID, Role: novacron.RoleOperator}
	f.otherOp = &novacron.Actor{UserID: "p", Username: "paul", TenantID: f.other.ID, Role: novacron.RoleOperator}
	bus := events.NewBus()
	f.sub = bus.Subscribe(1000, nil)
	cfg := Config{Now: f.clk.now, ResolveAfter: time.Minute, StaleAfter: 3 * time.Minute, WebhookBackoff: time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	f.e = New(st, cfg, bus, slog.New(slog.DiscardHandler))
	if err := EnsureDefaultRules(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := f.e.load(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func pf(v float64) *float64 { return &v }

func (f *fixture) host(cpu *float64) {
	f.e.observe(f.ctx, batch{hosts: []novacron.HostSample{{NodeID: f.node.ID, HostPoint: novacron.HostPoint{TS: f.clk.t, CPUUsage: cpu}}}})
}

func (f *fixture) vmSample(vm *novacron.VM, mem *float64) {
	f.e.observe(f.ctx, batch{vms: []novacron.VMSample{{VMID: vm.ID, TenantID: vm.TenantID, NodeID: vm.NodeID,
		VMPoint: novacron.VMPoint{TS: f.clk.t, MemoryUsage: mem}}}})
}

// alerts lists the alerts (newest first) as an admin sees them.
func (f *fixture) alerts(status string) []*novacron.Alert {
	f.t.Helper()
	l, _, err := f.st.ListAlerts(f.ctx, novacron.AllTenants, novacron.AlertFilter{Status: status})
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// event returns the next alert event on the bus; none is a failure.
func (f *fixture) event() (events.Event, *novacron.Alert) {
	f.t.Helper()
	select {
	case ev := <-f.sub.C:
		a, ok := ev.Data.(*novacron.Alert)
		if ev.Type != events.TypeAlert || !ok {
			f.t.Fatalf("event %+v", ev)
		}
		return ev, a
	case <-time.After(10 * time.Second):
		f.t.Fatal("no alert event")
	}
	return events.Event{}, nil
}

func (f *fixture) noEvent() {
	f.t.Helper()
	select {
	case ev := <-f.sub.C:
		f.t.Fatalf("unexpected event %+v", ev.Data)
	default:
	}
}

func (f *fixture) mkVM(name string, tenant string, labels map[string]string) *novacron.VM {
	f.t.Helper()
	vm := &novacron.VM{Name: name, Driver: novacron.DriverProcess, TenantID: tenant, CPUs: 1, MemoryMB: 64,
		NodeID: f.node.ID, Labels: labels}
	if err := f.st.CreateVM(f.ctx, vm, &novacron.Operation{Action: string(novacron.ActionCreate)}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.FinishOperation(f.ctx, vm.OperationID, novacron.OpSucceeded, ""); err != nil {
		f.t.Fatal(err)
	}
	f.setState(vm, novacron.StateRunning, "")
	return vm
}

func (f *fixture) setState(vm *novacron.VM, state novacron.VMState, reason string) {
	f.t.Helper()
	if err := f.st.SetVMState(f.ctx, vm.ID, state, reason, nil); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) rule(a *novacron.Actor, body string) *novacron.AlertRule {
	f.t.Helper()
	var q RuleRequest
	if err := json.Unmarshal([]byte(body), &q); err != nil {
		f.t.Fatal(err)
	}
	r, err := f.e.CreateRule(f.ctx, a, q)
	if err != nil {
		f.t.Fatalf("CreateRule %s: %v", body, err)
	}
	if err := f.e.loadRules(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	return r
}

// TestHostCPU follows the default host CPU rule (> 90 % for 5 minutes)
// through pending, firing, a value inside the margin, a clear spell cut
// short, and its resolution.
func TestHostCPU(t *testing.T) {
	f := newFixture(t, nil)
	f.host(pf(95))
	f.clk.advance(4 * time.Minute)
	f.host(pf(96))
	f.host(nil) // unmeasured: neither breach nor clear
	if l := f.alerts(""); len(l) != 0 {
		t.Fatalf("fired before its 5 minutes: %+v", l[0])
	}
	f.noEvent()
	f.clk.advance(time.Minute)
	f.host(pf(97))
	ev, a := f.event()
	if a.Status != novacron.AlertFiring || a.Resource != novacron.ResourceHost || a.ResourceID != f.node.ID ||
		a.TenantID != "" || ev.TenantID != "" || *a.CurrentValue != 97 || a.Threshold != 90 || a.MetricName != "cpu_usage" ||
		a.Name != "Host CPU over 90%" || a.Labels["node_name"] != "n1" || !a.StartTime.Equal(f.clk.t) {
		t.Fatalf("fired %+v", a)
	}
	if a.Description != "cpu_usage of host n1 is 97 (> 90 for 5m0s)" {
		t.Errorf("description %q", a.Description)
	}
	// Below the threshold but within the margin (85.5): still firing.
	for range 5 {
		f.clk.advance(time.Minute)
		f.host(pf(88))
	}
	f.noEvent()
	// Clear, then a breach before a minute passes: the clock starts over.
	f.clk.advance(time.Minute)
	f.host(pf(80))
	f.clk.advance(30 * time.Second)
	f.host(pf(92))
	f.clk.advance(30 * time.Second)
	f.host(pf(80))
	f.clk.advance(59 * time.Second)
	f.host(pf(80))
	f.noEvent()
	f.clk.advance(time.Second)
	f.host(pf(80))
	_, r := f.event()
	if r.ID != a.ID || r.Status != novacron.AlertResolved || r.EndTime == nil || !r.EndTime.Equal(f.clk.t) || *r.CurrentValue != 80 {
		t.Fatalf("resolved %+v", r)
	}
	if l := f.alerts(novacron.AlertResolved); len(l) != 1 {
		t.Fatalf("resolved alerts %d", len(l))
	}
	// It may fire again, as a new alert.
	f.host(pf(99))
	f.clk.advance(5 * time.Minute)
	f.host(pf(99))
	_, again := f.event()
	if again.ID == a.ID || again.Status != novacron.AlertFiring {
		t.Fatalf("fired again %+v", again)
	}
}

// TestStaleResolves: a VM that stops reporting (or reports nothing
// measured) resolves its metric alerts on the timer.
func TestStaleResolves(t *testing.T) {
	f := newFixture(t, nil)
	vm := f.mkVM("web", f.tenant.ID, nil)
	r := f.rule(f.op, `{"name":"mem","metric":"memory_usage","comparator":">=","threshold":50}`)
	if r.Scope.TenantID != f.tenant.ID || r.Resource != novacron.ResourceVM || r.For != 0 || r.Severity != "warning" {
		t.Fatalf("operator's rule %+v", r)
	}
	f.e.tick(f.ctx)
	f.vmSample(vm, pf(50))
	ev, a := f.event()
	if a.TenantID != f.tenant.ID || ev.TenantID != f.tenant.ID || ev.VMID != vm.ID || a.Labels["vm_name"] != "web" {
		t.Fatalf("fired %+v (event tenant %q vm %q)", a, ev.TenantID, ev.VMID)
	}
	f.clk.advance(time.Minute)
	f.vmSample(vm, nil)
	f.clk.advance(time.Minute)
	f.e.tick(f.ctx)
	f.noEvent()
	f.clk.advance(time.Minute)
	f.e.tick(f.ctx)
	_, res := f.event()
	if res.ID != a.ID || res.Status != novacron.AlertResolved || *res.CurrentValue != 50 {
		t.Fatalf("resolved %+v", res)
	}
}

// TestScope: a tenant's rule watches its tenant's VMs only; labels narrow.
func TestScope(t *testing.T) {
	f := newFixture(t, nil)
	mine := f.mkVM("mine", f.tenant.ID, map[string]string{"tier": "db"})
	web := f.mkVM("web", f.tenant.ID, map[string]string{"tier": "web"})
	theirs := f.mkVM("theirs", f.other.ID, map[string]string{"tier": "db"})
	f.rule(f.op, `{"name":"db mem","metric":"memory_usage","comparator":">","threshold":10,"scope":{"labels":{"tier":"db"}}}`)
	f.e.tick(f.ctx)
	for _, vm := range []*novacron.VM{mine, web, theirs} {
		f.vmSample(vm, pf(99))
	}
	l := f.alerts("")
	if len(l) != 1 || l[0].ResourceID != mine.ID {
		t.Fatalf("alerts %+v", l)
	}
	// An admin's cluster-wide rule on one node watches every tenant's VMs there.
	f.rule(f.admin, `{"name":"all","metric":"memory_usage","comparator":">","threshold":10,"scope":{"node_id":"`+f.node.ID+`"}}`)
	f.vmSample(theirs, pf(99))
	if l := f.alerts(""); len(l) != 2 || l[0].ResourceID != theirs.ID || l[0].TenantID != f.other.ID {
		t.Fatalf("alerts %+v", l)
	}
	// The other tenant's operator sees only its own.
	l, _, err := f.e.ListAlerts(f.ctx, f.otherOp, novacron.AlertFilter{})
	if err != nil || len(l) != 1 || l[0].ResourceID != theirs.ID {
		t.Fatalf("other operator sees %+v, %v", l, err)
	}
}

// TestVMFailed: a failed VM fires, is acknowledged, resolves once it runs
// again (after ResolveAfter), fires anew and resolves at once when deleted.
func TestVMFailed(t *testing.T) {
	f := newFixture(t, nil)
	vm := f.mkVM("job", f.tenant.ID, nil)
	f.e.tick(f.ctx)
	f.noEvent()
	f.setState(vm, novacron.StateFailed, "exit status 3")
	f.clk.advance(15 * time.Second)
	f.e.tick(f.ctx)
	ev, a := f.event()
	if a.Name != "VM failed" || a.Severity != "error" || a.ResourceID != vm.ID || a.TenantID != f.tenant.ID ||
		a.CurrentValue != nil || ev.VMID != vm.ID || a.Description != "VM job is failed: exit status 3" {
		t.Fatalf("fired %+v", a)
	}
	f.e.tick(f.ctx)
	f.noEvent()

	if _, err := f.e.Acknowledge(f.ctx, f.otherOp, a.ID); !novacron.IsCode(err, novacron.ENotFound) {
		t.Fatalf("another tenant's operator acknowledged: %v", err)
	}
	ack, err := f.e.Acknowledge(f.ctx, f.op, a.ID)
	if err != nil || ack.Status != novacron.AlertAcknowledged || ack.AcknowledgedBy != "olga" || !ack.AcknowledgedAt.Equal(f.clk.t) {
		t.Fatalf("acknowledged %+v, %v", ack, err)
	}
	if _, ev := f.event(); ev.Status != novacron.AlertAcknowledged {
		t.Fatalf("event %+v", ev)
	}
	if _, err := f.e.Acknowledge(f.ctx, f.admin, a.ID); !novacron.IsCode(err, novacron.EInvalidState) {
		t.Fatalf("acknowledged twice: %v", err)
	}

	f.setState(vm, novacron.StateRunning, "")
	f.clk.advance(30 * time.Second)
	f.e.tick(f.ctx) // clear from now
	f.clk.advance(59 * time.Second)
	f.e.tick(f.ctx)
	f.noEvent()
	f.clk.advance(time.Second)
	f.e.tick(f.ctx)
	_, res := f.event()
	if res.ID != a.ID || res.Status != novacron.AlertResolved || res.AcknowledgedBy != "olga" {
		t.Fatalf("resolved %+v", res)
	}

	f.setState(vm, novacron.StateFailed, "killed")
	f.e.tick(f.ctx)
	_, again := f.event()
	if again.ID == a.ID {
		t.Fatal("the same alert fired twice")
	}
	if err := f.st.DeleteVM(f.ctx, vm.ID); err != nil {
		t.Fatal(err)
	}
	f.clk.advance(time.Second)
	f.e.tick(f.ctx)
	if _, gone := f.event(); gone.ID != again.ID || gone.Status != novacron.AlertResolved {
		t.Fatalf("deleted VM's alert %+v", gone)
	}
}

// TestNodeOffline fires for an offline node and resolves when it is back.
func TestNodeOffline(t *testing.T) {
	f := newFixture(t, nil)
	f.node.Status = novacron.NodeOffline
	if err := f.st.UpsertNode(f.ctx, f.node); err != nil {
		t.Fatal(err)
	}
	f.e.tick(f.ctx)
	_, a := f.event()
	if a.Name != "Node offline" || a.Severity != "critical" || a.ResourceID != f.node.ID || a.Resource != "host" ||
		a.Description != "node n1 is offline" {
		t.Fatalf("fired %+v", a)
	}
	f.node.Status = novacron.NodeOnline
	if err := f.st.UpsertNode(f.ctx, f.node); err != nil {
		t.Fatal(err)
	}
	f.e.tick(f.ctx)
	f.clk.advance(time.Minute)
	f.e.tick(f.ctx)
	if _, r := f.event(); r.Status != novacron.AlertResolved {
		t.Fatalf("resolved %+v", r)
	}
}

// TestRuleChanges: disabling or deleting a rule resolves its open alerts;
// a restarted engine carries on with the open alerts it finds.
func TestRuleChanges(t *testing.T) {
	f := newFixture(t, nil)
	vm := f.mkVM("web", f.tenant.ID, nil)
	r := f.rule(f.op, `{"name":"mem","metric":"memory_usage","comparator":">","threshold":10}`)
	f.vmSample(vm, pf(50))
	_, a := f.event()

	// Another engine over the same database, as after a restart: no
	// second alert, and it resolves the first.
	e2 := New(f.st, f.e.cfg, f.e.bus, f.e.log)
	if err := e2.load(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.e = e2
	f.vmSample(vm, pf(60))
	f.noEvent()
	if l := f.alerts(novacron.AlertFiring); len(l) != 1 {
		t.Fatalf("%d firing after a restart", len(l))
	}

	off := false
	if _, err := f.e.UpdateRule(f.ctx, f.op, r.ID, RuleRequest{Enabled: &off}); err != nil {
		t.Fatal(err)
	}
	if err := f.e.loadRules(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, res := f.event(); res.ID != a.ID || res.Status != novacron.AlertResolved {
		t.Fatalf("disabled rule's alert %+v", res)
	}
	f.vmSample(vm, pf(60))
	f.noEvent()

	on := true
	if _, err := f.e.UpdateRule(f.ctx, f.op, r.ID, RuleRequest{Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	if err := f.e.loadRules(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.vmSample(vm, pf(60))
	_, b := f.event()
	if err := f.e.DeleteRule(f.ctx, f.otherOp, r.ID); !novacron.IsCode(err, novacron.ENotFound) {
		t.Fatalf("another tenant deleted the rule: %v", err)
	}
	if err := f.e.DeleteRule(f.ctx, f.op, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.e.loadRules(f.ctx); err != nil {
		t.Fatal(err)
	}
	if _, res := f.event(); res.ID != b.ID || res.Status != novacron.AlertResolved {
		t.Fatalf("deleted rule's alert %+v", res)
	}
}

// TestRuleRequests: validation names the field; operators are held to
// their tenant and to VMs.
func TestRuleRequests(t *testing.T) {
	f := newFixture(t, nil)
	bad := []struct {
		who   *novacron.Actor
		body  string
		field string
	}{
		{f.op, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"resource":"host"}`, "metric"},
		{f.op, `{"name":"x","metric":"node_offline"}`, "metric"},
		{f.op, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"scope":{"tenant_id":"` + f.other.ID + `"}}`, "scope.tenant_id"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"for":"soon"}`, "for"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"for":"25h"}`, "for"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":"=","threshold":1}`, "comparator"},
		{f.admin, `{"name":"x","metric":"cpu_percent","comparator":">","threshold":1}`, "metric"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":150}`, "threshold"},
		{f.admin, `{"name":"x","metric":"vm_failed","comparator":">"}`, "comparator"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"severity":"fatal"}`, "severity"},
		{f.admin, `{"metric":"cpu_usage","comparator":">","threshold":1}`, "name"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"webhook_url":"ftp://example.com/"}`, "webhook_url"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"webhook_url":"https://u:p@example.com/"}`, "webhook_url"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"webhook_url":"http://10.1.2.3/hook"}`, "webhook_url"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"webhook_url":"http://localhost:8080/"}`, "webhook_url"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"webhook_url":"http://[::ffff:169.254.169.254]/"}`, "webhook_url"},
		{f.admin, `{"name":"x","metric":"iops","resource":"host","comparator":">","threshold":1}`, "resource"},
		{f.admin, `{"name":"x","metric":"cpu_usage","resource":"host","comparator":">","threshold":1,"scope":{"tenant_id":"` + f.tenant.ID + `"}}`, "scope.tenant_id"},
		{f.admin, `{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"scope":{"tenant_id":"01890000-0000-7000-8000-000000000000"}}`, "scope.tenant_id"},
	}
	for _, tc := range bad {
		var q RuleRequest
		if err := json.Unmarshal([]byte(tc.body), &q); err != nil {
			t.Fatal(err)
		}
		_, err := f.e.CreateRule(f.ctx, tc.who, q)
		var e *novacron.Error
		if !novacron.IsCode(err, novacron.EInvalid) || !asErr(err, &e) || e.Details["field"] != tc.field {
			t.Errorf("%s: %v, want a 400 naming %s", tc.body, err, tc.field)
		}
	}
	r := f.rule(f.admin, `{"name":"wh","metric":"cpu_usage","resource":"host","comparator":">","threshold":80,"for":"90s","webhook_url":"https://hooks.example.com/a?token=t"}`)
	if r.Scope.TenantID != "" || r.For != 90*time.Second || r.Resource != "host" {
		t.Fatalf("admin's rule %+v", r)
	}
	if _, err := f.e.GetRule(f.ctx, f.op, r.ID); !novacron.IsCode(err, novacron.ENotFound) {
		t.Fatalf("an operator sees a cluster-wide rule: %v", err)
	}
	// Changing to an event condition drops the comparator and threshold.
	m := novacron.MetricNodeOffline
	r2, err := f.e.UpdateRule(f.ctx, f.admin, r.ID, RuleRequest{Metric: &m})
	if err != nil || r2.Comparator != "" || r2.Threshold != 0 || r2.Resource != "host" || r2.Name != "wh" {
		t.Fatalf("updated %+v, %v", r2, err)
	}
	b, _ := json.Marshal(r2)
	if !strings.Contains(string(b), `"for":"1m30s"`) {
		t.Errorf("rule JSON %s", b)
	}
}

// TestDefaultRules are created once: a deleted one stays deleted.
func TestDefaultRules(t *testing.T) {
	f := newFixture(t, nil)
	rules, _, err := f.st.ListAlertRules(f.ctx, novacron.AllTenants, novacron.Page{})
	if err != nil || len(rules) != 5 {
		t.Fatalf("%d default rules, %v", len(rules), err)
	}
	want := map[string]string{"Host CPU over 90%": "cpu_usage", "Host memory over 90%": "memory_usage",
		"Host disk over 90%": "disk_usage", "Node offline": "node_offline", "VM failed": "vm_failed"}
	for _, r := range rules {
		if want[r.Name] != r.Metric || !r.Enabled || r.Scope.TenantID != "" {
			t.Errorf("default rule %+v", r)
		}
		if r.Metric == "cpu_usage" && (r.Resource != "host" || r.Threshold != 90 || r.For != 5*time.Minute) {
			t.Errorf("host CPU rule %+v", r)
		}
	}
	if err := f.e.DeleteRule(f.ctx, f.admin, rules[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDefaultRules(f.ctx, f.st); err != nil {
		t.Fatal(err)
	}
	rules, _, _ = f.st.ListAlertRules(f.ctx, novacron.AllTenants, novacron.Page{})
	if len(rules) != 4 {
		t.Fatalf("%d rules after a second start", len(rules))
	}
}

// TestObserveDrops: a full queue drops the batch instead of waiting.
func TestObserveDrops(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.QueueSize = 1 })
	s := []novacron.HostSample{{NodeID: f.node.ID, HostPoint: novacron.HostPoint{CPUUsage: pf(1)}}}
	done := make(chan struct{})
	go func() {
		f.e.Observe(s, nil)
		f.e.Observe(s, nil)
		f.e.Observe(nil, nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Observe blocked")
	}
	if n := f.e.dropped.Load(); n != 1 {
		t.Fatalf("dropped %d, want 1", n)
	}
	counts, err := f.e.Counts(f.ctx)
	if err != nil || len(counts) != 3 || counts["firing"] != 0 {
		t.Fatalf("counts %v, %v", counts, err)
	}
}

// TestTenantRuleLimit: a tenant's rules are bounded.
func TestTenantRuleLimit(t *testing.T) {
	f := newFixture(t, nil)
	for i := range MaxTenantRules {
		r := &novacron.AlertRule{Name: "r" + strconv.Itoa(i), Metric: "cpu_usage", Comparator: ">", Threshold: 1,
			Scope: novacron.AlertScope{TenantID: f.tenant.ID}}
		if err := f.st.CreateAlertRule(f.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var q RuleRequest
	if err := json.Unmarshal([]byte(`{"name":"one more","metric":"cpu_usage","comparator":">","threshold":1}`), &q); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.CreateRule(f.ctx, f.op, q); !novacron.IsCode(err, novacron.EQuotaExceeded) {
		t.Fatalf("rule %d: %v, want quota_exceeded", MaxTenantRules+1, err)
	}
	if _, err := f.e.CreateRule(f.ctx, f.otherOp, q); err != nil {
		t.Fatalf("another tenant: %v", err)
	}
	if _, err := f.e.CreateRule(f.ctx, f.admin, q); err != nil {
		t.Fatalf("a cluster-wide rule: %v", err)
	}
}

// TestSampleWithoutTenant: a sample that does not name its VM's tenant
// or node gets them from the VM.
func TestSampleWithoutTenant(t *testing.T) {
	f := newFixture(t, nil)
	vm := f.mkVM("web", f.tenant.ID, nil)
	f.rule(f.op, `{"name":"mem","metric":"memory_usage","comparator":">","threshold":10,"scope":{"node_id":"`+f.node.ID+`"}}`)
	f.e.tick(f.ctx)
	f.e.observe(f.ctx, batch{vms: []novacron.VMSample{{VMID: vm.ID, VMPoint: novacron.VMPoint{MemoryUsage: pf(50)}}}})
	ev, a := f.event()
	if a.TenantID != f.tenant.ID || ev.TenantID != f.tenant.ID {
		t.Fatalf("alert %+v", a)
	}
}

// TestRulesReadOnTick: a rule written past the engine (another replica,
// a tenant's deletion) is seen at the next tick.
func TestRulesReadOnTick(t *testing.T) {
	f := newFixture(t, nil)
	vm := f.mkVM("web", f.tenant.ID, nil)
	r := &novacron.AlertRule{Name: "direct", Metric: "memory_usage", Comparator: ">", Threshold: 10, Enabled: true,
		Scope: novacron.AlertScope{TenantID: f.tenant.ID}}
	if err := f.st.CreateAlertRule(f.ctx, r); err != nil {
		t.Fatal(err)
	}
	f.vmSample(vm, pf(50))
	f.noEvent()
	f.e.tick(f.ctx)
	f.vmSample(vm, pf(50))
	if _, a := f.event(); a.RuleID != r.ID {
		t.Fatalf("alert %+v", a)
	}
	if err := f.st.DeleteAlertRule(f.ctx, novacron.AllTenants, r.ID); err != nil {
		t.Fatal(err)
	}
	f.e.tick(f.ctx)
	if _, a := f.event(); a.Status != novacron.AlertResolved {
		t.Fatalf("alert of a rule deleted past the engine %+v", a)
	}
}
