package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/novacron/novacron/internal/server"
)

// TestAlertOnRealLoad: a process guest that spins a core shows its load
// in its samples, on its tenant's stream and in /metrics; an operator's
// rule on its CPU fires on that load, is acknowledged, and resolves on its
// own once the load stops.
func TestAlertOnRealLoad(t *testing.T) {
	requireGuests(t)
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), func(c *server.Config) {
			fastAlerts(c)
			c.AllowUserProcess = true
			c.MetricsInterval = time.Second
			c.AlertStaleAfter = 3 * time.Second
		})
		cleanGuests(t, h)
		admin := h.admin()
		acme := h.mkTenant(admin, "acme")
		_, alice := h.mkUser(admin, "alice", "user", acme)
		_, olga := h.mkUser(admin, "olga", "operator", acme)

		body := processVM("spinner", "/bin/sh", "-c", "while :; do :; done")
		body["start"] = true
		id := h.want(h.req("POST", "/api/vm/vms?wait=1", alice, body), 200).str("id")
		defer h.req("DELETE", "/api/vm/vms/"+id+"?wait=1", admin, nil)

		// The tenant's stream, for this VM.
		ws, _ := h.dialMonitoring(alice, "types=metrics,alert&vm_id="+id, byHeader)
		events := make(chan streamEvent, 1000)
		go func() {
			for {
				e, err := nextEvent(t, ws, 5*time.Minute)
				if err != nil {
					close(events)
					return
				}
				events <- e
			}
		}()

		rule := h.want(h.req("POST", "/api/monitoring/alert-rules", olga, map[string]any{"name": "busy", "metric": "cpu_usage",
			"comparator": ">", "threshold": 50, "for": "2s", "severity": "warning", "scope": map[string]any{"vm_id": id}}), 201).str("id")

		// The load, in the samples.
		eventually(t, "a sample of the guest over 50 % CPU", func() error {
			r := h.want(h.req("GET", "/api/vm/vms/"+id+"/metrics?from=-5m", alice, nil), 200)
			pts, _ := r.body["points"].([]any)
			for _, p := range pts {
				if cpu, ok := p.(map[string]any)["cpu_usage"].(float64); ok && cpu > 50 {
					return nil
				}
			}
			return fmt.Errorf("points %v", pts)
		})
		// The rule fires on it.
		var alert map[string]any
		eventually(t, "the busy alert firing", func() error {
			for _, a := range h.want(h.req("GET", "/api/monitoring/alerts?status=firing", alice, nil), 200).items() {
				if a["rule_id"] == rule && a["resource_id"] == id {
					alert = a
					return nil
				}
			}
			return fmt.Errorf("no firing alert of rule %s", rule)
		})
		if v, _ := alert["current_value"].(float64); v <= 50 || alert["metric_name"] != "cpu_usage" {
			t.Fatalf("alert %v", alert)
		}
		// /metrics shows the VM's CPU and the firing alert.
		eventually(t, "/metrics with the VM's CPU", func() error {
			req, _ := http.NewRequest("GET", h.url+"/metrics", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			text := string(b)
			var cpuLine bool
			for _, l := range strings.Split(text, "\n") {
				if strings.HasPrefix(l, "novacron_vm_cpu_usage_percent{") && strings.Contains(l, `vm="`+id+`"`) && strings.Contains(l, `tenant="`+acme+`"`) {
					cpuLine = true
				}
			}
			if !cpuLine || !strings.Contains(text, `novacron_alerts{status="firing"} `) || strings.Contains(text, `novacron_alerts{status="firing"} 0`) {
				return fmt.Errorf("no VM CPU or firing alert in /metrics")
			}
			return nil
		})

		ack := h.want(h.req("POST", "/api/monitoring/alerts/"+alert["id"].(string)+"/acknowledge", olga, nil), 200)
		if ack.str("status") != "acknowledged" || ack.str("acknowledged_by") != "olga" {
			t.Fatalf("acknowledged %s", ack.raw)
		}

		// The load stops: the VM no longer reports, its alert resolves.
		h.want(h.req("POST", "/api/vm/vms/"+id+"/stop?wait=1", alice, map[string]any{"force": true}), 200)
		eventually(t, "the busy alert resolved", func() error {
			for _, a := range h.want(h.req("GET", "/api/monitoring/alerts?status=resolved", alice, nil), 200).items() {
				if a["id"] == alert["id"] {
					if a["acknowledged_by"] != "olga" || a["end_time"] == nil {
						return fmt.Errorf("resolved %v", a)
					}
					return nil
				}
			}
			return fmt.Errorf("alert %s not resolved", alert["id"])
		})

		// The stream carried the VM's samples and the alert's life.
		var sawSample bool
		statuses := map[string]bool{}
		deadline := time.After(60 * time.Second)
		for !(sawSample && statuses["firing"] && statuses["acknowledged"] && statuses["resolved"]) {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("the stream ended; samples %v, alert statuses %v", sawSample, statuses)
				}
				switch e.Type {
				case "metrics":
					var d struct {
						VMs []struct {
							VMID     string   `json:"vm_id"`
							CPUUsage *float64 `json:"cpu_usage"`
						} `json:"vms"`
					}
					if err := json.Unmarshal(e.Data, &d); err != nil {
						t.Fatal(err)
					}
					for _, v := range d.VMs {
						sawSample = sawSample || (v.VMID == id && v.CPUUsage != nil && *v.CPUUsage > 50)
					}
				case "alert":
					if e.field("id") == alert["id"] {
						statuses[e.field("status")] = true
					}
				default:
					t.Fatalf("event of type %s", e.Type)
				}
			case <-deadline:
				t.Fatalf("on the stream: a busy sample %v, alert statuses %v", sawSample, statuses)
			}
		}
	})
}
