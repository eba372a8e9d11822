package novacron_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/novacron/novacron"
)

func TestAlertRuleJSON(t *testing.T) {
	r := novacron.AlertRule{ID: "x", Name: "n", Metric: "cpu_usage", Resource: "vm", Comparator: ">", Threshold: 90,
		For: 90 * time.Second, Severity: "warning", Scope: novacron.AlertScope{Labels: map[string]string{"a": "b"}}, Enabled: true}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["for"] != "1m30s" || m["threshold"] != 90.0 || m["name"] != "n" {
		t.Fatalf("JSON %s", b)
	}
	var back novacron.AlertRule
	if err := json.Unmarshal(b, &back); err != nil || back.For != r.For || back.Name != r.Name || back.Scope.Labels["a"] != "b" {
		t.Fatalf("round trip %+v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"for":"soon"}`), &back); err == nil {
		t.Fatal("a bad duration was read")
	}
}

func TestValidateAlertRule(t *testing.T) {
	valid := func() novacron.AlertRule {
		return novacron.AlertRule{Name: "n", Metric: "cpu_usage", Comparator: ">", Threshold: 90}
	}
	r := valid()
	if err := novacron.ValidateAlertRule(&r); err != nil || r.Resource != "vm" || r.Severity != "warning" {
		t.Fatalf("%+v, %v", r, err)
	}
	r = novacron.AlertRule{Name: "n", Metric: "load_average_1", Comparator: "<", Threshold: 1000}
	if err := novacron.ValidateAlertRule(&r); err != nil || r.Resource != "host" {
		t.Fatalf("host metric: %+v, %v", r, err)
	}
	r = novacron.AlertRule{Name: "n", Metric: "node_offline"}
	if err := novacron.ValidateAlertRule(&r); err != nil || r.Resource != "host" {
		t.Fatalf("event: %+v, %v", r, err)
	}
	for field, mod := range map[string]func(*novacron.AlertRule){
		"name":            func(r *novacron.AlertRule) { r.Name = "a\nb" },
		"metric":          func(r *novacron.AlertRule) { r.Metric = "" },
		"resource":        func(r *novacron.AlertRule) { r.Resource = "disk" },
		"comparator":      func(r *novacron.AlertRule) { r.Comparator = "" },
		"threshold":       func(r *novacron.AlertRule) { r.Threshold = math.NaN() },
		"for":             func(r *novacron.AlertRule) { r.For = -time.Second },
		"severity":        func(r *novacron.AlertRule) { r.Severity = "page" },
		"scope.node_id":   func(r *novacron.AlertRule) { r.Scope.NodeID = "n1" },
		"scope.labels":    func(r *novacron.AlertRule) { r.Scope.Labels = map[string]string{"": "x"} },
		"webhook_url":     func(r *novacron.AlertRule) { r.WebhookURL = "https://example.com/#frag" },
		"scope.vm_id":     func(r *novacron.AlertRule) { r.Resource, r.Scope.VMID = "host", "01890000-0000-7000-8000-000000000000" },
		"scope.tenant_id": func(r *novacron.AlertRule) { r.Scope.TenantID = "t" },
	} {
		r := valid()
		mod(&r)
		err := novacron.ValidateAlertRule(&r)
		var e *novacron.Error
		if !errors.As(err, &e) || e.Code != novacron.EInvalid || e.Details["field"] != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		cmp  string
		v    float64
		want bool
	}{{">", 90, false}, {">", 90.1, true}, {">=", 90, true}, {"<", 90, false}, {"<", 89, true}, {"<=", 90, true}, {"==", 90, false}} {
		if got := novacron.Compare(tc.cmp, tc.v, 90); got != tc.want {
			t.Errorf("%v %s 90 = %v", tc.v, tc.cmp, got)
		}
	}
}

func TestMetricValues(t *testing.T) {
	v := 7.0
	hp := novacron.HostPoint{LoadAverage15: &v}
	vp := novacron.VMPoint{IOPS: &v}
	for _, m := range novacron.AlertMetrics {
		if m.Event {
			continue
		}
		// Every metric reads its own field of the points that report it.
		if m.Host {
			p := novacron.HostPoint{}
			setHost(&p, m.Name, 3)
			if got := novacron.HostValue(&p, m.Name); got == nil || *got != 3 {
				t.Errorf("host %s = %v", m.Name, got)
			}
		}
		if m.VM {
			p := novacron.VMPoint{}
			setVM(&p, m.Name, 3)
			if got := novacron.VMValue(&p, m.Name); got == nil || *got != 3 {
				t.Errorf("vm %s = %v", m.Name, got)
			}
		}
	}
	if novacron.HostValue(&hp, "cpu_usage") != nil || novacron.VMValue(&vp, "cpu_usage") != nil {
		t.Error("an unmeasured value is not nil")
	}
}

// setHost and setVM set a point's field by its JSON name.
func setHost(p *novacron.HostPoint, name string, v float64) { setField(p, name, v) }
func setVM(p *novacron.VMPoint, name string, v float64)     { setField(p, name, v) }

func setField(p any, name string, v float64) {
	b, _ := json.Marshal(map[string]float64{name: v})
	_ = json.Unmarshal(b, p)
}
