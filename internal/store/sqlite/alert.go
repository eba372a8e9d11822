package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

var _ novacron.AlertStore = (*Store)(nil)

const ruleSelect = `SELECT id, tenant_id, name, metric, resource, comparator, threshold, for_seconds, severity, scope,
	webhook_url, enabled, created_at, updated_at FROM alert_rules`

func scanRule(row scanner) (*novacron.AlertRule, error) {
	var r novacron.AlertRule
	var tenant, scope string
	var forSeconds int64
	err := row.Scan(&r.ID, nullTextCol{&tenant}, &r.Name, &r.Metric, &r.Resource, &r.Comparator, &r.Threshold,
		&forSeconds, &r.Severity, &scope, &r.WebhookURL, &r.Enabled, timeCol{&r.CreatedAt}, timeCol{&r.UpdatedAt})
	if err != nil {
		return nil, err
	}
	r.For = time.Duration(forSeconds) * time.Second
	if r.Scope, err = store.DecodeRuleScope([]byte(scope), tenant); err != nil {
		return nil, err
	}
	return &r, nil
}

// getRule reads the rule with the canonical id that the tenant st sees
// (every rule for "").
func getRule(ctx context.Context, q queryer, id, st string) (*novacron.AlertRule, error) {
	r, err := scanRule(q.QueryRowContext(ctx, ruleSelect+` WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)`, id, nullText(st)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.NotFound("alert rule")
	}
	return r, err
}

// CreateAlertRule inserts a rule and reloads it from the row.
func (s *Store) CreateAlertRule(ctx context.Context, r *novacron.AlertRule) error {
	v, err := store.PrepareAlertRule(r)
	if err != nil {
		return err
	}
	scope, err := store.EncodeRuleScope(v.Scope)
	if err != nil {
		return err
	}
	now := timeText(s.now())
	var got *novacron.AlertRule
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO alert_rules (id, tenant_id, name, metric, resource, comparator, threshold,
			for_seconds, severity, scope, webhook_url, enabled, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, v.ID, nullText(v.Scope.TenantID), v.Name, v.Metric, v.Resource,
			v.Comparator, v.Threshold, int64(v.For/time.Second), v.Severity, string(scope), v.WebhookURL, v.Enabled, now, now)
		if constraint(err) == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return novacron.Errorf(novacron.EConflict, "alert rule id already exists")
		}
		if isForeignKey(err) {
			return novacron.FieldError("scope.tenant_id", "no such tenant")
		}
		if err != nil {
			return err
		}
		got, err = getRule(ctx, tx, v.ID, "")
		return err
	})
	if err != nil {
		return wrap("create alert rule", err)
	}
	*r = *got
	return nil
}

// GetAlertRule returns a rule within scope.
func (s *Store) GetAlertRule(ctx context.Context, scope novacron.Scope, id string) (*novacron.AlertRule, error) {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return nil, store.NotFound("alert rule")
	}
	r, err := getRule(ctx, s.read, id, st)
	return r, wrap("get alert rule", err)
}

// ListAlertRules lists the rules within scope in id (creation) order.
func (s *Store) ListAlertRules(ctx context.Context, scope novacron.Scope, page novacron.Page) ([]*novacron.AlertRule, string, error) {
	limit := store.Limit(page)
	after, err := store.DecodeCursor(page.Cursor, store.MinID)
	if err != nil {
		return nil, "", err
	}
	st, ok := store.ScopeTenant(scope)
	if !ok {
		return nil, "", nil
	}
	rows, err := s.read.QueryContext(ctx, ruleSelect+` WHERE (?1 IS NULL OR tenant_id = ?1) AND id > ?2 ORDER BY id LIMIT ?3`,
		nullText(st), after, limit+1)
	if err != nil {
		return nil, "", wrap("list alert rules", err)
	}
	defer rows.Close()
	var rules []*novacron.AlertRule
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, "", wrap("list alert rules", err)
		}
		rules = append(rules, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", wrap("list alert rules", err)
	}
	rules, next := store.NextCursor(rules, limit, func(r *novacron.AlertRule) string { return r.ID })
	return rules, next, nil
}

// UpdateAlertRule writes a rule within scope and reloads it.
func (s *Store) UpdateAlertRule(ctx context.Context, scope novacron.Scope, r *novacron.AlertRule) error {
	st, sok := store.ScopeTenant(scope)
	if _, ok := store.ParseID(r.ID); !ok || !sok || r.ID == "" {
		return store.NotFound("alert rule")
	}
	v, err := store.PrepareAlertRule(r)
	if err != nil {
		return err
	}
	if st != "" && v.Scope.TenantID != st {
		return store.NotFound("alert rule")
	}
	scope2, err := store.EncodeRuleScope(v.Scope)
	if err != nil {
		return err
	}
	var got *novacron.AlertRule
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE alert_rules SET tenant_id = ?, name = ?, metric = ?, resource = ?, comparator = ?,
			threshold = ?, for_seconds = ?, severity = ?, scope = ?, webhook_url = ?, enabled = ?, updated_at = ?
			WHERE id = ? AND (? IS NULL OR tenant_id = ?)`, nullText(v.Scope.TenantID), v.Name, v.Metric, v.Resource,
			v.Comparator, v.Threshold, int64(v.For/time.Second), v.Severity, string(scope2), v.WebhookURL, v.Enabled,
			timeText(s.now()), v.ID, nullText(st), nullText(st))
		if isForeignKey(err) {
			return novacron.FieldError("scope.tenant_id", "no such tenant")
		}
		n, err := rowsAffected(res, err)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.NotFound("alert rule")
		}
		got, err = getRule(ctx, tx, v.ID, "")
		return err
	})
	if err != nil {
		return wrap("update alert rule", err)
	}
	*r = *got
	return nil
}

// DeleteAlertRule deletes a rule within scope.
func (s *Store) DeleteAlertRule(ctx context.Context, scope novacron.Scope, id string) error {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return store.NotFound("alert rule")
	}
	n, err := rowsAffected(s.write.ExecContext(ctx, `DELETE FROM alert_rules WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)`,
		id, nullText(st)))
	if err != nil {
		return wrap("delete alert rule", err)
	}
	if n == 0 {
		return store.NotFound("alert rule")
	}
	return nil
}

const alertSelect = `SELECT id, rule_id, name, description, severity, status, resource, resource_id, tenant_id, metric_name,
	threshold, current_value, labels, start_time, end_time, acknowledged_by, acknowledged_at FROM alerts`

func scanAlert(row scanner) (*novacron.Alert, error) {
	var a novacron.Alert
	var labels string
	var value sql.NullFloat64
	err := row.Scan(&a.ID, nullTextCol{&a.RuleID}, &a.Name, &a.Description, &a.Severity, &a.Status, &a.Resource,
		&a.ResourceID, nullTextCol{&a.TenantID}, &a.MetricName, &a.Threshold, &value, &labels, timeCol{&a.StartTime},
		nullTimeCol{&a.EndTime}, &a.AcknowledgedBy, nullTimeCol{&a.AcknowledgedAt})
	if err != nil {
		return nil, err
	}
	if value.Valid {
		a.CurrentValue = &value.Float64
	}
	if a.Labels, err = store.DecodeLabels([]byte(labels)); err != nil {
		return nil, err
	}
	return &a, nil
}

func getAlert(ctx context.Context, q queryer, id, st string) (*novacron.Alert, error) {
	a, err := scanAlert(q.QueryRowContext(ctx, alertSelect+` WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)`, id, nullText(st)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.NotFound("alert")
	}
	return a, err
}

func nullFloat(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}

// OpenAlert inserts a firing alert.
func (s *Store) OpenAlert(ctx context.Context, a *novacron.Alert) error {
	v, err := store.PrepareAlert(a)
	if err != nil {
		return err
	}
	labels, err := store.EncodeLabels(v.Labels)
	if err != nil {
		return err
	}
	var got *novacron.Alert
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO alerts (id, rule_id, name, description, severity, status, resource,
			resource_id, tenant_id, metric_name, threshold, current_value, labels, start_time)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, v.ID, v.RuleID, v.Name, v.Description, v.Severity, v.Status,
			v.Resource, v.ResourceID, nullText(v.TenantID), v.MetricName, v.Threshold, nullFloat(v.CurrentValue),
			string(labels), timeText(v.StartTime))
		switch constraint(err) {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return novacron.Errorf(novacron.EConflict, "alert id already exists")
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return store.AlertOpen()
		}
		if isForeignKey(err) {
			return novacron.FieldError("rule_id", "no such rule")
		}
		if err != nil {
			return err
		}
		got, err = getAlert(ctx, tx, v.ID, "")
		return err
	})
	if err != nil {
		return wrap("open alert", err)
	}
	*a = *got
	return nil
}

// ResolveAlert resolves an open alert.
func (s *Store) ResolveAlert(ctx context.Context, id string, end time.Time, value *float64) (*novacron.Alert, error) {
	id, ok := store.ParseID(id)
	if !ok {
		return nil, store.NotFound("alert")
	}
	var got *novacron.Alert
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := getAlert(ctx, tx, id, "")
		if err != nil {
			return err
		}
		if !a.Open() {
			return store.AlertNotOpen(a.Status)
		}
		_, err = tx.ExecContext(ctx, `UPDATE alerts SET status = 'resolved', end_time = ?, current_value = coalesce(?, current_value)
			WHERE id = ?`, timeText(end), nullFloat(value), id)
		if err != nil {
			return err
		}
		got, err = getAlert(ctx, tx, id, "")
		return err
	})
	return got, wrap("resolve alert", err)
}

// AcknowledgeAlert acknowledges a firing alert within scope.
func (s *Store) AcknowledgeAlert(ctx context.Context, scope novacron.Scope, id, by string, at time.Time) (*novacron.Alert, error) {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return nil, store.NotFound("alert")
	}
	var got *novacron.Alert
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		a, err := getAlert(ctx, tx, id, st)
		if err != nil {
			return err
		}
		if a.Status != novacron.AlertFiring {
			return store.AlertNotOpen(a.Status)
		}
		_, err = tx.ExecContext(ctx, `UPDATE alerts SET status = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?
			WHERE id = ?`, by, timeText(at), id)
		if err != nil {
			return err
		}
		got, err = getAlert(ctx, tx, id, "")
		return err
	})
	return got, wrap("acknowledge alert", err)
}

// GetAlert returns an alert within scope.
func (s *Store) GetAlert(ctx context.Context, scope novacron.Scope, id string) (*novacron.Alert, error) {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return nil, store.NotFound("alert")
	}
	a, err := getAlert(ctx, s.read, id, st)
	return a, wrap("get alert", err)
}

// ListAlerts lists the alerts within scope, newest first.
func (s *Store) ListAlerts(ctx context.Context, scope novacron.Scope, f novacron.AlertFilter) ([]*novacron.Alert, string, error) {
	if err := store.ValidAlertStatus(f.Status); err != nil {
		return nil, "", err
	}
	limit := store.Limit(f.Page)
	before, err := store.DecodeCursor(f.Cursor, store.MaxID)
	if err != nil {
		return nil, "", err
	}
	st, ok := store.ScopeTenant(scope)
	if !ok {
		return nil, "", nil
	}
	rows, err := s.read.QueryContext(ctx, alertSelect+`
		WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 = 0 OR status <> 'resolved')
		  AND id < ?4
		ORDER BY id DESC LIMIT ?5`, nullText(st), nullText(f.Status), f.Open, before, limit+1)
	if err != nil {
		return nil, "", wrap("list alerts", err)
	}
	defer rows.Close()
	var alerts []*novacron.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, "", wrap("list alerts", err)
		}
		alerts = append(alerts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", wrap("list alerts", err)
	}
	alerts, next := store.NextCursor(alerts, limit, func(a *novacron.Alert) string { return a.ID })
	return alerts, next, nil
}

// CountAlerts counts the alerts by status.
func (s *Store) CountAlerts(ctx context.Context) (map[string]int, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT status, count(*) FROM alerts GROUP BY status`)
	if err != nil {
		return nil, wrap("count alerts", err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for _, st := range novacron.AlertStatuses {
		counts[st] = 0
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, wrap("count alerts", err)
		}
		counts[st] = n
	}
	return counts, wrap("count alerts", rows.Err())
}
