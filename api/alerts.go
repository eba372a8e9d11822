package api

import (
	"context"
	"net/http"

	"github.com/novacron/novacron"
)

// AlertFilter selects alerts: Status is firing, acknowledged or resolved
// ("" for all).
type AlertFilter struct {
	Status string
	Limit  int
	Cursor string
}

// AlertRuleRequest creates or changes an alert rule. A change sets only
// the fields that are not nil.
type AlertRuleRequest struct {
	Name       *string              `json:"name,omitempty"`
	Metric     *string              `json:"metric,omitempty"`
	Resource   *string              `json:"resource,omitempty"`
	Comparator *string              `json:"comparator,omitempty"`
	Threshold  *float64             `json:"threshold,omitempty"`
	For        *string              `json:"for,omitempty"`
	Severity   *string              `json:"severity,omitempty"`
	Scope      *novacron.AlertScope `json:"scope,omitempty"`
	WebhookURL *string              `json:"webhook_url,omitempty"`
	Enabled    *bool                `json:"enabled,omitempty"`
}

// ListAlerts lists one page of the alerts the caller can see, newest first.
func (c *Client) ListAlerts(ctx context.Context, f AlertFilter) (*List[novacron.Alert], error) {
	var out List[novacron.Alert]
	if err := c.Do(ctx, http.MethodGet, "/api/monitoring/alerts", pageQuery(f.Limit, f.Cursor, "status", f.Status), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AcknowledgeAlert records that the caller acknowledged a firing alert.
func (c *Client) AcknowledgeAlert(ctx context.Context, id string) (*novacron.Alert, error) {
	if err := requireID("alert", id); err != nil {
		return nil, err
	}
	var out novacron.Alert
	if err := c.Do(ctx, http.MethodPost, pathf("/api/monitoring/alerts/%s/acknowledge", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAlertRules lists one page of the rules the caller manages.
func (c *Client) ListAlertRules(ctx context.Context, limit int, cursor string) (*List[novacron.AlertRule], error) {
	var out List[novacron.AlertRule]
	if err := c.Do(ctx, http.MethodGet, "/api/monitoring/alert-rules", pageQuery(limit, cursor), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetAlertRule returns one rule.
func (c *Client) GetAlertRule(ctx context.Context, id string) (*novacron.AlertRule, error) {
	if err := requireID("alert rule", id); err != nil {
		return nil, err
	}
	var out novacron.AlertRule
	if err := c.Do(ctx, http.MethodGet, pathf("/api/monitoring/alert-rules/%s", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateAlertRule creates a rule.
func (c *Client) CreateAlertRule(ctx context.Context, req AlertRuleRequest) (*novacron.AlertRule, error) {
	var out novacron.AlertRule
	if err := c.Do(ctx, http.MethodPost, "/api/monitoring/alert-rules", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateAlertRule changes the fields of a rule that req sets.
func (c *Client) UpdateAlertRule(ctx context.Context, id string, req AlertRuleRequest) (*novacron.AlertRule, error) {
	if err := requireID("alert rule", id); err != nil {
		return nil, err
	}
	var out novacron.AlertRule
	if err := c.Do(ctx, http.MethodPut, pathf("/api/monitoring/alert-rules/%s", id), nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteAlertRule deletes a rule; its open alerts resolve.
func (c *Client) DeleteAlertRule(ctx context.Context, id string) error {
	if err := requireID("alert rule", id); err != nil {
		return err
	}
	return c.Do(ctx, http.MethodDelete, pathf("/api/monitoring/alert-rules/%s", id), nil, nil, nil)
}
