package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/server"
)

func fastAlerts(c *server.Config) {
	fastReconcile(c)
	c.AlertInterval = 200 * time.Millisecond
	c.AlertResolveAfter = 500 * time.Millisecond
}

// alertOf returns the alert on the VM with the given status, as token sees it.
func alertOf(h *harness, token, vmID, status string) (map[string]any, error) {
	r := h.req("GET", "/api/monitoring/alerts?status="+status, token, nil)
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", r.status, r.raw)
	}
	for _, a := range r.items() {
		if a["resource_id"] == vmID && a["metric_name"] == "vm_failed" {
			return a, nil
		}
	}
	return nil, fmt.Errorf("no %s vm_failed alert on %s: %s", status, vmID, r.raw)
}

// TestAlertVMFailed: a process VM whose command exits non-zero fires the
// default vm_failed rule; its tenant sees the alert (another does not),
// an operator acknowledges it, it resolves when the VM runs again, and a
// second failure resolves when the VM is deleted.
func TestAlertVMFailed(t *testing.T) {
	requireGuests(t)
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), fastAlerts)
		cleanGuests(t, h)
		sub := h.srv.Events().Subscribe(1000, func(e events.Event) bool { return e.Type == events.TypeAlert })
		defer sub.Close()
		admin := h.admin()
		defTenant := h.want(h.req("GET", "/auth/me", admin, nil), 200).str("tenant_id")
		other := h.mkTenant(admin, "other")
		_, op := h.mkUser(admin, "olga", "operator", defTenant)
		_, user := h.mkUser(admin, "ulla", "user", defTenant)
		_, op2 := h.mkUser(admin, "otto", "operator", other)

		// Fails on its first run, runs on the next.
		body := processVM("flaky", "/bin/sh", "-c", "if [ -e ran ]; then exec sleep 3600; fi; touch ran; sleep 0.3; exit 3")
		body["start"] = true
		id := h.want(h.req("POST", "/api/vm/vms?wait=1", admin, body), 200).str("id")

		var a map[string]any
		eventually(t, "vm_failed alert firing", func() (err error) {
			a, err = alertOf(h, user, id, "firing")
			return err
		})
		if a["name"] != "VM failed" || a["severity"] != "error" || a["tenant_id"] != defTenant || a["resource"] != "vm" ||
			!strings.Contains(a["description"].(string), "flaky") || a["current_value"] != nil || a["end_time"] != nil {
			t.Fatalf("alert %v", a)
		}
		alertID := a["id"].(string)
		select {
		case ev := <-sub.C:
			got := ev.Data.(*novacron.Alert)
			if got.ID != alertID || ev.TenantID != defTenant || ev.VMID != id {
				t.Fatalf("event %+v of %+v", ev, got)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no alert event on the bus")
		}
		if l := h.want(h.req("GET", "/api/monitoring/alerts", op2, nil), 200).items(); len(l) != 0 {
			t.Fatalf("another tenant sees %v", l)
		}

		ack := "/api/monitoring/alerts/" + alertID + "/acknowledge"
		h.want(h.req("POST", ack, user, nil), 403, "forbidden")
		h.want(h.req("POST", ack, op2, nil), 404, "not_found")
		h.want(h.req("POST", "/api/monitoring/alerts/not-an-id/acknowledge", op, nil), 404, "not_found")
		h.want(h.req("POST", ack, op, `{"x":1}`), 400, "invalid_request")
		r := h.want(h.req("POST", ack, op, nil), 200)
		if r.str("status") != "acknowledged" || r.str("acknowledged_by") != "olga" || r.str("acknowledged_at") == "" {
			t.Fatalf("acknowledged %s", r.raw)
		}
		h.want(h.req("POST", ack, admin, nil), 409, "invalid_state")
		audit := h.want(h.req("GET", "/api/audit?action=alert.acknowledge", admin, nil), 200).items()
		// Every call is audited, allowed or not.
		if len(audit) != 6 || audit[1]["resource_id"] != alertID || audit[1]["username"] != "olga" || audit[1]["success"] != true ||
			audit[0]["success"] != false || audit[5]["username"] != "ulla" {
			t.Fatalf("audit of acknowledgements %v", audit)
		}

		// Started again, it runs: the alert resolves.
		h.want(h.req("POST", "/api/vm/vms/"+id+"/start?wait=1", admin, nil), 200)
		eventually(t, "alert resolved once the VM runs", func() (err error) {
			a, err = alertOf(h, op, id, "resolved")
			return err
		})
		if a["id"] != alertID || a["acknowledged_by"] != "olga" || a["end_time"] == nil {
			t.Fatalf("resolved %v", a)
		}

		// Fails again (killed), then is deleted: the new alert resolves.
		fail := processVM("dies", "/bin/sh", "-c", "sleep 0.3; exit 1")
		fail["start"] = true
		id2 := h.want(h.req("POST", "/api/vm/vms?wait=1", admin, fail), 200).str("id")
		eventually(t, "second VM's alert", func() (err error) {
			a, err = alertOf(h, admin, id2, "firing")
			return err
		})
		h.want(h.req("DELETE", "/api/vm/vms/"+id2+"?wait=1", admin, nil), 204)
		eventually(t, "deleted VM's alert resolved", func() error {
			_, err := alertOf(h, admin, id2, "resolved")
			return err
		})
		h.want(h.req("GET", "/api/monitoring/alerts?status=open", admin, nil), 400, "invalid_request")
	})
}

func field(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// TestAlertRulesAPI: who manages which rules, validation and audit.
func TestAlertRulesAPI(t *testing.T) {
	h := start(t, "", nil)
	admin := h.admin()
	defTenant := h.want(h.req("GET", "/auth/me", admin, nil), 200).str("tenant_id")
	other := h.mkTenant(admin, "other")
	_, op := h.mkUser(admin, "olga", "operator", defTenant)
	_, user := h.mkUser(admin, "ulla", "user", defTenant)
	_, op2 := h.mkUser(admin, "otto", "operator", other)

	defaults := h.want(h.req("GET", "/api/monitoring/alert-rules", admin, nil), 200).items()
	if len(defaults) != 5 {
		t.Fatalf("default rules %v", defaults)
	}
	h.want(h.req("GET", "/api/monitoring/alert-rules", user, nil), 403, "forbidden")
	h.want(h.req("POST", "/api/monitoring/alert-rules", user, map[string]any{"name": "x"}), 403, "forbidden")
	h.want(h.req("GET", "/api/monitoring/alert-rules/"+field(defaults[0], "id"), op, nil), 404, "not_found")

	rule := map[string]any{"name": "mem", "metric": "memory_usage", "comparator": ">", "threshold": 80, "for": "2m",
		"severity": "critical", "webhook_url": "https://hooks.example.com/n?token=secret"}
	r := h.want(h.req("POST", "/api/monitoring/alert-rules", op, rule), 201)
	id := r.str("id")
	scope, _ := r.body["scope"].(map[string]any)
	if r.str("for") != "2m0s" || r.str("resource") != "vm" || scope["tenant_id"] != defTenant || r.body["enabled"] != true {
		t.Fatalf("created %s", r.raw)
	}
	for _, bad := range []struct {
		body  string
		field string
	}{
		{`{"name":"x","metric":"cpu","comparator":">","threshold":1}`, "metric"},
		{`{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"for":"forever"}`, "for"},
		{`{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"webhook_url":"http://169.254.169.254/latest"}`, "webhook_url"},
		{`{"name":"x","metric":"cpu_usage","comparator":">","threshold":1,"bogus":1}`, "bogus"},
		{`{"name":"x","metric":"disk_usage","resource":"host","comparator":">","threshold":1}`, "metric"},
	} {
		e := h.want(h.req("POST", "/api/monitoring/alert-rules", op, bad.body), 400, "invalid_request")
		details, _ := e.body["error"].(map[string]any)["details"].(map[string]any)
		if details["field"] != bad.field {
			t.Errorf("%s: %s, want field %s", bad.body, e.raw, bad.field)
		}
	}
	if l := h.want(h.req("GET", "/api/monitoring/alert-rules", op, nil), 200).items(); len(l) != 1 || field(l[0], "id") != id {
		t.Fatalf("operator's rules %v", l)
	}
	if l := h.want(h.req("GET", "/api/monitoring/alert-rules", op2, nil), 200).items(); len(l) != 0 {
		t.Fatalf("another tenant's operator sees %v", l)
	}
	h.want(h.req("GET", "/api/monitoring/alert-rules/"+id, op2, nil), 404, "not_found")
	h.want(h.req("PUT", "/api/monitoring/alert-rules/"+id, op2, `{"threshold":1}`), 404, "not_found")
	h.want(h.req("DELETE", "/api/monitoring/alert-rules/"+id, op2, nil), 404, "not_found")
	up := h.want(h.req("PUT", "/api/monitoring/alert-rules/"+id, op, `{"threshold":95,"enabled":false}`), 200)
	if up.body["threshold"] != 95.0 || up.body["enabled"] != false || up.str("name") != "mem" {
		t.Fatalf("updated %s", up.raw)
	}
	h.want(h.req("PUT", "/api/monitoring/alert-rules/"+id, op, `{"scope":{"tenant_id":"`+other+`"}}`), 400, "invalid_request")
	// Admins make cluster-wide rules, on hosts too.
	g := h.want(h.req("POST", "/api/monitoring/alert-rules", admin, `{"name":"load","metric":"load_average_5","comparator":">=","threshold":8}`), 201)
	if g.str("resource") != "host" {
		t.Fatalf("host rule %s", g.raw)
	}
	h.want(h.req("DELETE", "/api/monitoring/alert-rules/"+id, op, nil), 204)
	h.want(h.req("GET", "/api/monitoring/alert-rules/"+id, op, nil), 404, "not_found")
	audit := h.want(h.req("GET", "/api/audit?resource=alert_rule", admin, nil), 200).items()
	actions := map[string]int{}
	for _, e := range audit {
		actions[field(e, "action")]++
	}
	if actions["alert_rule.create"] != 8 || actions["alert_rule.update"] != 3 || actions["alert_rule.delete"] != 2 {
		t.Fatalf("audit %v", actions)
	}
	// The Go client.
	c := api.New(h.url, api.WithToken(op))
	ctx := context.Background()
	name, metric, cmp, thr, dur := "disk", "disk_usage", ">=", 75.0, "10m"
	cr, err := c.CreateAlertRule(ctx, api.AlertRuleRequest{Name: &name, Metric: &metric, Comparator: &cmp, Threshold: &thr, For: &dur})
	if err != nil || cr.For != 10*time.Minute || cr.Scope.TenantID != defTenant {
		t.Fatalf("client create: %+v, %v", cr, err)
	}
	off := false
	if ur, err := c.UpdateAlertRule(ctx, cr.ID, api.AlertRuleRequest{Enabled: &off}); err != nil || ur.Enabled || ur.For != 10*time.Minute {
		t.Fatalf("client update: %+v, %v", ur, err)
	}
	if l, err := c.ListAlertRules(ctx, 0, ""); err != nil || len(l.Items) != 1 || l.Items[0].ID != cr.ID {
		t.Fatalf("client list: %+v, %v", l, err)
	}
	if _, err := c.GetAlertRule(ctx, field(defaults[0], "id")); err == nil {
		t.Fatal("client: an operator got a cluster-wide rule")
	}
	if err := c.DeleteAlertRule(ctx, cr.ID); err != nil {
		t.Fatal(err)
	}
	if l, err := c.ListAlerts(ctx, api.AlertFilter{Status: "firing"}); err != nil || len(l.Items) != 0 {
		t.Fatalf("client alerts: %+v, %v", l, err)
	}

	// The webhook's token is in the rule, never in the log.
	if strings.Contains(h.log.String(), "token=secret") {
		t.Error("the log holds a webhook URL's token")
	}
}
