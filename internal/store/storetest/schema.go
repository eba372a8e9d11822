package storetest

import (
	"slices"
	"strings"
	"testing"
)

// Tables are the tables of the design that every store's schema has,
// schema_migrations included.
var Tables = []string{
	"alert_rules", "alerts", "audit_logs", "images", "migrations", "nodes", "operations",
	"schema_migrations", "sessions", "settings", "system_metrics", "tenants", "users",
	"vm_metrics", "vm_metrics_latest", "vms",
}

// Indexes are the named indexes that every store's schema has.
var Indexes = []string{
	"alert_rules_tenant_id", "alerts_open", "alerts_rule_id", "alerts_status", "alerts_tenant_id",
	"audit_logs_action", "audit_logs_tenant_id_ts", "audit_logs_ts", "audit_logs_user_id",
	"migrations_status", "migrations_vm_id", "operations_status", "operations_vm_id",
	"sessions_expires_at", "sessions_user_id", "system_metrics_chunk_end", "users_tenant_id",
	"vm_metrics_chunk_end", "vm_metrics_latest_ts", "vms_image_id", "vms_node_id", "vms_owner_id", "vms_state", "vms_tenant_id",
}

// DB is raw access to a freshly migrated database, for RunSchema.
type DB struct {
	// Exec runs one SQL statement.
	Exec func(sql string) error
	// Count runs a query whose one row and column is a count.
	Count func(sql string) (int, error)
	// Tables and Indexes list the names of the tables and indexes.
	Tables, Indexes func() ([]string, error)
	// Blob is a literal of a small binary value in the dialect.
	Blob string
}

// Literals in the statements below read the same in both dialects.
const (
	tenantA = "'01900000-0000-7000-8000-00000000000a'"
	tenantB = "'01900000-0000-7000-8000-00000000000b'"
	user1   = "'01900000-0000-7000-8000-000000000001'"
	node1   = "'01900000-0000-7000-8000-0000000000a1'"
	node2   = "'01900000-0000-7000-8000-0000000000a2'"
	image1  = "'01900000-0000-7000-8000-0000000000b1'"
	vm1     = "'01900000-0000-7000-8000-0000000000c1'"
	rule1   = "'01900000-0000-7000-8000-0000000000d1'"
	ts      = "'2025-01-01T00:00:00.000000Z'"
	absent  = "'01900000-0000-7000-8000-0000000000ff'"
)

// RunSchema checks a freshly migrated schema: every table and index of the
// design, the CHECK, UNIQUE and foreign key constraints and what the
// foreign keys do on delete. Both dialects must accept and refuse the same
// statements.
func RunSchema(t *testing.T, db DB) {
	tables, err := db.Tables()
	noErr(t, err, "list tables")
	for _, want := range Tables {
		if !slices.Contains(tables, want) {
			t.Errorf("table %s is missing (have %v)", want, tables)
		}
	}
	indexes, err := db.Indexes()
	noErr(t, err, "list indexes")
	for _, want := range Indexes {
		if !slices.Contains(indexes, want) {
			t.Errorf("index %s is missing", want)
		}
	}

	r := strings.NewReplacer("$blob", db.Blob)
	valid := []string{
		`INSERT INTO tenants (id, name, quotas, created_at, updated_at) VALUES (` + tenantA + `, 'a', '{"vms": 3}', ` + ts + `, ` + ts + `)`,
		`INSERT INTO tenants (id, name, quotas, created_at, updated_at) VALUES (` + tenantB + `, 'b', '{}', ` + ts + `, ` + ts + `)`,
		`INSERT INTO users (id, username, email, role, tenant_id, password_hash, created_at, updated_at)
			VALUES (` + user1 + `, 'alice', '', 'user', ` + tenantA + `, 'h', ` + ts + `, ` + ts + `)`,
		`INSERT INTO sessions (id, user_id, kind, token_hash, created_at, expires_at)
			VALUES ('01900000-0000-7000-8000-000000000e01', ` + user1 + `, 'token', 'th', ` + ts + `, ` + ts + `)`,
		`INSERT INTO sessions (id, user_id, kind, created_at, expires_at)
			VALUES ('01900000-0000-7000-8000-000000000e02', ` + user1 + `, 'login', ` + ts + `, ` + ts + `)`,
		`INSERT INTO sessions (id, user_id, kind, created_at, expires_at)
			VALUES ('01900000-0000-7000-8000-000000000e03', ` + user1 + `, 'login', ` + ts + `, ` + ts + `)`,
		`INSERT INTO nodes (id, name, address, status, capabilities, resources, labels, created_at, updated_at)
			VALUES (` + node1 + `, 'n1', '10.0.0.1:8443', 'online', '{"kvm": true}', '{}', '{}', ` + ts + `, ` + ts + `)`,
		`INSERT INTO nodes (id, name, status, created_at, updated_at) VALUES (` + node2 + `, 'n2', 'maintenance', ` + ts + `, ` + ts + `)`,
		`INSERT INTO images (id, tenant_id, name, format, size, sha256, public, created_at)
			VALUES (` + image1 + `, ` + tenantA + `, 'debian', 'qcow2', 1024, 'abc', '1', ` + ts + `)`,
		`INSERT INTO images (id, tenant_id, name, format, created_at)
			VALUES ('01900000-0000-7000-8000-0000000000b2', ` + tenantB + `, 'debian', 'raw', ` + ts + `)`,
		`INSERT INTO images (id, tenant_id, name, format, command, created_at)
			VALUES ('01900000-0000-7000-8000-0000000000b3', ` + tenantB + `, 'busybox', 'rootfs', '["/bin/sh", "-c", "echo hi"]', ` + ts + `)`,
		`INSERT INTO vms (id, name, driver, state, node_id, tenant_id, owner_id, cpus, memory_mb, disk_gb, image_id,
			config, labels, restart_policy, autostart, created_at, updated_at)
			VALUES (` + vm1 + `, 'web', 'qemu', 'running', ` + node1 + `, ` + tenantA + `, ` + user1 + `, 2, 512, 10, ` + image1 + `,
			'{}', '{"tier": "web"}', 'on-failure', '1', ` + ts + `, ` + ts + `)`,
		`INSERT INTO vms (id, name, driver, state, tenant_id, cpus, memory_mb, created_at, updated_at)
			VALUES ('01900000-0000-7000-8000-0000000000c2', 'web', 'process', 'failed', ` + tenantB + `, 1, 64, ` + ts + `, ` + ts + `)`,
		`INSERT INTO operations (id, vm_id, tenant_id, action, status, created_at)
			VALUES ('01900000-0000-7000-8000-000000000f01', ` + vm1 + `, ` + tenantA + `, 'start', 'running', ` + ts + `)`,
		`INSERT INTO vm_metrics (vm_id, resolution, chunk_start, chunk_end, count, data)
			VALUES (` + vm1 + `, 30, ` + ts + `, ` + ts + `, 1, $blob)`,
		`INSERT INTO system_metrics (node_id, resolution, chunk_start, chunk_end, count, data)
			VALUES (` + node2 + `, 30, ` + ts + `, ` + ts + `, 1, $blob)`,
		`INSERT INTO vm_metrics_latest (vm_id, node_id, ts, point) VALUES (` + vm1 + `, ` + node1 + `, ` + ts + `, '{"cpu_usage": 1}')`,
		`INSERT INTO alert_rules (id, tenant_id, name, metric, comparator, threshold, for_seconds, severity, scope, created_at, updated_at)
			VALUES (` + rule1 + `, ` + tenantA + `, 'cpu', 'cpu_percent', '>', 90.5, 60, 'warning', '{}', ` + ts + `, ` + ts + `)`,
		`INSERT INTO alerts (id, rule_id, name, severity, status, labels, start_time)
			VALUES ('01900000-0000-7000-8000-000000000d11', ` + rule1 + `, 'cpu', 'warning', 'firing', '{}', ` + ts + `)`,
		`INSERT INTO migrations (id, vm_id, source_node_id, target_node_id, type, status, progress)
			VALUES ('01900000-0000-7000-8000-000000000c11', ` + vm1 + `, ` + node1 + `, ` + node2 + `, 'live', 'running', 12.5)`,
		`INSERT INTO audit_logs (id, ts, action, success) VALUES ('01900000-0000-7000-8000-000000000a01', ` + ts + `, 'x', '0')`,
		`INSERT INTO settings (key, value, created_at) VALUES ('k', 'v', ` + ts + `)`,
	}
	for _, q := range valid {
		if err := db.Exec(r.Replace(q)); err != nil {
			t.Fatalf("valid statement failed: %v\n%s", err, q)
		}
	}

	invalid := map[string]string{
		"tenant name unique":    `INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('01900000-0000-7000-8000-0000000000ac', 'a', ` + ts + `, ` + ts + `)`,
		"tenant quotas json":    `UPDATE tenants SET quotas = 'not json' WHERE id = ` + tenantA,
		"user role":             `UPDATE users SET role = 'root' WHERE id = ` + user1,
		"user tenant fk":        `UPDATE users SET tenant_id = ` + absent + ` WHERE id = ` + user1,
		"username unique":       `INSERT INTO users (id, username, role, tenant_id, created_at, updated_at) VALUES (` + absent + `, 'alice', 'user', ` + tenantB + `, ` + ts + `, ` + ts + `)`,
		"session kind":          `UPDATE sessions SET kind = 'cookie'`,
		"session user fk":       `INSERT INTO sessions (id, user_id, kind, created_at, expires_at) VALUES (` + absent + `, ` + absent + `, 'login', ` + ts + `, ` + ts + `)`,
		"session token unique":  `UPDATE sessions SET token_hash = 'th' WHERE id = '01900000-0000-7000-8000-000000000e02'`,
		"node status":           `UPDATE nodes SET status = 'up'`,
		"node name unique":      `UPDATE nodes SET name = 'n1' WHERE id = ` + node2,
		"image format":          `UPDATE images SET format = 'iso'`,
		"image name per tenant": `INSERT INTO images (id, tenant_id, name, format, created_at) VALUES (` + absent + `, ` + tenantA + `, 'debian', 'raw', ` + ts + `)`,
		"image tenant fk":       `UPDATE images SET tenant_id = ` + absent + ` WHERE id = ` + image1,
		"image command json":    `UPDATE images SET command = '["/bin/sh"' WHERE id = ` + image1,
		"image command array":   `UPDATE images SET command = '{"0": "/bin/sh"}' WHERE id = ` + image1,
		"vm cpus":               `UPDATE vms SET cpus = 0 WHERE id = ` + vm1,
		"vm memory":             `UPDATE vms SET memory_mb = 0 WHERE id = ` + vm1,
		"vm state":              `UPDATE vms SET state = 'sleeping' WHERE id = ` + vm1,
		"vm driver":             `UPDATE vms SET driver = 'xen' WHERE id = ` + vm1,
		"vm restart policy":     `UPDATE vms SET restart_policy = 'sometimes' WHERE id = ` + vm1,
		"vm name per tenant":    `UPDATE vms SET tenant_id = ` + tenantB + ` WHERE id = ` + vm1,
		"vm node fk":            `UPDATE vms SET node_id = ` + absent + ` WHERE id = ` + vm1,
		"vm image fk":           `UPDATE vms SET image_id = ` + absent + ` WHERE id = ` + vm1,
		"vm config json":        `UPDATE vms SET config = '{' WHERE id = ` + vm1,
		"operation status":      `UPDATE operations SET status = 'done'`,
		"metrics resolution":    `UPDATE vm_metrics SET resolution = 0`,
		"metrics primary key":   r.Replace(`INSERT INTO vm_metrics (vm_id, resolution, chunk_start, chunk_end, count, data) VALUES (` + vm1 + `, 30, ` + ts + `, ` + ts + `, 2, $blob)`),
		"rule severity":         `UPDATE alert_rules SET severity = 'fatal'`,
		"alert status":          `UPDATE alerts SET status = 'open'`,
		"alert severity":        `UPDATE alerts SET severity = 'fatal'`,
		"rule comparator":       `UPDATE alert_rules SET comparator = '=='`,
		"rule resource":         `UPDATE alert_rules SET resource = 'disk'`,
		"alert resolved end":    `UPDATE alerts SET status = 'resolved'`,
		"alert open twice": `INSERT INTO alerts (id, rule_id, name, severity, status, labels, start_time)
			VALUES ('01900000-0000-7000-8000-000000000d12', ` + rule1 + `, 'cpu', 'warning', 'acknowledged', '{}', ` + ts + `)`,
		"latest point json":      `UPDATE vm_metrics_latest SET point = '[1]'`,
		"latest vm fk":           `UPDATE vm_metrics_latest SET vm_id = ` + absent,
		"migration type":         `UPDATE migrations SET type = 'hot'`,
		"migration status":       `UPDATE migrations SET status = 'paused'`,
		"migration vm fk":        `UPDATE migrations SET vm_id = ` + absent,
		"setting key unique":     `INSERT INTO settings (key, value, created_at) VALUES ('k', 'w', ` + ts + `)`,
		"tenant with users":      `DELETE FROM tenants WHERE id = ` + tenantA,
		"node with vms":          `DELETE FROM nodes WHERE id = ` + node1,
		"image in use":           `DELETE FROM images WHERE id = ` + image1,
		"schema migration again": `INSERT INTO schema_migrations (version, applied_at) VALUES (1, ` + ts + `)`,
	}
	for name, q := range invalid {
		if err := db.Exec(q); err == nil {
			t.Errorf("%s: statement succeeded, want a constraint error\n%s", name, q)
		}
	}

	count := func(q string, want int) {
		t.Helper()
		n, err := db.Count(q)
		noErr(t, err, q)
		if n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
	// Deleting a user deletes its sessions and orphans its VMs.
	noErr(t, db.Exec(`DELETE FROM users WHERE id = `+user1), "delete user")
	count(`SELECT count(*) FROM sessions`, 0)
	count(`SELECT count(*) FROM vms WHERE id = `+vm1+` AND owner_id IS NULL`, 1)
	// Severity error, and a resolved alert beside the open one.
	noErr(t, db.Exec(`UPDATE alert_rules SET severity = 'error'`), "severity error")
	noErr(t, db.Exec(`INSERT INTO alerts (id, rule_id, name, severity, status, labels, start_time, end_time)
		VALUES ('01900000-0000-7000-8000-000000000d13', `+rule1+`, 'cpu', 'error', 'resolved', '{}', `+ts+`, `+ts+`)`), "resolved alert")
	// Deleting a rule keeps its alerts.
	noErr(t, db.Exec(`DELETE FROM alert_rules WHERE id = `+rule1), "delete rule")
	count(`SELECT count(*) FROM alerts WHERE rule_id IS NULL`, 2)
	// Deleting a VM deletes its metrics and migrations, not its operations.
	noErr(t, db.Exec(`DELETE FROM vms WHERE id = `+vm1), "delete vm")
	count(`SELECT count(*) FROM vm_metrics`, 0)
	count(`SELECT count(*) FROM vm_metrics_latest`, 0)
	count(`SELECT count(*) FROM migrations`, 0)
	count(`SELECT count(*) FROM operations`, 1)
	// Deleting a node deletes its metrics.
	noErr(t, db.Exec(`DELETE FROM nodes WHERE id = `+node2), "delete node")
	count(`SELECT count(*) FROM system_metrics`, 0)
	// A tenant with an image still cannot go; without, it can, and its
	// alert rules go with it.
	if err := db.Exec(`DELETE FROM tenants WHERE id = ` + tenantA); err == nil {
		t.Error("deleted a tenant that owns an image")
	}
	noErr(t, db.Exec(`INSERT INTO alert_rules (id, tenant_id, name, metric, comparator, threshold, severity, created_at, updated_at)
		VALUES (`+rule1+`, `+tenantA+`, 'cpu', 'cpu', '>', 1, 'info', `+ts+`, `+ts+`)`), "insert rule")
	noErr(t, db.Exec(`DELETE FROM images WHERE tenant_id = `+tenantA), "delete images")
	noErr(t, db.Exec(`DELETE FROM tenants WHERE id = `+tenantA), "delete tenant")
	count(`SELECT count(*) FROM alert_rules`, 0)
	count(`SELECT count(*) FROM audit_logs`, 1)
}
