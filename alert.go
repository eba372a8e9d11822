package novacron

import (
	"context"
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Alert statuses: an alert fires, may be acknowledged by a person, and is
// resolved when its condition has cleared.
const (
	AlertFiring       = "firing"
	AlertAcknowledged = "acknowledged"
	AlertResolved     = "resolved"
)

// AlertStatuses are every alert status, in the order the API lists them.
var AlertStatuses = []string{AlertFiring, AlertAcknowledged, AlertResolved}

// Alert severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityError    = "error"
	SeverityCritical = "critical"
)

// AlertSeverities are every severity, from the mildest.
var AlertSeverities = []string{SeverityInfo, SeverityWarning, SeverityError, SeverityCritical}

// The kinds of resource an alert rule watches.
const (
	ResourceHost = "host"
	ResourceVM   = "vm"
)

// The event conditions a rule may watch instead of a metric.
const (
	MetricNodeOffline = "node_offline"
	MetricVMFailed    = "vm_failed"
)

// AlertMetric describes a metric (or event condition) an alert rule may
// watch: the resources that report it and whether it is a percentage.
type AlertMetric struct {
	Name    string
	Host    bool
	VM      bool
	Percent bool
	// Event conditions have no comparator or threshold.
	Event bool
}

// AlertMetrics are the fields of the VM and host points of metrics.go that
// a rule may compare, and the event conditions.
var AlertMetrics = []AlertMetric{
	{Name: "cpu_usage", Host: true, VM: true, Percent: true},
	{Name: "memory_usage", Host: true, VM: true, Percent: true},
	{Name: "disk_usage", Host: true, VM: true, Percent: true},
	{Name: "network_sent", Host: true, VM: true},
	{Name: "network_recv", Host: true, VM: true},
	{Name: "iops", VM: true},
	{Name: "memory_total", Host: true},
	{Name: "memory_available", Host: true},
	{Name: "disk_total", Host: true},
	{Name: "disk_available", Host: true},
	{Name: "load_average_1", Host: true},
	{Name: "load_average_5", Host: true},
	{Name: "load_average_15", Host: true},
	{Name: MetricNodeOffline, Host: true, Event: true},
	{Name: MetricVMFailed, VM: true, Event: true},
}

// LookupAlertMetric returns the metric of that name.
func LookupAlertMetric(name string) (AlertMetric, bool) {
	for _, m := range AlertMetrics {
		if m.Name == name {
			return m, true
		}
	}
	return AlertMetric{}, false
}

// HostValue returns the value of a host metric in p, nil when the sample
// did not measure it or the metric is not a host field.
func HostValue(p *HostPoint, metric string) *float64 {
	switch metric {
	case "cpu_usage":
		return p.CPUUsage
	case "memory_usage":
		return p.MemoryUsage
	case "memory_total":
		return p.MemoryTotal
	case "memory_available":
		return p.MemoryAvailable
	case "disk_usage":
		return p.DiskUsage
	case "disk_total":
		return p.DiskTotal
	case "disk_available":
		return p.DiskAvailable
	case "network_sent":
		return p.NetworkSent
	case "network_recv":
		return p.NetworkRecv
	case "load_average_1":
		return p.LoadAverage1
	case "load_average_5":
		return p.LoadAverage5
	case "load_average_15":
		return p.LoadAverage15
	}
	return nil
}

// VMValue returns the value of a VM metric in p, nil when the sample did
// not measure it or the metric is not a VM field.
func VMValue(p *VMPoint, metric string) *float64 {
	switch metric {
	case "cpu_usage":
		return p.CPUUsage
	case "memory_usage":
		return p.MemoryUsage
	case "disk_usage":
		return p.DiskUsage
	case "network_sent":
		return p.NetworkSent
	case "network_recv":
		return p.NetworkRecv
	case "iops":
		return p.IOPS
	}
	return nil
}

// AlertScope narrows the resources a rule watches. Empty fields do not
// narrow; Labels must all match the VM's (or node's) labels. A rule
// without TenantID is cluster-wide: only admins make those.
type AlertScope struct {
	TenantID string            `json:"tenant_id,omitempty"`
	NodeID   string            `json:"node_id,omitempty"`
	VMID     string            `json:"vm_id,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// AlertRule says when an alert fires: Metric of a Resource (host or vm)
// compared with Threshold for at least For, or an event condition
// (node_offline, vm_failed) holding for at least For.
type AlertRule struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Metric     string        `json:"metric"`
	Resource   string        `json:"resource"`
	Comparator string        `json:"comparator"`
	Threshold  float64       `json:"threshold"`
	For        time.Duration `json:"-"`
	Severity   string        `json:"severity"`
	Scope      AlertScope    `json:"scope"`
	WebhookURL string        `json:"webhook_url"`
	Enabled    bool          `json:"enabled"`
	CreatedAt  time.Time     `json:"created_at"`
	UpdatedAt  time.Time     `json:"updated_at"`
}

// MarshalJSON writes For as a Go duration string ("5m0s").
func (r AlertRule) MarshalJSON() ([]byte, error) {
	type plain AlertRule
	return json.Marshal(struct {
		plain
		For string `json:"for"`
	}{plain(r), r.For.String()})
}

// UnmarshalJSON reads For from a Go duration string, as MarshalJSON
// writes it.
func (r *AlertRule) UnmarshalJSON(b []byte) error {
	type plain AlertRule
	v := struct {
		*plain
		For string `json:"for"`
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.For = 0
	if v.For != "" {
		d, err := time.ParseDuration(v.For)
		if err != nil {
			return FieldError("for", "must be a duration like \"5m\"")
		}
		r.For = d
	}
	return nil
}

// Alert is one firing (or once firing) of a rule on one resource. There is
// at most one open (firing or acknowledged) alert per rule and resource.
// TenantID is the tenant of the VM; alerts on hosts have none and only
// admins see them. CurrentValue is the value when the alert last changed
// status (null for event conditions).
type Alert struct {
	ID             string            `json:"id"`
	RuleID         string            `json:"rule_id"`
	Name           string            `json:"name"`
	Description    string            `json:"description"`
	Severity       string            `json:"severity"`
	Status         string            `json:"status"`
	Resource       string            `json:"resource"`
	ResourceID     string            `json:"resource_id"`
	TenantID       string            `json:"tenant_id"`
	MetricName     string            `json:"metric_name"`
	Threshold      float64           `json:"threshold"`
	CurrentValue   *float64          `json:"current_value"`
	Labels         map[string]string `json:"labels"`
	StartTime      time.Time         `json:"start_time"`
	EndTime        *time.Time        `json:"end_time"`
	AcknowledgedBy string            `json:"acknowledged_by"`
	AcknowledgedAt *time.Time        `json:"acknowledged_at"`
}

// Open reports whether the alert is firing or acknowledged.
func (a *Alert) Open() bool { return a.Status == AlertFiring || a.Status == AlertAcknowledged }

// AlertFilter selects alerts. Status matches exactly; Open selects firing
// and acknowledged ones.
type AlertFilter struct {
	Page
	Status string
	Open   bool
}

// Limits of an alert rule.
const (
	MaxAlertRuleNameLen    = 100
	MaxAlertRuleFor        = 24 * time.Hour
	MaxAlertWebhookURLLen  = 2048
	MaxAlertScopeLabels    = 16
	MaxAlertLabelKeyLen    = 63
	MaxAlertLabelValueLen  = 255
	MaxAlertThreshold      = 1e18
	MaxAlertDescriptionLen = 1024
)

// Comparators of alert rules.
var AlertComparators = []string{">", ">=", "<", "<="}

// Compare reports whether v breaches threshold under comparator.
func Compare(comparator string, v, threshold float64) bool {
	switch comparator {
	case ">":
		return v > threshold
	case ">=":
		return v >= threshold
	case "<":
		return v < threshold
	case "<=":
		return v <= threshold
	}
	return false
}

// ValidateAlertRule checks a rule and fills its defaults: the resource of a
// metric only one kind reports, severity warning. Its errors are EInvalid
// naming the field. It checks the form of ids, not that they exist.
func ValidateAlertRule(r *AlertRule) error {
	switch {
	case r.Name == "" || strings.TrimSpace(r.Name) == "":
		return FieldError("name", "is required")
	case len(r.Name) > MaxAlertRuleNameLen:
		return FieldError("name", "must be at most %d bytes", MaxAlertRuleNameLen)
	case !utf8.ValidString(r.Name) || strings.IndexFunc(r.Name, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0:
		return FieldError("name", "must be printable text")
	}
	m, ok := LookupAlertMetric(r.Metric)
	if !ok {
		names := make([]string, len(AlertMetrics))
		for i, m := range AlertMetrics {
			names[i] = m.Name
		}
		return FieldError("metric", "must be one of %s", strings.Join(names, ", "))
	}
	switch r.Resource {
	case "":
		if m.VM {
			r.Resource = ResourceVM
		} else {
			r.Resource = ResourceHost
		}
	case ResourceHost:
		if !m.Host {
			return FieldError("resource", "%s is not a metric of hosts", m.Name)
		}
	case ResourceVM:
		if !m.VM {
			return FieldError("resource", "%s is not a metric of VMs", m.Name)
		}
	default:
		return FieldError("resource", "must be host or vm")
	}
	if m.Event {
		if r.Comparator != "" {
			return FieldError("comparator", "%s is an event condition: it takes no comparator", m.Name)
		}
		if r.Threshold != 0 {
			return FieldError("threshold", "%s is an event condition: it takes no threshold", m.Name)
		}
	} else {
		valid := false
		for _, c := range AlertComparators {
			valid = valid || c == r.Comparator
		}
		if !valid {
			return FieldError("comparator", "must be one of >, >=, <, <=")
		}
		switch {
		case math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0):
			return FieldError("threshold", "must be a finite number")
		case m.Percent && (r.Threshold < 0 || r.Threshold > 100):
			return FieldError("threshold", "%s is a percentage: must be between 0 and 100", m.Name)
		case r.Threshold < 0 || r.Threshold > MaxAlertThreshold:
			return FieldError("threshold", "must be between 0 and %g", float64(MaxAlertThreshold))
		}
	}
	if r.For < 0 || r.For > MaxAlertRuleFor {
		return FieldError("for", "must be a duration between 0s and %s", MaxAlertRuleFor)
	}
	if r.Severity == "" {
		r.Severity = SeverityWarning
	}
	if !validSeverity(r.Severity) {
		return FieldError("severity", "must be one of info, warning, error, critical")
	}
	if err := validateAlertScope(r); err != nil {
		return err
	}
	return ValidateWebhookURL(r.WebhookURL)
}

func validSeverity(s string) bool {
	for _, v := range AlertSeverities {
		if v == s {
			return true
		}
	}
	return false
}

func validateAlertScope(r *AlertRule) error {
	s := &r.Scope
	if r.Resource == ResourceHost {
		if s.TenantID != "" {
			return FieldError("scope.tenant_id", "hosts belong to no tenant: rules on hosts are cluster-wide")
		}
		if s.VMID != "" {
			return FieldError("scope.vm_id", "a rule on hosts takes no VM")
		}
	}
	for _, f := range []struct{ name, v string }{{"scope.tenant_id", s.TenantID}, {"scope.node_id", s.NodeID}, {"scope.vm_id", s.VMID}} {
		if f.v != "" && !uuidLike(f.v) {
			return FieldError(f.name, "must be an id")
		}
	}
	if len(s.Labels) > MaxAlertScopeLabels {
		return FieldError("scope.labels", "must have at most %d labels", MaxAlertScopeLabels)
	}
	for k, v := range s.Labels {
		if k == "" || len(k) > MaxAlertLabelKeyLen || !utf8.ValidString(k) {
			return FieldError("scope.labels", "keys must be 1 to %d bytes of text", MaxAlertLabelKeyLen)
		}
		if len(v) > MaxAlertLabelValueLen || !utf8.ValidString(v) {
			return FieldError("scope.labels", "values must be at most %d bytes of text", MaxAlertLabelValueLen)
		}
	}
	if len(s.Labels) == 0 {
		s.Labels = nil
	}
	return nil
}

// uuidLike reports whether s has the form of a UUID: 36 characters, hex
// digits and hyphens in the right places.
func uuidLike(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// ValidateWebhookURL checks a rule's webhook_url: empty, or an absolute
// http or https URL with a host, no user name or password, no fragment,
// at most MaxAlertWebhookURLLen bytes. Where it may point is checked when
// it is called.
func ValidateWebhookURL(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxAlertWebhookURLLen {
		return FieldError("webhook_url", "must be at most %d bytes", MaxAlertWebhookURLLen)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return FieldError("webhook_url", "is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return FieldError("webhook_url", "must be an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return FieldError("webhook_url", "must name a host")
	case u.User != nil:
		return FieldError("webhook_url", "must not carry a user name or password")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return FieldError("webhook_url", "must not have a fragment")
	}
	return nil
}

// AlertStore is the persistence of alert rules and alerts. The rules of
// Store apply (scopes, ENotFound for malformed ids and rows outside the
// scope). A tenant's scope sees the rules and alerts of its tenant only;
// cluster-wide ones (no tenant) are seen by AllTenants only.
type AlertStore interface {
	// CreateAlertRule inserts a validated rule (a new id when empty) and
	// reloads it. A rule's tenant is its Scope.TenantID; a missing tenant
	// is EInvalid naming scope.tenant_id, a taken id EConflict.
	CreateAlertRule(ctx context.Context, r *AlertRule) error
	GetAlertRule(ctx context.Context, scope Scope, id string) (*AlertRule, error)
	// ListAlertRules lists rules oldest first.
	ListAlertRules(ctx context.Context, scope Scope, page Page) ([]*AlertRule, string, error)
	// UpdateAlertRule writes every field of a validated rule but its id and
	// creation time, and reloads it. The rule must be in scope before and
	// after (a tenant scope cannot move it out: ENotFound).
	UpdateAlertRule(ctx context.Context, scope Scope, r *AlertRule) error
	// DeleteAlertRule deletes a rule; its alerts stay, without a rule.
	DeleteAlertRule(ctx context.Context, scope Scope, id string) error

	// OpenAlert inserts a firing alert (a new id when empty). A rule and
	// resource that already have an open alert is EConflict.
	OpenAlert(ctx context.Context, a *Alert) error
	// ResolveAlert resolves an open alert at end with its last value and
	// returns it; an alert already resolved is EInvalidState.
	ResolveAlert(ctx context.Context, id string, end time.Time, value *float64) (*Alert, error)
	// AcknowledgeAlert records who acknowledged a firing alert and when,
	// and returns it. An alert that is not firing is EInvalidState.
	AcknowledgeAlert(ctx context.Context, scope Scope, id, by string, at time.Time) (*Alert, error)
	GetAlert(ctx context.Context, scope Scope, id string) (*Alert, error)
	// ListAlerts lists alerts newest first. A bad Status is EInvalid.
	ListAlerts(ctx context.Context, scope Scope, f AlertFilter) ([]*Alert, string, error)
	// CountAlerts counts every alert by status (each status present, 0
	// when none).
	CountAlerts(ctx context.Context) (map[string]int, error)
}
