-- Alert rules and alerts as the alert engine keeps them: severity "error",
-- a rule's resource (host or vm) and known comparators, event conditions
-- without a value, and at most one open (firing or acknowledged) alert per
-- rule and resource.

ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_severity_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_severity_check
    CHECK (severity IN ('info', 'warning', 'error', 'critical'));
ALTER TABLE alert_rules ADD COLUMN resource text NOT NULL DEFAULT 'vm' CHECK (resource IN ('host', 'vm'));
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_metric_check CHECK (metric <> '');
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_comparator_check CHECK (comparator IN ('', '>', '>=', '<', '<='));

ALTER TABLE alerts DROP CONSTRAINT alerts_severity_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_severity_check
    CHECK (severity IN ('info', 'warning', 'error', 'critical'));
ALTER TABLE alerts ALTER COLUMN current_value DROP NOT NULL;
ALTER TABLE alerts ALTER COLUMN current_value DROP DEFAULT;
UPDATE alerts SET end_time = CASE WHEN status = 'resolved' THEN coalesce(end_time, start_time) END;
ALTER TABLE alerts ADD CONSTRAINT alerts_end_time_check CHECK ((status = 'resolved') = (end_time IS NOT NULL));
CREATE UNIQUE INDEX alerts_open ON alerts (rule_id, resource, resource_id) WHERE status <> 'resolved';
