package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/novacron/novacron"
)

// PrepareAlertRule validates r for CreateAlertRule or UpdateAlertRule and
// returns a copy with a new id (when empty) and canonical ids in its scope.
// r itself is not changed.
func PrepareAlertRule(r *novacron.AlertRule) (novacron.AlertRule, error) {
	if r == nil {
		return novacron.AlertRule{}, novacron.FieldError("rule", "is required")
	}
	v := *r
	v.Scope.Labels = cloneLabels(r.Scope.Labels)
	if err := novacron.ValidateAlertRule(&v); err != nil {
		return v, err
	}
	for _, f := range []struct {
		name string
		id   *string
	}{{"scope.tenant_id", &v.Scope.TenantID}, {"scope.node_id", &v.Scope.NodeID}, {"scope.vm_id", &v.Scope.VMID}} {
		if *f.id == "" {
			continue
		}
		id, ok := ParseID(*f.id)
		if !ok {
			return v, novacron.FieldError(f.name, "must be an id")
		}
		*f.id = id
	}
	if v.For%time.Second != 0 {
		return v, novacron.FieldError("for", "must be a whole number of seconds")
	}
	if err := AssignID(&v.ID); err != nil {
		return v, err
	}
	return v, nil
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// ruleScope is the scope column of a rule: its tenant is a column of its own.
type ruleScope struct {
	NodeID string            `json:"node_id,omitempty"`
	VMID   string            `json:"vm_id,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// EncodeRuleScope returns the scope column of a rule.
func EncodeRuleScope(s novacron.AlertScope) ([]byte, error) {
	return json.Marshal(ruleScope{NodeID: s.NodeID, VMID: s.VMID, Labels: s.Labels})
}

// DecodeRuleScope reads the scope column of a rule of the tenant.
func DecodeRuleScope(b []byte, tenant string) (novacron.AlertScope, error) {
	var rs ruleScope
	if err := json.Unmarshal(b, &rs); err != nil {
		return novacron.AlertScope{}, fmt.Errorf("store: rule scope: %w", err)
	}
	return novacron.AlertScope{TenantID: tenant, NodeID: rs.NodeID, VMID: rs.VMID, Labels: rs.Labels}, nil
}

// PrepareAlert checks a new alert for OpenAlert and returns a copy with a
// new id (when empty), status firing and canonical rule and tenant ids.
func PrepareAlert(a *novacron.Alert) (novacron.Alert, error) {
	if a == nil {
		return novacron.Alert{}, novacron.FieldError("alert", "is required")
	}
	v := *a
	v.Status = novacron.AlertFiring
	v.EndTime, v.AcknowledgedAt, v.AcknowledgedBy = nil, nil, ""
	if v.Name == "" {
		return v, novacron.FieldError("name", "is required")
	}
	rule, ok := ParseID(v.RuleID)
	if !ok {
		return v, novacron.FieldError("rule_id", "must be an id")
	}
	v.RuleID = rule
	if v.TenantID != "" {
		t, ok := ParseID(v.TenantID)
		if !ok {
			return v, novacron.FieldError("tenant_id", "must be an id")
		}
		v.TenantID = t
	}
	if len(v.Description) > novacron.MaxAlertDescriptionLen {
		v.Description = strings.ToValidUTF8(v.Description[:novacron.MaxAlertDescriptionLen], "")
	}
	v.StartTime = Time(v.StartTime)
	if err := AssignID(&v.ID); err != nil {
		return v, err
	}
	return v, nil
}

// ValidAlertStatus returns EInvalid naming the field status unless s is
// empty or a status.
func ValidAlertStatus(s string) error {
	for _, v := range novacron.AlertStatuses {
		if s == v || s == "" {
			return nil
		}
	}
	return novacron.FieldError("status", "must be firing, acknowledged or resolved")
}

// AlertOpen is the EConflict of a rule and resource that already have an
// open alert.
func AlertOpen() error {
	return novacron.Errorf(novacron.EConflict, "this rule already has an open alert on this resource")
}

// AlertNotOpen is the EInvalidState of an alert that cannot change as asked.
func AlertNotOpen(status string) error {
	return novacron.Errorf(novacron.EInvalidState, "the alert is %s", status)
}
