package server_test

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/novacron/novacron/internal/events"
	"github.com/novacron/novacron/internal/testenv"
)

// TestMetricsPassPromtool scrapes the real server's /metrics, with VMs,
// operations, a monitoring stream and requests behind it, and has promtool
// check the text (format and naming conventions).
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testenv.Missing(t, "promtool", "scripts/install-test-deps.sh installs it")
	}
	h := start(t, "", fakeDrivers)
	admin := h.admin()
	id := h.want(h.req("POST", "/api/vm/vms?wait=1", admin, map[string]any{"name": "web", "driver": "qemu",
		"cpus": 1, "memory_mb": 64, "start": true}), 200).str("id")
	h.want(h.req("POST", "/api/vm/vms/"+id+"/stop?wait=1", admin, nil), 200)
	h.want(h.req("POST", "/api/vm/vms/"+id+"/pause?wait=1", admin, nil), 409)
	c, _ := h.dialMonitoring(admin, "types=vm_state", byQuery)
	if c == nil {
		t.Fatal("no stream")
	}
	waitSubscribers(t, h, 1)
	h.srv.Events().Publish(events.Event{Type: events.TypeNode, Data: "x"})

	// The stream counts once its session runs, a moment after the
	// client's dial returns.
	var r reply
	eventually(t, "the stream counted", func() error {
		r = h.want(h.req("GET", "/metrics", admin, nil), 200)
		if !bytes.Contains(r.raw, []byte(`novacron_websocket_clients{route="/ws/monitoring"} 1`)) {
			return errors.New("not yet")
		}
		return nil
	})
	for _, s := range []string{`novacron_vms{state="stopped"} 1`, `novacron_operations_total{action="stop",result="succeeded"} 1`,
		`novacron_websocket_clients{route="/ws/monitoring"} 1`, `novacron_http_request_duration_seconds_bucket{code="409",`} {
		if !bytes.Contains(r.raw, []byte(s)) {
			t.Errorf("/metrics has no %s", s)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(r.raw)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
