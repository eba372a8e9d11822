package alert

import (
	"context"
	"strconv"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
)

// RuleRequest is the body of a rule's creation (POST) or change (PUT):
// the fields of novacron.AlertRule a client sets. A change sets only the
// fields it names.
type RuleRequest struct {
	Name       *string              `json:"name"`
	Metric     *string              `json:"metric"`
	Resource   *string              `json:"resource"`
	Comparator *string              `json:"comparator"`
	Threshold  *float64             `json:"threshold"`
	For        *string              `json:"for"`
	Severity   *string              `json:"severity"`
	Scope      *novacron.AlertScope `json:"scope"`
	WebhookURL *string              `json:"webhook_url"`
	Enabled    *bool                `json:"enabled"`
}

// maxDurationText bounds the text of "for".
const maxDurationText = 32

// MaxTenantRules bounds the rules of one tenant, which every sample of its
// VMs is evaluated against.
const MaxTenantRules = 200

// apply writes the request's fields onto r.
func (q *RuleRequest) apply(r *novacron.AlertRule) error {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&r.Name, q.Name)
	if q.Metric != nil && *q.Metric != r.Metric {
		r.Metric = *q.Metric
		if m, ok := novacron.LookupAlertMetric(r.Metric); ok && m.Event {
			// An event condition has no comparator or threshold: a change
			// to one drops those the rule had unless it names them.
			if q.Comparator == nil {
				r.Comparator = ""
			}
			if q.Threshold == nil {
				r.Threshold = 0
			}
		}
		if q.Resource == nil {
			r.Resource = ""
		}
	}
	set(&r.Resource, q.Resource)
	set(&r.Comparator, q.Comparator)
	if q.Threshold != nil {
		r.Threshold = *q.Threshold
	}
	if q.For != nil {
		if len(*q.For) > maxDurationText {
			return novacron.FieldError("for", "must be a duration like \"5m\"")
		}
		d, err := time.ParseDuration(*q.For)
		if err != nil {
			return novacron.FieldError("for", "must be a duration like \"5m\" or \"90s\"")
		}
		r.For = d
	}
	set(&r.Severity, q.Severity)
	if q.Scope != nil {
		r.Scope = *q.Scope
	}
	set(&r.WebhookURL, q.WebhookURL)
	if q.Enabled != nil {
		r.Enabled = *q.Enabled
	}
	return nil
}

// checkRule applies the caller's limits to a rule: an operator's rules
// are of their own tenant (named or not), and webhooks may not name
// internal addresses.
func (e *Engine) checkRule(a *novacron.Actor, r *novacron.AlertRule) error {
	if a == nil {
		return novacron.Errorf(novacron.EUnauthorized, "authentication required")
	}
	if a.Role != novacron.RoleAdmin {
		switch r.Scope.TenantID {
		case "":
			r.Scope.TenantID = a.TenantID
		case a.TenantID:
		default:
			return novacron.FieldError("scope.tenant_id", "must be your own tenant")
		}
		if m, ok := novacron.LookupAlertMetric(r.Metric); ok && !m.VM || r.Resource == novacron.ResourceHost {
			return novacron.FieldError("metric", "rules on hosts are cluster-wide: only admins make them")
		}
	}
	if err := novacron.ValidateAlertRule(r); err != nil {
		return err
	}
	return e.notify.guard.checkURL(r.WebhookURL)
}

// CreateRule creates a rule for the caller: admins any rule, operators
// rules of VMs of their own tenant.
func (e *Engine) CreateRule(ctx context.Context, a *novacron.Actor, q RuleRequest) (*novacron.AlertRule, error) {
	r := &novacron.AlertRule{Enabled: true}
	if err := q.apply(r); err != nil {
		return nil, err
	}
	if err := e.checkRule(a, r); err != nil {
		return nil, err
	}
	if r.Scope.TenantID != "" {
		rules, _, err := e.store.ListAlertRules(ctx, novacron.TenantScope(r.Scope.TenantID), novacron.Page{Limit: MaxTenantRules})
		if err != nil {
			return nil, err
		}
		if len(rules) >= MaxTenantRules {
			return nil, &novacron.Error{Code: novacron.EQuotaExceeded, Message: "a tenant has at most " +
				strconv.Itoa(MaxTenantRules) + " alert rules", Details: map[string]any{"quota": "alert_rules", "limit": MaxTenantRules}}
		}
	}
	if err := e.store.CreateAlertRule(ctx, r); err != nil {
		return nil, err
	}
	e.kick()
	return r, nil
}

// UpdateRule changes the fields the request names of a rule the caller
// may manage.
func (e *Engine) UpdateRule(ctx context.Context, a *novacron.Actor, id string, q RuleRequest) (*novacron.AlertRule, error) {
	scope := auth.ScopeOf(a)
	r, err := e.store.GetAlertRule(ctx, scope, id)
	if err != nil {
		return nil, err
	}
	if err := q.apply(r); err != nil {
		return nil, err
	}
	if err := e.checkRule(a, r); err != nil {
		return nil, err
	}
	if err := e.store.UpdateAlertRule(ctx, scope, r); err != nil {
		return nil, err
	}
	e.kick()
	return r, nil
}

// DeleteRule deletes a rule the caller may manage; its open alerts are
// resolved.
func (e *Engine) DeleteRule(ctx context.Context, a *novacron.Actor, id string) error {
	if err := e.store.DeleteAlertRule(ctx, auth.ScopeOf(a), id); err != nil {
		return err
	}
	e.kick()
	return nil
}

// GetRule returns a rule the caller may see.
func (e *Engine) GetRule(ctx context.Context, a *novacron.Actor, id string) (*novacron.AlertRule, error) {
	return e.store.GetAlertRule(ctx, auth.ScopeOf(a), id)
}

// ListRules lists the rules the caller may see: all for admins, their
// tenant's for anyone else.
func (e *Engine) ListRules(ctx context.Context, a *novacron.Actor, page novacron.Page) ([]*novacron.AlertRule, string, error) {
	return e.store.ListAlertRules(ctx, auth.ScopeOf(a), page)
}

// ListAlerts lists the alerts the caller may see, newest first: all for
// admins, their tenant's for anyone else.
func (e *Engine) ListAlerts(ctx context.Context, a *novacron.Actor, f novacron.AlertFilter) ([]*novacron.Alert, string, error) {
	return e.store.ListAlerts(ctx, auth.ScopeOf(a), f)
}

// GetAlert returns an alert the caller may see.
func (e *Engine) GetAlert(ctx context.Context, a *novacron.Actor, id string) (*novacron.Alert, error) {
	return e.store.GetAlert(ctx, auth.ScopeOf(a), id)
}

// Acknowledge records that the caller acknowledged a firing alert, and
// when, and publishes the change.
func (e *Engine) Acknowledge(ctx context.Context, a *novacron.Actor, id string) (*novacron.Alert, error) {
	if a == nil {
		return nil, novacron.Errorf(novacron.EUnauthorized, "authentication required")
	}
	al, err := e.store.AcknowledgeAlert(ctx, auth.ScopeOf(a), id, a.Username, e.cfg.Now())
	if err != nil {
		return nil, err
	}
	e.publish(al)
	return al, nil
}
