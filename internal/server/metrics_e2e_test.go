package server_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/monitor"
	"github.com/novacron/novacron/internal/server"
)

// TestMetricsOfARunningGuest runs a real process guest and reads its
// samples, and the host's, back through the API, as its tenant, another
// tenant, an operator and an admin.
func TestMetricsOfARunningGuest(t *testing.T) {
	requireGuests(t)
	stores(t, func(t *testing.T, db func(t *testing.T) string) {
		h := start(t, db(t), func(c *server.Config) {
			fastReconcile(c)
			c.AllowUserProcess = true
			c.MetricsInterval = time.Second
		})
		cleanGuests(t, h)
		admin := h.admin()
		acme := h.mkTenant(admin, "acme")
		_, alice := h.mkUser(admin, "alice", "user", acme)
		_, bob := h.mkUser(admin, "bob", "operator", acme)
		_, eve := h.mkUser(admin, "eve", "operator", h.mkTenant(admin, "other"))

		// Everything published and observed about the guest's samples.
		sub := h.srv.Events().Subscribe(1000, func(e events.Event) bool { return e.Type == events.TypeMetrics })
		defer sub.Close()
		observed := make(chan novacron.VMSample, 1000)
		stop := h.srv.Metrics().OnIngest(func(_ []novacron.HostSample, vms []novacron.VMSample) {
			for _, v := range vms {
				select {
				case observed <- v:
				default:
				}
			}
		})
		defer stop()

		body := processVM("sleeper", "/bin/sleep", "3600")
		body["start"] = true
		vm := h.want(h.req("POST", "/api/vm/vms?wait=1", alice, body), 200)
		id := vm.str("id")
		if vm.str("state") != "running" {
			t.Fatalf("VM is %s", vm.str("state"))
		}

		// Samples come every second; from the second on they have rates.
		var points []any
		eventually(t, "two samples of the guest", func() error {
			r := h.want(h.req("GET", "/api/vm/vms/"+id+"/metrics?from=-5m", alice, nil), 200)
			if r.str("vm_id") != id {
				return fmt.Errorf("vm_id %q", r.str("vm_id"))
			}
			points, _ = r.body["points"].([]any)
			for _, p := range points {
				if p.(map[string]any)["cpu_usage"] != nil {
					return nil
				}
			}
			return fmt.Errorf("%d points, none with cpu_usage yet", len(points))
		})
		for i, raw := range points {
			p := raw.(map[string]any)
			ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(p["ts"]))
			if err != nil || time.Since(ts) > 5*time.Minute || time.Until(ts) > time.Second {
				t.Errorf("point %d ts %v", i, p["ts"])
			}
			mem, ok := p["memory_usage"].(float64)
			if !ok || mem <= 0 || mem > 100 {
				t.Errorf("point %d memory_usage %v, want a percentage above 0", i, p["memory_usage"])
			}
			if cpu, ok := p["cpu_usage"].(float64); ok && (cpu < 0 || cpu > 100) {
				t.Errorf("point %d cpu_usage %v", i, cpu)
			}
			for _, k := range []string{"disk_usage", "network_sent", "network_recv", "iops"} {
				if _, present := p[k]; !present {
					t.Errorf("point %d has no %s (null when not measured)", i, k)
				}
			}
			if p["disk_usage"] != nil {
				t.Errorf("point %d disk_usage %v: a process guest's disk is not measured", i, p["disk_usage"])
			}
		}
		// A step averages them.
		r := h.want(h.req("GET", "/api/vm/vms/"+id+"/metrics?from=-10m&step=1h", alice, nil), 200)
		if ps, _ := r.body["points"].([]any); len(ps) < 1 || len(ps) > 2 {
			t.Errorf("step 1h over 10 minutes: %d points", len(ps))
		}

		// The latest sample of each VM the caller sees.
		for _, tok := range []string{alice, bob, admin} {
			r := h.want(h.req("GET", "/api/monitoring/vms", tok, nil), 200)
			found := false
			for _, it := range r.items() {
				if it["vm_id"] == id {
					found = true
					if it["node_id"] == "" || it["memory_usage"] == nil || it["ts"] == nil {
						t.Errorf("latest sample %v", it)
					}
				}
			}
			if !found {
				t.Errorf("the latest samples do not list the VM: %s", r.raw)
			}
		}
		if items := h.want(h.req("GET", "/api/monitoring/vms", eve, nil), 200).items(); len(items) != 0 {
			t.Errorf("another tenant sees %d VMs' samples", len(items))
		}
		h.want(h.req("GET", "/api/vm/vms/"+id+"/metrics", eve, nil), 404, "not_found")
		h.want(h.req("GET", "/api/vm/vms/not-an-id/metrics", alice, nil), 404, "not_found")
		h.want(h.req("GET", "/api/vm/vms/"+id+"/metrics", "", nil), 401, "unauthorized")

		// Parameters are checked, naming the field.
		for q, field := range map[string]string{
			"from=yesterday":    "from",
			"to=12:00":          "to",
			"step=fast":         "step",
			"step=1ms":          "step",
			"step=1s&from=-48h": "step",
			"from=-1h&to=-2h":   "from",
			"from=" + url.QueryEscape("2000-01-01T00:00:00Z"): "from",
		} {
			r := h.want(h.req("GET", "/api/vm/vms/"+id+"/metrics?"+q, alice, nil), 400, "invalid_request")
			d, _ := r.body["error"].(map[string]any)["details"].(map[string]any)
			if d["field"] != field {
				t.Errorf("?%s: error %s, want one naming %s", q, r.raw, field)
			}
		}

		// Host metrics: operators and admins, as for nodes.
		h.want(h.req("GET", "/api/monitoring/metrics", alice, nil), 403, "forbidden")
		var node string
		eventually(t, "host samples with rates", func() error {
			r := h.want(h.req("GET", "/api/monitoring/metrics?from=-5m", bob, nil), 200)
			series, _ := r.body["series"].([]any)
			if len(series) != 1 {
				return fmt.Errorf("%d series", len(series))
			}
			s := series[0].(map[string]any)
			node, _ = s["node_id"].(string)
			ps, _ := s["points"].([]any)
			if len(ps) < 2 {
				return fmt.Errorf("%d host points", len(ps))
			}
			last := ps[len(ps)-1].(map[string]any)
			for _, k := range []string{"cpu_usage", "memory_usage", "memory_total", "memory_available", "disk_usage",
				"disk_total", "disk_available", "network_sent", "network_recv", "load_average_1", "load_average_5", "load_average_15"} {
				if _, ok := last[k].(float64); !ok {
					return fmt.Errorf("host point without %s: %v", k, last)
				}
			}
			return nil
		})
		nodes := h.want(h.req("GET", "/api/nodes", admin, nil), 200).items()
		if len(nodes) != 1 || nodes[0]["id"] != node {
			t.Errorf("host series of node %s, nodes %v", node, nodes)
		}
		r = h.want(h.req("GET", "/api/monitoring/metrics?node_id="+node+"&step=1m&from=-5m", admin, nil), 200)
		if s, _ := r.body["series"].([]any); len(s) != 1 {
			t.Errorf("one node's series: %s", r.raw)
		}
		h.want(h.req("GET", "/api/monitoring/metrics?node_id=01890000-0000-7000-8000-000000000000", admin, nil), 400, "invalid_request")
		h.want(h.req("GET", "/api/monitoring/metrics?node_id=x", admin, nil), 400, "invalid_request")

		// Each sample was published for its tenant and given to observers.
		deadline := time.After(10 * time.Second)
		var gotEvent, gotObserved bool
		for !gotEvent || !gotObserved {
			select {
			case e := <-sub.C:
				if e.About([]string{id}) {
					gotEvent = true
					if vms := e.Data.(monitor.VMEvent).VMs; e.TenantID != acme || len(vms) != 1 || vms[0].VMID != id {
						t.Fatalf("event %+v", e)
					}
				}
			case v := <-observed:
				if v.VMID == id {
					gotObserved = true
					if v.TenantID != acme || v.NodeID != node {
						t.Fatalf("observed %+v", v)
					}
				}
			case <-sub.Dropped:
				t.Fatal("the test's subscription fell behind")
			case <-deadline:
				t.Fatalf("event seen %v, observed %v", gotEvent, gotObserved)
			}
		}
		ls, err := h.srv.Metrics().Latest(t.Context())
		if err != nil || len(ls) != 1 || ls[0].VMID != id || ls[0].TenantID != acme {
			t.Errorf("Latest = %+v, %v", ls, err)
		}

		// A stopped guest is no longer sampled; its samples stay.
		h.want(h.req("POST", "/api/vm/vms/"+id+"/stop?wait=1", alice, map[string]any{"force": true}), 200)
		time.Sleep(1500 * time.Millisecond)
		r = h.want(h.req("GET", "/api/vm/vms/"+id+"/metrics?from=-5m", alice, nil), 200)
		ps, _ := r.body["points"].([]any)
		n := len(ps)
		time.Sleep(2500 * time.Millisecond)
		r = h.want(h.req("GET", "/api/vm/vms/"+id+"/metrics?from=-5m", alice, nil), 200)
		if ps, _ := r.body["points"].([]any); len(ps) != n || n == 0 {
			t.Errorf("a stopped VM: %d points, then %d", n, len(ps))
		}
	})
}

// waitUsage waits for a sample of the VM with its CPU and memory usage
// measured, as GET /api/vm/vms/{id}/metrics shows it.
func waitUsage(t *testing.T, h *harness, token, id string) {
	t.Helper()
	eventually(t, "a sample with CPU and memory usage", func() error {
		r := h.want(h.req("GET", "/api/vm/vms/"+id+"/metrics?from=-5m", token, nil), 200)
		pts, _ := r.body["points"].([]any)
		for _, p := range pts {
			pt, _ := p.(map[string]any)
			cpu, okc := pt["cpu_usage"].(float64)
			mem, okm := pt["memory_usage"].(float64)
			if okc && okm && cpu >= 0 && mem > 0 && mem <= 100 {
				return nil
			}
		}
		return fmt.Errorf("points %v", pts)
	})
}
