package alert

import (
	"context"
	"fmt"
	"time"

	"github.com/novacron/novacron"
)

// defaultRulesSetting records that the default rules were created: an
// admin who deletes one does not see it come back at the next start.
const defaultRulesSetting = "alert_default_rules"

// DefaultRules are the rules a new database starts with, cluster-wide.
// Their ids are fixed, so that replicas starting together create each once.
func DefaultRules() []*novacron.AlertRule {
	host := func(id, name, metric string) *novacron.AlertRule {
		return &novacron.AlertRule{ID: id, Name: name, Metric: metric, Resource: novacron.ResourceHost, Comparator: ">",
			Threshold: 90, For: 5 * time.Minute, Severity: novacron.SeverityWarning, Enabled: true}
	}
	return []*novacron.AlertRule{
		host("01900000-0000-7000-8000-a1e700000001", "Host CPU over 90%", "cpu_usage"),
		host("01900000-0000-7000-8000-a1e700000002", "Host memory over 90%", "memory_usage"),
		host("01900000-0000-7000-8000-a1e700000003", "Host disk over 90%", "disk_usage"),
		{ID: "01900000-0000-7000-8000-a1e700000004", Name: "Node offline", Metric: novacron.MetricNodeOffline,
			Resource: novacron.ResourceHost, Severity: novacron.SeverityCritical, Enabled: true},
		{ID: "01900000-0000-7000-8000-a1e700000005", Name: "VM failed", Metric: novacron.MetricVMFailed,
			Resource: novacron.ResourceVM, Severity: novacron.SeverityError, Enabled: true},
	}
}

// EnsureDefaultRules creates the default rules unless the database
// records that it did once. It is idempotent, and safe for replicas that
// start at the same time.
func EnsureDefaultRules(ctx context.Context, st Store) error {
	_, err := st.GetSetting(ctx, defaultRulesSetting)
	if err == nil {
		return nil
	}
	if !novacron.IsCode(err, novacron.ENotFound) {
		return fmt.Errorf("alert: default rules: %w", err)
	}
	for _, r := range DefaultRules() {
		if err := st.CreateAlertRule(ctx, r); err != nil && !novacron.IsCode(err, novacron.EConflict) {
			return fmt.Errorf("alert: default rule %q: %w", r.Name, err)
		}
	}
	if _, err := st.SetSettingIfAbsent(ctx, defaultRulesSetting, "created"); err != nil {
		return fmt.Errorf("alert: default rules: %w", err)
	}
	return nil
}
