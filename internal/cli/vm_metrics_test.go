package cli

import (
	"encoding/json"
	"testing"
)

func TestVMMetrics(t *testing.T) {
	f, c := vmCLI(t)
	out := c.mustRun("", "vm", "metrics", "slow", "--from", "-24h", "--step", "30s")
	want := `TIME                  CPU %  MEMORY %  DISK %  NET OUT B/S  NET IN B/S  IOPS
2024-05-06T07:08:00Z  12.50  40.00     -       1234         -           3.2
2024-05-06T07:08:30Z  -      41.01     -       -            -           -
`
	if out != want {
		t.Errorf("metrics:\n%s\nwant:\n%s", out, want)
	}
	if !f.seen("GET /api/vm/vms/" + idSlow + "/metrics?from=-24h&step=30s") {
		t.Errorf("requests = %v", f.requestLog())
	}
	out = c.mustRun("", "vm", "metrics", "slow", "-o", "json")
	var m struct {
		VMID   string           `json:"vm_id"`
		Points []map[string]any `json:"points"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.VMID != idSlow || len(m.Points) != 2 || m.Points[1]["cpu_usage"] != nil {
		t.Errorf("json %s: %v", out, err)
	}
	if _, present := m.Points[1]["cpu_usage"]; !present {
		t.Errorf("json leaves out an unmeasured value instead of null: %s", out)
	}
	if !f.seen("GET /api/vm/vms/" + idSlow + "/metrics") {
		t.Errorf("requests = %v", f.requestLog())
	}
}
