package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/httpapi"
)

// fakeSamples is a VMMetricsSource.
type fakeSamples struct {
	mu      sync.Mutex
	samples []novacron.VMSample
	err     error
}

func (f *fakeSamples) Latest(context.Context) ([]novacron.VMSample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.samples, f.err
}

func (f *fakeSamples) set(s []novacron.VMSample, err error) {
	f.mu.Lock()
	f.samples, f.err = s, err
	f.mu.Unlock()
}

// fakeAlerts is an AlertCounter.
type fakeAlerts map[string]int

func (f fakeAlerts) Counts(context.Context) (map[string]int, error) { return f, nil }

var (
	_ httpapi.VMMetricsSource = (*fakeSamples)(nil)
	_ httpapi.AlertCounter    = fakeAlerts(nil)
)

func ptr(f float64) *float64 { return &f }

// exposition is a scrape: each sample's name{labels} (labels as written,
// sorted by name) and value, and the families named by # TYPE.
type exposition struct {
	samples  map[string]float64
	families map[string]string
}

func parseExposition(t *testing.T, body string) exposition {
	t.Helper()
	e := exposition{samples: map[string]float64{}, families: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			e.families[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("a sample without a value: %q", line)
		}
		e.samples[line[:i]] = v
	}
	return e
}

func (w *consoleWorld) scrape() exposition {
	w.t.Helper()
	status, h, b := w.do("GET", "/metrics", w.tokens["admin"], nil)
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		w.t.Fatalf("/metrics: %d %s: %.300s", status, h.Get("Content-Type"), b)
	}
	return parseExposition(w.t, string(b))
}

// scrapeWith scrapes until series is there: a WebSocket counts once its
// session runs, a moment after the client's dial returns.
func (w *consoleWorld) scrapeWith(series string) exposition {
	w.t.Helper()
	var e exposition
	eventually(w.t, series, func() error {
		e = w.scrape()
		if _, ok := e.samples[series]; !ok {
			return errors.New("not yet")
		}
		return nil
	})
	return e
}

func (e exposition) want(t *testing.T, series string, v float64) {
	t.Helper()
	got, ok := e.samples[series]
	if !ok {
		t.Errorf("no series %s", series)
	} else if got != v {
		t.Errorf("%s = %g, want %g", series, got, v)
	}
}

func (e exposition) absent(t *testing.T, prefix string) {
	t.Helper()
	for s := range e.samples {
		if strings.HasPrefix(s, prefix) {
			t.Errorf("series %s, want none", s)
		}
	}
}

func TestMetricsSeries(t *testing.T) {
	src := &fakeSamples{}
	bus := events.NewBus()
	w := newConsoleWorld(t, httpapi.Config{VMMetrics: src, AlertCounts: fakeAlerts{"firing": 2, "acknowledged": 1}, Events: bus})
	running := w.mkVM("alice", "web", novacron.DriverProcess, true)
	stopped := w.mkVM("eve", "db", novacron.DriverProcess, true)
	w.act("eve", stopped, "stop")
	var tenant, node string
	{
		v, err := w.store.GetVM(context.Background(), novacron.AllTenants, running)
		if err != nil {
			t.Fatal(err)
		}
		tenant, node = v.TenantID, v.NodeID
	}
	now := time.Now()
	src.set([]novacron.VMSample{
		{VMID: running, TenantID: tenant, NodeID: node, VMPoint: novacron.VMPoint{TS: now.Add(-time.Minute), CPUUsage: ptr(99)}},
		{VMID: running, TenantID: tenant, NodeID: node, VMPoint: novacron.VMPoint{TS: now, CPUUsage: ptr(12.5),
			MemoryUsage: ptr(40), DiskUsage: ptr(3), NetworkSent: ptr(1000), NetworkRecv: ptr(2000), IOPS: ptr(7)}},
		// Not measured: no series at all.
		{VMID: stopped, TenantID: "t2", NodeID: node, VMPoint: novacron.VMPoint{TS: now}},
	}, nil)
	// An open stream shows in the clients gauge.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(w.url, "http")+"/ws/monitoring?token="+w.tokens["bob"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()

	e := w.scrapeWith(`novacron_websocket_clients{route="/ws/monitoring"}`)
	e.want(t, `novacron_vms{state="running"}`, 1)
	e.want(t, `novacron_vms{state="stopped"}`, 1)
	e.want(t, `novacron_vms{state="failed"}`, 0)
	labels := `{node="` + node + `",tenant="` + tenant + `",vm="` + running + `"}`
	e.want(t, `novacron_vm_cpu_usage_percent`+labels, 12.5)
	e.want(t, `novacron_vm_memory_usage_percent`+labels, 40)
	e.want(t, `novacron_vm_disk_usage_percent`+labels, 3)
	e.want(t, `novacron_vm_network_sent_bytes_per_second`+labels, 1000)
	e.want(t, `novacron_vm_network_recv_bytes_per_second`+labels, 2000)
	e.want(t, `novacron_vm_disk_iops`+labels, 7)
	for s := range e.samples {
		if strings.HasPrefix(s, "novacron_vm_") && strings.Contains(s, stopped) {
			t.Errorf("a series of a VM with nothing measured: %s", s)
		}
	}
	e.want(t, `novacron_alerts{status="firing"}`, 2)
	e.want(t, `novacron_alerts{status="acknowledged"}`, 1)
	e.want(t, `novacron_alerts{status="resolved"}`, 0)
	e.want(t, `novacron_operations_total{action="create",result="succeeded"}`, 2)
	e.want(t, `novacron_operations_total{action="stop",result="succeeded"}`, 1)
	e.want(t, `novacron_websocket_clients{route="/ws/monitoring"}`, 1)
	e.want(t, `novacron_http_request_duration_seconds_count{code="200",route="/api/vm/vms/{id}/stop"}`, 1)
	e.want(t, `novacron_http_request_duration_seconds_count{code="101",route="/ws/monitoring"}`, 1)
	for name, typ := range map[string]string{"novacron_vms": "gauge", "novacron_vm_cpu_usage_percent": "gauge",
		"novacron_operations_total": "counter", "novacron_http_request_duration_seconds": "histogram",
		"novacron_websocket_clients": "gauge", "go_goroutines": "gauge"} {
		if e.families[name] != typ {
			t.Errorf("family %s is %q, want %s", name, e.families[name], typ)
		}
	}

	// A source that fails leaves its series out; the scrape still works.
	src.set(nil, errors.New("metrics store down"))
	e = w.scrape()
	e.absent(t, "novacron_vm_cpu_usage_percent")
	e.want(t, `novacron_vms{state="running"}`, 1)
}

// TestMetricsAccess: admins and the metrics token, no one else.
func TestMetricsAccess(t *testing.T) {
	w := newConsoleWorld(t, httpapi.Config{MetricsToken: "metrics-token-0123456789"})
	for _, c := range []struct {
		token  string
		status int
	}{{"", 401}, {w.tokens["alice"], 403}, {w.tokens["oscar"], 403}, {w.tokens["admin"], 200}, {"metrics-token-0123456789", 200}} {
		if status, _, b := w.do("GET", "/metrics", c.token, nil); status != c.status {
			t.Errorf("token %.8s…: %d, want %d: %.200s", c.token, status, c.status, b)
		}
	}
}

// exprMetric finds the metric names in a PromQL expression: identifiers
// that start with novacron_ or go_ (the server's families and the
// runtime's), not inside a label matcher's quotes.
var exprMetric = regexp.MustCompile(`\b((?:novacron|go|process)_[a-zA-Z0-9_]*)`)

// TestGrafanaDashboard checks that deploy/grafana/novacron.json is a
// dashboard and that each metric its queries name is one the server
// exports.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/novacron.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatal("no title or no panels")
	}

	src := &fakeSamples{}
	w := newConsoleWorld(t, httpapi.Config{VMMetrics: src, AlertCounts: fakeAlerts{}, Events: events.NewBus()})
	id := w.mkVM("alice", "web", novacron.DriverProcess, true)
	v := ptr(1)
	src.set([]novacron.VMSample{{VMID: id, TenantID: "t", NodeID: "n", VMPoint: novacron.VMPoint{TS: time.Now(),
		CPUUsage: v, MemoryUsage: v, DiskUsage: v, NetworkSent: v, NetworkRecv: v, IOPS: v}}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(w.url, "http")+"/ws/monitoring?token="+w.tokens["bob"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	e := w.scrapeWith(`novacron_websocket_clients{route="/ws/monitoring"}`)
	exported := func(name string) bool {
		if _, ok := e.families[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && e.families[base] == "histogram" {
				return true
			}
		}
		return false
	}
	var used []string
	for _, p := range dash.Panels {
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := exprMetric.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: no metric in %q", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !exported(n) {
					t.Errorf("panel %q: %s is not exported", p.Title, n)
				}
				if !slices.Contains(used, n) {
					used = append(used, n)
				}
			}
		}
	}
	// Every family of the fleet is on the dashboard.
	for _, n := range []string{"novacron_vms", "novacron_vm_cpu_usage_percent", "novacron_vm_memory_usage_percent",
		"novacron_vm_disk_usage_percent", "novacron_vm_network_sent_bytes_per_second",
		"novacron_vm_network_recv_bytes_per_second", "novacron_alerts", "novacron_operations_total",
		"novacron_websocket_clients", "novacron_http_request_duration_seconds_bucket"} {
		if !slices.Contains(used, n) {
			t.Errorf("the dashboard does not use %s", n)
		}
	}
}
