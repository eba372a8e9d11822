package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func ruleID(r *novacron.AlertRule) string { return r.ID }
func alertID(a *novacron.Alert) string    { return a.ID }

func mustRule(t *testing.T, s Store, tenantID, name string, mod func(*novacron.AlertRule)) *novacron.AlertRule {
	t.Helper()
	r := &novacron.AlertRule{Name: name, Metric: "cpu_usage", Comparator: ">", Threshold: 90, For: 5 * time.Minute,
		Severity: novacron.SeverityWarning, Scope: novacron.AlertScope{TenantID: tenantID}, Enabled: true}
	if mod != nil {
		mod(r)
	}
	noErr(t, s.CreateAlertRule(ctx(t), r), "CreateAlertRule "+name)
	return r
}

func mustAlert(t *testing.T, s Store, rule *novacron.AlertRule, resourceID string) *novacron.Alert {
	t.Helper()
	a := &novacron.Alert{RuleID: rule.ID, Name: rule.Name, Severity: rule.Severity, Resource: rule.Resource,
		ResourceID: resourceID, TenantID: rule.Scope.TenantID, MetricName: rule.Metric, Threshold: rule.Threshold,
		CurrentValue: ptr(95.5), Labels: map[string]string{"vm_name": "web"}, StartTime: time.Now()}
	noErr(t, s.OpenAlert(ctx(t), a), "OpenAlert")
	return a
}

func testAlertRuleCRUD(t *testing.T, s Store) {
	c := ctx(t)
	ta, tb := mustTenant(t, s, "a"), mustTenant(t, s, "b")
	before := time.Now()
	r := mustRule(t, s, ta.ID, "cpu high", func(r *novacron.AlertRule) {
		r.Scope.NodeID = "01890000-0000-7000-8000-0000000000AA"
		r.Scope.Labels = map[string]string{"tier": "web"}
		r.WebhookURL = "https://hooks.example.com/x?y=1"
	})
	wantID(t, r.ID)
	wantStoreTime(t, "created_at", r.CreatedAt, before, time.Now())
	if r.Resource != novacron.ResourceVM || r.For != 5*time.Minute || r.Scope.NodeID != "01890000-0000-7000-8000-0000000000aa" ||
		r.Scope.TenantID != ta.ID || r.Scope.Labels["tier"] != "web" || !r.Enabled || r.WebhookURL == "" {
		t.Fatalf("created rule %+v", r)
	}
	got, err := s.GetAlertRule(c, novacron.TenantScope(ta.ID), r.ID)
	noErr(t, err, "GetAlertRule")
	wantEqual(t, "rule", got, r)
	_, err = s.GetAlertRule(c, novacron.TenantScope(tb.ID), r.ID)
	wantCode(t, err, novacron.ENotFound)
	for _, id := range malformedIDs {
		_, err = s.GetAlertRule(c, novacron.AllTenants, id)
		wantCode(t, err, novacron.ENotFound)
	}

	// A cluster-wide rule on hosts: seen by AllTenants only.
	g := mustRule(t, s, "", "host cpu", func(r *novacron.AlertRule) { r.Resource = novacron.ResourceHost })
	_, err = s.GetAlertRule(c, novacron.TenantScope(ta.ID), g.ID)
	wantCode(t, err, novacron.ENotFound)
	ev := mustRule(t, s, "", "failed", func(r *novacron.AlertRule) {
		r.Metric, r.Comparator, r.Threshold, r.For = novacron.MetricVMFailed, "", 0, 0
	})
	if ev.Resource != novacron.ResourceVM || ev.Comparator != "" {
		t.Fatalf("event rule %+v", ev)
	}

	list, next, err := s.ListAlertRules(c, novacron.TenantScope(ta.ID), novacron.Page{})
	noErr(t, err, "ListAlertRules")
	wantEqual(t, "tenant rules", ids(list, ruleID), []string{r.ID})
	if next != "" {
		t.Fatal("next cursor on the only page")
	}
	all := collect(t, 2, 2, func(cur string) ([]*novacron.AlertRule, string, error) {
		return s.ListAlertRules(c, novacron.AllTenants, novacron.Page{Limit: 2, Cursor: cur})
	}, ruleID)
	wantEqual(t, "all rules", all, []string{r.ID, g.ID, ev.ID})

	// Update: every field, within scope.
	up := *r
	up.Name, up.Threshold, up.For, up.Severity, up.Enabled, up.Comparator = "cpu very high", 95, time.Minute, novacron.SeverityCritical, false, ">="
	up.Scope.Labels = nil
	up.Scope.NodeID = ""
	noErr(t, s.UpdateAlertRule(c, novacron.TenantScope(ta.ID), &up), "UpdateAlertRule")
	if up.Name != "cpu very high" || up.Threshold != 95 || up.For != time.Minute || up.Enabled || up.Scope.Labels != nil ||
		up.Scope.NodeID != "" || !up.CreatedAt.Equal(r.CreatedAt) || up.UpdatedAt.Before(r.UpdatedAt) {
		t.Fatalf("updated rule %+v", up)
	}
	other := up
	wantCode(t, s.UpdateAlertRule(c, novacron.TenantScope(tb.ID), &other), novacron.ENotFound)
	// A tenant cannot move its rule out, nor make it cluster-wide.
	other = up
	other.Scope.TenantID = tb.ID
	wantCode(t, s.UpdateAlertRule(c, novacron.TenantScope(ta.ID), &other), novacron.ENotFound)
	other = up
	other.Scope.TenantID = ""
	wantCode(t, s.UpdateAlertRule(c, novacron.TenantScope(ta.ID), &other), novacron.ENotFound)
	other = up
	other.Scope.TenantID = missingID
	wantCode(t, s.UpdateAlertRule(c, novacron.AllTenants, &other), novacron.EInvalid)
	other = up
	other.ID = missingID
	wantCode(t, s.UpdateAlertRule(c, novacron.AllTenants, &other), novacron.ENotFound)
	other = up
	other.Metric = "bogus"
	wantCode(t, s.UpdateAlertRule(c, novacron.AllTenants, &other), novacron.EInvalid)

	wantCode(t, s.DeleteAlertRule(c, novacron.TenantScope(tb.ID), r.ID), novacron.ENotFound)
	noErr(t, s.DeleteAlertRule(c, novacron.TenantScope(ta.ID), r.ID), "DeleteAlertRule")
	wantCode(t, s.DeleteAlertRule(c, novacron.AllTenants, r.ID), novacron.ENotFound)
	_, err = s.GetAlertRule(c, novacron.AllTenants, r.ID)
	wantCode(t, err, novacron.ENotFound)
}

func testAlertRuleInvalid(t *testing.T, s Store) {
	c := ctx(t)
	ta := mustTenant(t, s, "a")
	cases := map[string]func(*novacron.AlertRule){
		"name":            func(r *novacron.AlertRule) { r.Name = "" },
		"metric":          func(r *novacron.AlertRule) { r.Metric = "cpu_percent" },
		"comparator":      func(r *novacron.AlertRule) { r.Comparator = "==" },
		"threshold":       func(r *novacron.AlertRule) { r.Threshold = 101 },
		"for":             func(r *novacron.AlertRule) { r.For = 1500 * time.Millisecond },
		"severity":        func(r *novacron.AlertRule) { r.Severity = "fatal" },
		"webhook_url":     func(r *novacron.AlertRule) { r.WebhookURL = "ftp://x" },
		"scope.tenant_id": func(r *novacron.AlertRule) { r.Scope.TenantID = missingID },
		"resource":        func(r *novacron.AlertRule) { r.Metric, r.Resource = "iops", novacron.ResourceHost },
		"scope.vm_id":     func(r *novacron.AlertRule) { r.Scope.VMID = "nope" },
	}
	for field, mod := range cases {
		r := &novacron.AlertRule{Name: "x", Metric: "cpu_usage", Comparator: ">", Threshold: 1, Scope: novacron.AlertScope{TenantID: ta.ID}}
		mod(r)
		err := s.CreateAlertRule(c, r)
		wantCode(t, err, novacron.EInvalid)
		var e *novacron.Error
		if ok := errors.As(err, &e); !ok || e.Details["field"] != field {
			t.Errorf("%s: error %v does not name the field", field, err)
		}
	}
	r := mustRule(t, s, ta.ID, "dup", nil)
	dup := &novacron.AlertRule{ID: r.ID, Name: "x", Metric: "cpu_usage", Comparator: ">", Threshold: 1}
	wantCode(t, s.CreateAlertRule(c, dup), novacron.EConflict)
}

func testAlertLifecycle(t *testing.T, s Store) {
	c := ctx(t)
	ta, tb := mustTenant(t, s, "a"), mustTenant(t, s, "b")
	r := mustRule(t, s, ta.ID, "cpu", nil)
	vm := "01890000-0000-7000-8000-0000000000c1"
	before := time.Now()
	a := mustAlert(t, s, r, vm)
	wantID(t, a.ID)
	if a.Status != novacron.AlertFiring || a.RuleID != r.ID || a.TenantID != ta.ID || a.CurrentValue == nil ||
		*a.CurrentValue != 95.5 || a.Labels["vm_name"] != "web" || a.EndTime != nil || a.AcknowledgedAt != nil {
		t.Fatalf("opened alert %+v", a)
	}
	wantStoreTime(t, "start_time", a.StartTime, before, time.Now())
	// One open alert per rule and resource.
	dup := &novacron.Alert{RuleID: r.ID, Name: "cpu", Severity: "warning", Resource: "vm", ResourceID: vm, StartTime: time.Now()}
	wantCode(t, s.OpenAlert(c, dup), novacron.EConflict)
	other := mustAlert(t, s, r, "01890000-0000-7000-8000-0000000000c2")

	got, err := s.GetAlert(c, novacron.TenantScope(ta.ID), a.ID)
	noErr(t, err, "GetAlert")
	wantEqual(t, "alert", got, a)
	_, err = s.GetAlert(c, novacron.TenantScope(tb.ID), a.ID)
	wantCode(t, err, novacron.ENotFound)

	// Acknowledge: within scope, firing only, once.
	_, err = s.AcknowledgeAlert(c, novacron.TenantScope(tb.ID), a.ID, "bob", time.Now())
	wantCode(t, err, novacron.ENotFound)
	at := time.Now()
	ack, err := s.AcknowledgeAlert(c, novacron.TenantScope(ta.ID), a.ID, "alice", at)
	noErr(t, err, "AcknowledgeAlert")
	if ack.Status != novacron.AlertAcknowledged || ack.AcknowledgedBy != "alice" || ack.AcknowledgedAt == nil {
		t.Fatalf("acknowledged %+v", ack)
	}
	wantStoreTime(t, "acknowledged_at", *ack.AcknowledgedAt, at, time.Now())
	_, err = s.AcknowledgeAlert(c, novacron.AllTenants, a.ID, "carol", time.Now())
	wantCode(t, err, novacron.EInvalidState)

	// Resolve: open ones only; the rule and resource may fire again.
	end := time.Now()
	res, err := s.ResolveAlert(c, a.ID, end, ptr(12.0))
	noErr(t, err, "ResolveAlert")
	if res.Status != novacron.AlertResolved || res.EndTime == nil || *res.CurrentValue != 12 || res.AcknowledgedBy != "alice" {
		t.Fatalf("resolved %+v", res)
	}
	_, err = s.ResolveAlert(c, a.ID, time.Now(), nil)
	wantCode(t, err, novacron.EInvalidState)
	_, err = s.AcknowledgeAlert(c, novacron.AllTenants, a.ID, "carol", time.Now())
	wantCode(t, err, novacron.EInvalidState)
	_, err = s.ResolveAlert(c, missingID, time.Now(), nil)
	wantCode(t, err, novacron.ENotFound)
	again := mustAlert(t, s, r, vm)
	kept, err := s.ResolveAlert(c, other.ID, time.Now(), nil)
	noErr(t, err, "ResolveAlert without a value")
	if kept.CurrentValue == nil || *kept.CurrentValue != 95.5 {
		t.Fatalf("a resolve without a value lost the last one: %+v", kept)
	}

	// A host alert has no tenant: AllTenants only.
	g := mustRule(t, s, "", "host", func(r *novacron.AlertRule) { r.Resource = novacron.ResourceHost })
	h := mustAlert(t, s, g, "01890000-0000-7000-8000-0000000000a1")
	if h.TenantID != "" {
		t.Fatalf("host alert tenant %q", h.TenantID)
	}
	_, err = s.GetAlert(c, novacron.TenantScope(ta.ID), h.ID)
	wantCode(t, err, novacron.ENotFound)

	// Lists: newest first, scoped, filtered.
	all := collect(t, 2, 2, func(cur string) ([]*novacron.Alert, string, error) {
		return s.ListAlerts(c, novacron.AllTenants, novacron.AlertFilter{Page: novacron.Page{Limit: 2, Cursor: cur}})
	}, alertID)
	wantEqual(t, "all alerts", all, []string{h.ID, again.ID, other.ID, a.ID})
	list, _, err := s.ListAlerts(c, novacron.TenantScope(ta.ID), novacron.AlertFilter{})
	noErr(t, err, "ListAlerts")
	wantEqual(t, "tenant alerts", ids(list, alertID), []string{again.ID, other.ID, a.ID})
	list, _, err = s.ListAlerts(c, novacron.TenantScope(tb.ID), novacron.AlertFilter{})
	noErr(t, err, "ListAlerts")
	wantEqual(t, "other tenant's alerts", ids(list, alertID), []string{})
	list, _, err = s.ListAlerts(c, novacron.AllTenants, novacron.AlertFilter{Status: novacron.AlertResolved})
	noErr(t, err, "ListAlerts resolved")
	wantEqual(t, "resolved", ids(list, alertID), []string{other.ID, a.ID})
	list, _, err = s.ListAlerts(c, novacron.AllTenants, novacron.AlertFilter{Open: true})
	noErr(t, err, "ListAlerts open")
	wantEqual(t, "open", ids(list, alertID), []string{h.ID, again.ID})
	_, _, err = s.ListAlerts(c, novacron.AllTenants, novacron.AlertFilter{Status: "open"})
	wantCode(t, err, novacron.EInvalid)

	counts, err := s.CountAlerts(c)
	noErr(t, err, "CountAlerts")
	wantEqual(t, "counts", counts, map[string]int{"firing": 2, "acknowledged": 0, "resolved": 2})

	// Deleting the rule keeps its alerts, without a rule.
	noErr(t, s.DeleteAlertRule(c, novacron.AllTenants, r.ID), "DeleteAlertRule")
	got, err = s.GetAlert(c, novacron.AllTenants, again.ID)
	noErr(t, err, "GetAlert")
	if got.RuleID != "" || got.Status != novacron.AlertFiring {
		t.Fatalf("alert of a deleted rule %+v", got)
	}
}

// testAlertOpenRace opens the same rule and resource's alert from many
// goroutines: exactly one wins.
func testAlertOpenRace(t *testing.T, s Store) {
	r := mustRule(t, s, "", "host", func(r *novacron.AlertRule) { r.Resource = novacron.ResourceHost })
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &novacron.Alert{RuleID: r.ID, Name: "host", Severity: "warning", Resource: "host",
				ResourceID: "n1", StartTime: time.Now()}
			err := s.OpenAlert(ctx(t), a)
			if err != nil && !novacron.IsCode(err, novacron.EConflict) {
				t.Errorf("OpenAlert: %v", err)
			}
			mu.Lock()
			if err == nil {
				won++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d alerts opened, want 1", won)
	}
}
