package httpapi

import (
	"net/http"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/alert"
)

func (a *API) alerts() (*alert.Engine, error) {
	if a.cfg.Alerts == nil {
		return nil, novacron.Errorf(novacron.EUnavailable, "this server evaluates no alerts")
	}
	return a.cfg.Alerts, nil
}

func (a *API) listAlertRules(r *http.Request) (any, error) {
	e, err := a.alerts()
	if err != nil {
		return nil, err
	}
	page, err := pageOf(r)
	if err != nil {
		return nil, err
	}
	rules, next, err := e.ListRules(r.Context(), stateOf(r).actor, page)
	if err != nil {
		return nil, err
	}
	return newList(rules, next), nil
}

func (a *API) createAlertRule(r *http.Request) (any, error) {
	e, err := a.alerts()
	if err != nil {
		return nil, err
	}
	var req alert.RuleRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	st := stateOf(r)
	rule, err := e.CreateRule(r.Context(), st.actor, req)
	if err != nil {
		return nil, err
	}
	st.resourceID = rule.ID
	return created(rule), nil
}

func (a *API) getAlertRule(r *http.Request) (any, error) {
	e, err := a.alerts()
	if err != nil {
		return nil, err
	}
	return e.GetRule(r.Context(), stateOf(r).actor, r.PathValue("id"))
}

func (a *API) updateAlertRule(r *http.Request) (any, error) {
	e, err := a.alerts()
	if err != nil {
		return nil, err
	}
	var req alert.RuleRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return e.UpdateRule(r.Context(), stateOf(r).actor, r.PathValue("id"), req)
}

func (a *API) deleteAlertRule(r *http.Request) (any, error) {
	e, err := a.alerts()
	if err != nil {
		return nil, err
	}
	if err := e.DeleteRule(r.Context(), stateOf(r).actor, r.PathValue("id")); err != nil {
		return nil, err
	}
	return noContent(), nil
}

func (a *API) listAlerts(r *http.Request) (any, error) {
	e, err := a.alerts()
	if err != nil {
		return nil, err
	}
	page, err := pageOf(r)
	if err != nil {
		return nil, err
	}
	f := novacron.AlertFilter{Page: page, Status: r.URL.Query().Get("status")}
	alerts, next, err := e.ListAlerts(r.Context(), stateOf(r).actor, f)
	if err != nil {
		return nil, err
	}
	return newList(alerts, next), nil
}

func (a *API) acknowledgeAlert(r *http.Request) (any, error) {
	e, err := a.alerts()
	if err != nil {
		return nil, err
	}
	if err := decodeOptional(r, &struct{}{}); err != nil {
		return nil, err
	}
	return e.Acknowledge(r.Context(), stateOf(r).actor, r.PathValue("id"))
}
