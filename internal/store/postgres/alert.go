package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

var _ novacron.AlertStore = (*Store)(nil)

const ruleSelect = `SELECT id, tenant_id, name, metric, resource, comparator, threshold, for_seconds, severity, scope,
	webhook_url, enabled, created_at, updated_at FROM alert_rules`

func scanRule(row pgx.Row) (*novacron.AlertRule, error) {
	var r novacron.AlertRule
	var tenant *string
	var scope []byte
	var forSeconds int64
	err := row.Scan(&r.ID, &tenant, &r.Name, &r.Metric, &r.Resource, &r.Comparator, &r.Threshold, &forSeconds,
		&r.Severity, &scope, &r.WebhookURL, &r.Enabled, &r.CreatedAt, &r.UpdatedAt)
	if err != nil {
		return nil, err
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	r.For = time.Duration(forSeconds) * time.Second
	if r.Scope, err = store.DecodeRuleScope(scope, deref(tenant)); err != nil {
		return nil, err
	}
	return &r, nil
}

func getRule(ctx context.Context, q queryer, id, st string) (*novacron.AlertRule, error) {
	r, err := scanRule(q.QueryRow(ctx, ruleSelect+` WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)`, id, null(st)))
	if errors.Is(err, pgx.ErrNoRows) {
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
	now := store.Time(s.now())
	var got *novacron.AlertRule
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO alert_rules (id, tenant_id, name, metric, resource, comparator, threshold,
			for_seconds, severity, scope, webhook_url, enabled, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13, $13)`, v.ID, null(v.Scope.TenantID), v.Name,
			v.Metric, v.Resource, v.Comparator, v.Threshold, int64(v.For/time.Second), v.Severity, string(scope),
			v.WebhookURL, v.Enabled, now)
		if e := uniqueConflict(err, "alert rule id already exists", "alert rule id already exists"); e != nil {
			return e
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
	r, err := getRule(ctx, s.pool, id, st)
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
	rows, err := s.pool.Query(ctx, ruleSelect+` WHERE ($1::uuid IS NULL OR tenant_id = $1) AND id > $2 ORDER BY id LIMIT $3`,
		null(st), after, limit+1)
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
	sc, err := store.EncodeRuleScope(v.Scope)
	if err != nil {
		return err
	}
	var got *novacron.AlertRule
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE alert_rules SET tenant_id = $1, name = $2, metric = $3, resource = $4,
			comparator = $5, threshold = $6, for_seconds = $7, severity = $8, scope = $9::jsonb, webhook_url = $10,
			enabled = $11, updated_at = $12
			WHERE id = $13 AND ($14::uuid IS NULL OR tenant_id = $14)`, null(v.Scope.TenantID), v.Name, v.Metric,
			v.Resource, v.Comparator, v.Threshold, int64(v.For/time.Second), v.Severity, string(sc), v.WebhookURL,
			v.Enabled, store.Time(s.now()), v.ID, null(st))
		if isForeignKey(err) {
			return novacron.FieldError("scope.tenant_id", "no such tenant")
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM alert_rules WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)`, id, null(st))
	if err != nil {
		return wrap("delete alert rule", err)
	}
	if tag.RowsAffected() == 0 {
		return store.NotFound("alert rule")
	}
	return nil
}

const alertSelect = `SELECT id, rule_id, name, description, severity, status, resource, resource_id, tenant_id, metric_name,
	threshold, current_value, labels, start_time, end_time, acknowledged_by, acknowledged_at FROM alerts`

func scanAlert(row pgx.Row) (*novacron.Alert, error) {
	var a novacron.Alert
	var rule, tenant *string
	var labels []byte
	err := row.Scan(&a.ID, &rule, &a.Name, &a.Description, &a.Severity, &a.Status, &a.Resource, &a.ResourceID, &tenant,
		&a.MetricName, &a.Threshold, &a.CurrentValue, &labels, &a.StartTime, &a.EndTime, &a.AcknowledgedBy, &a.AcknowledgedAt)
	if err != nil {
		return nil, err
	}
	a.RuleID, a.TenantID = deref(rule), deref(tenant)
	a.StartTime = a.StartTime.UTC()
	for _, t := range []*time.Time{a.EndTime, a.AcknowledgedAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	if a.Labels, err = store.DecodeLabels(labels); err != nil {
		return nil, err
	}
	return &a, nil
}

func getAlert(ctx context.Context, q queryer, id, st string, lock bool) (*novacron.Alert, error) {
	sql := alertSelect + ` WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)`
	if lock {
		sql += ` FOR UPDATE`
	}
	a, err := scanAlert(q.QueryRow(ctx, sql, id, null(st)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound("alert")
	}
	return a, err
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
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO alerts (id, rule_id, name, description, severity, status, resource,
			resource_id, tenant_id, metric_name, threshold, current_value, labels, start_time)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14)`, v.ID, v.RuleID, v.Name,
			v.Description, v.Severity, v.Status, v.Resource, v.ResourceID, null(v.TenantID), v.MetricName, v.Threshold,
			v.CurrentValue, string(labels), v.StartTime)
		if e, ok := pgError(err); ok && e.Code == "23505" {
			if e.ConstraintName == "alerts_open" {
				return store.AlertOpen()
			}
			return novacron.Errorf(novacron.EConflict, "alert id already exists")
		}
		if isForeignKey(err) {
			return novacron.FieldError("rule_id", "no such rule")
		}
		if err != nil {
			return err
		}
		got, err = getAlert(ctx, tx, v.ID, "", false)
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := getAlert(ctx, tx, id, "", true)
		if err != nil {
			return err
		}
		if !a.Open() {
			return store.AlertNotOpen(a.Status)
		}
		_, err = tx.Exec(ctx, `UPDATE alerts SET status = 'resolved', end_time = $1,
			current_value = coalesce($2, current_value) WHERE id = $3`, store.Time(end), value, id)
		if err != nil {
			return err
		}
		got, err = getAlert(ctx, tx, id, "", false)
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		a, err := getAlert(ctx, tx, id, st, true)
		if err != nil {
			return err
		}
		if a.Status != novacron.AlertFiring {
			return store.AlertNotOpen(a.Status)
		}
		_, err = tx.Exec(ctx, `UPDATE alerts SET status = 'acknowledged', acknowledged_by = $1, acknowledged_at = $2
			WHERE id = $3`, by, store.Time(at), id)
		if err != nil {
			return err
		}
		got, err = getAlert(ctx, tx, id, "", false)
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
	a, err := getAlert(ctx, s.pool, id, st, false)
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
	rows, err := s.pool.Query(ctx, alertSelect+`
		WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR status = $2)
		  AND (NOT $3 OR status <> 'resolved') AND id < $4
		ORDER BY id DESC LIMIT $5`, null(st), null(f.Status), f.Open, before, limit+1)
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
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM alerts GROUP BY status`)
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
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, wrap("count alerts", err)
		}
		counts[st] = int(n)
	}
	return counts, wrap("count alerts", rows.Err())
}
