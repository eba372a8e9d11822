package sqlite

import (
	"context"
	"database/sql"
	"errors"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

var _ novacron.VMStore = (*Store)(nil)

// vmSelect reads VMs with the status of their node, which is not stored
// with the VM.
const vmSelect = `SELECT v.id, v.name, v.driver, v.state, v.desired_state, v.state_reason, v.exit_code, v.node_id,
	coalesce(n.status, ''), v.tenant_id, v.owner_id, v.cpus, v.memory_mb, v.disk_gb, v.image_id, v.config, v.labels,
	v.restart_policy, v.autostart, v.operation_id, v.created_at, v.updated_at
	FROM vms v LEFT JOIN nodes n ON n.id = v.node_id`

type scanner interface{ Scan(...any) error }

// queryer is what *sql.DB and *sql.Tx share.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func scanVM(row scanner) (*novacron.VM, error) {
	var v novacron.VM
	var config, labels string
	err := row.Scan(&v.ID, &v.Name, &v.Driver, &v.State, &v.DesiredState, &v.StateReason, &v.ExitCode,
		nullTextCol{&v.NodeID}, &v.NodeStatus, &v.TenantID, nullTextCol{&v.OwnerID}, &v.CPUs, &v.MemoryMB, &v.DiskGB,
		nullTextCol{&v.ImageID}, &config, &labels, &v.RestartPolicy, &v.Autostart, nullTextCol{&v.OperationID},
		timeCol{&v.CreatedAt}, timeCol{&v.UpdatedAt})
	if err != nil {
		return nil, err
	}
	v.Config = []byte(config)
	if v.Labels, err = store.DecodeLabels([]byte(labels)); err != nil {
		return nil, err
	}
	return &v, nil
}

// getVM reads the VM with the canonical id within the tenant st ("" for
// every tenant).
func getVM(ctx context.Context, q queryer, id, st string) (*novacron.VM, error) {
	v, err := scanVM(q.QueryRowContext(ctx, vmSelect+` WHERE v.id = ?1 AND (?2 IS NULL OR v.tenant_id = ?2)`, id, nullText(st)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.NotFound("vm")
	}
	return v, err
}

// exists reports whether table has a row with the given id.
func exists(ctx context.Context, q queryer, table, id string) (bool, error) {
	var ok bool
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id = ?)`, id).Scan(&ok)
	return ok, err
}

// nameTaken reports whether another VM of the tenant (than the one with id
// self) has the name.
func nameTaken(ctx context.Context, q queryer, tenant, name, self string) (bool, error) {
	var ok bool
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM vms WHERE tenant_id = ? AND name = ? AND id <> ?)`,
		tenant, name, self).Scan(&ok)
	return ok, err
}

// usage sums the tenant's VMs.
func usage(ctx context.Context, q queryer, tenant string) (novacron.Usage, error) {
	var u novacron.Usage
	err := q.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(cpus), 0), coalesce(sum(memory_mb), 0), coalesce(sum(disk_gb), 0)
		FROM vms WHERE tenant_id = ?`, tenant).Scan(&u.VMs, &u.VCPUs, &u.MemoryMB, &u.DiskGB)
	return u, err
}

// quotas reads the tenant's quotas; ENotFound when there is no tenant.
func quotas(ctx context.Context, q queryer, tenant string) (novacron.Quotas, error) {
	var b string
	err := q.QueryRowContext(ctx, `SELECT quotas FROM tenants WHERE id = ?`, tenant).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return novacron.Quotas{}, store.NotFound("tenant")
	}
	if err != nil {
		return novacron.Quotas{}, err
	}
	return store.DecodeQuotas([]byte(b))
}

// CreateVM inserts vm and its creation operation op in one transaction,
// within the tenant's quotas, and reloads both from the rows. The single
// write connection serializes the quota check with every other write.
func (s *Store) CreateVM(ctx context.Context, vm *novacron.VM, op *novacron.Operation) error {
	v, js, err := store.PrepareVM(vm)
	if err != nil {
		return err
	}
	o, err := store.PrepareOperation(op, v.ID, v.TenantID)
	if err != nil {
		return err
	}
	now := store.Time(s.now())
	var got *novacron.VM
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		q, err := quotas(ctx, tx, v.TenantID)
		if novacron.IsCode(err, novacron.ENotFound) {
			return novacron.FieldError("tenant_id", "tenant does not exist")
		}
		if err != nil {
			return err
		}
		for _, ref := range []struct{ field, table, what, id string }{
			{"node_id", "nodes", "node", v.NodeID}, {"image_id", "images", "image", v.ImageID}, {"owner_id", "users", "user", v.OwnerID},
		} {
			if ref.id == "" {
				continue
			}
			ok, err := exists(ctx, tx, ref.table, ref.id)
			if err != nil {
				return err
			}
			if !ok {
				return novacron.FieldError(ref.field, "%s does not exist", ref.what)
			}
		}
		// The images the config names: SQLite's one writer at a time keeps
		// them from going before this VM is written.
		for _, ref := range store.ConfigImages(v.Config) {
			id, ok := store.ParseID(ref.ID)
			if ok {
				ok, err = exists(ctx, tx, "images", id)
				if err != nil {
					return err
				}
			}
			if !ok {
				return novacron.FieldError(ref.Field, "no such image")
			}
		}
		taken, err := nameTaken(ctx, tx, v.TenantID, v.Name, v.ID)
		if err != nil {
			return err
		}
		if taken {
			return store.NameTaken(v.Name)
		}
		used, err := usage(ctx, tx, v.TenantID)
		if err != nil {
			return err
		}
		req := novacron.Usage{VMs: 1, VCPUs: int64(v.CPUs), MemoryMB: int64(v.MemoryMB), DiskGB: int64(v.DiskGB)}
		if err := store.CheckQuotas(q, used, req); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO vms (id, name, driver, state, desired_state, state_reason, exit_code,
			node_id, tenant_id, owner_id, cpus, memory_mb, disk_gb, image_id, config, labels, restart_policy, autostart,
			operation_id, created_at, updated_at)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?20)`,
			v.ID, v.Name, v.Driver, v.State, v.DesiredState, v.StateReason, v.ExitCode,
			nullText(v.NodeID), v.TenantID, nullText(v.OwnerID), v.CPUs, v.MemoryMB, v.DiskGB, nullText(v.ImageID),
			string(js.Config), string(js.Labels), v.RestartPolicy, v.Autostart, o.ID, timeText(now))
		switch constraint(err) {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return novacron.Errorf(novacron.EConflict, "vm id already exists")
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return store.NameTaken(v.Name)
		}
		if isForeignKey(err) {
			return novacron.FieldError("vm", "refers to a node, image or owner that does not exist")
		}
		if err != nil {
			return err
		}
		if err := insertOperation(ctx, tx, &o, now); err != nil {
			return err
		}
		got, err = getVM(ctx, tx, v.ID, "")
		return err
	})
	if err != nil {
		return wrap("create vm", err)
	}
	*vm, *op = *got, o
	return nil
}

// GetVM returns the VM with the given id within scope.
func (s *Store) GetVM(ctx context.Context, scope novacron.Scope, id string) (*novacron.VM, error) {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return nil, store.NotFound("vm")
	}
	v, err := getVM(ctx, s.read, id, st)
	return v, wrap("get vm", err)
}

// GetVMByName returns the VM with the given name within scope. Across
// every tenant a name that several tenants use is EConflict.
func (s *Store) GetVMByName(ctx context.Context, scope novacron.Scope, name string) (*novacron.VM, error) {
	st, ok := store.ScopeTenant(scope)
	if !ok || name == "" {
		return nil, store.NotFound("vm")
	}
	rows, err := s.read.QueryContext(ctx, vmSelect+` WHERE v.name = ?1 AND (?2 IS NULL OR v.tenant_id = ?2)
		ORDER BY v.id LIMIT 2`, name, nullText(st))
	if err != nil {
		return nil, wrap("get vm", err)
	}
	vms, err := collectVMs(rows)
	if err != nil {
		return nil, wrap("get vm", err)
	}
	switch len(vms) {
	case 0:
		return nil, store.NotFound("vm")
	case 1:
		return vms[0], nil
	}
	return nil, store.AmbiguousName()
}

func collectVMs(rows *sql.Rows) ([]*novacron.VM, error) {
	defer rows.Close()
	var vms []*novacron.VM
	for rows.Next() {
		v, err := scanVM(rows)
		if err != nil {
			return nil, err
		}
		vms = append(vms, v)
	}
	return vms, rows.Err()
}

// ListVMs lists the VMs within scope that match f, in id (creation) order.
func (s *Store) ListVMs(ctx context.Context, scope novacron.Scope, f novacron.VMFilter) ([]*novacron.VM, string, error) {
	limit := store.Limit(f.Page)
	after, err := store.DecodeCursor(f.Cursor, store.MinID)
	if err != nil {
		return nil, "", err
	}
	node, err := store.FilterID("node_id", f.NodeID)
	if err != nil {
		return nil, "", err
	}
	labels, err := store.FilterLabels(f.Labels)
	if err != nil {
		return nil, "", wrap("list vms", err)
	}
	st, ok := store.ScopeTenant(scope)
	if !ok {
		return nil, "", nil
	}
	var want any
	if labels != nil {
		want = string(labels)
	}
	// Every wanted label must be among the VM's: no wanted pair lacks a
	// matching one.
	rows, err := s.read.QueryContext(ctx, vmSelect+`
		WHERE (?1 IS NULL OR v.tenant_id = ?1) AND (?2 IS NULL OR v.state = ?2) AND (?3 IS NULL OR v.node_id = ?3)
		  AND (?4 IS NULL OR v.driver = ?4) AND (?5 IS NULL OR v.name = ?5)
		  AND NOT EXISTS (SELECT 1 FROM json_each(?6) AS w WHERE NOT EXISTS (
		      SELECT 1 FROM json_each(v.labels) AS h WHERE h.key = w.key AND h.type = 'text' AND h.value = w.value))
		  AND v.id > ?7
		ORDER BY v.id LIMIT ?8`,
		nullText(st), nullText(string(f.State)), nullText(node), nullText(f.Driver), nullText(f.Name), want, after, limit+1)
	if err != nil {
		return nil, "", wrap("list vms", err)
	}
	vms, err := collectVMs(rows)
	if err != nil {
		return nil, "", wrap("list vms", err)
	}
	vms, next := store.NextCursor(vms, limit, func(v *novacron.VM) string { return v.ID })
	return vms, next, nil
}

// UpdateVMSpec writes vm's Name, CPUs, MemoryMB, Labels, RestartPolicy and
// Autostart while the VM's state is one of states, within the tenant's
// quotas, and reloads vm from the row.
func (s *Store) UpdateVMSpec(ctx context.Context, scope novacron.Scope, vm *novacron.VM, states []novacron.VMState) error {
	id, ok := store.ParseID(vm.ID)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return store.NotFound("vm")
	}
	labels, err := store.PrepareSpec(vm)
	if err != nil {
		return err
	}
	now := store.Time(s.now())
	var got *novacron.VM
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := getVM(ctx, tx, id, st)
		if err != nil {
			return err
		}
		if !store.StateIn(cur.State, states) {
			return store.InvalidState(cur.State)
		}
		if vm.Name != cur.Name {
			taken, err := nameTaken(ctx, tx, cur.TenantID, vm.Name, id)
			if err != nil {
				return err
			}
			if taken {
				return store.NameTaken(vm.Name)
			}
		}
		if vm.CPUs > cur.CPUs || vm.MemoryMB > cur.MemoryMB {
			q, err := quotas(ctx, tx, cur.TenantID)
			if err != nil {
				return err
			}
			used, err := usage(ctx, tx, cur.TenantID)
			if err != nil {
				return err
			}
			req := novacron.Usage{VCPUs: int64(vm.CPUs - cur.CPUs), MemoryMB: int64(vm.MemoryMB - cur.MemoryMB)}
			if err := store.CheckQuotas(q, used, req); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE vms SET name = ?, cpus = ?, memory_mb = ?, labels = ?, restart_policy = ?,
			autostart = ?, updated_at = ? WHERE id = ?`,
			vm.Name, vm.CPUs, vm.MemoryMB, string(labels), vm.RestartPolicy, vm.Autostart, timeText(now), id)
		if constraint(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
			return store.NameTaken(vm.Name)
		}
		if err != nil {
			return err
		}
		got, err = getVM(ctx, tx, id, "")
		return err
	})
	if err != nil {
		return wrap("update vm", err)
	}
	*vm = *got
	return nil
}

// BeginOperation moves the VM from one of the states from to state to,
// records op and points the VM at it, when no operation of the VM runs.
// The single write connection makes the check and the write atomic.
func (s *Store) BeginOperation(ctx context.Context, vm *novacron.VM, from []novacron.VMState, to, desired novacron.VMState, op *novacron.Operation) error {
	id, ok := store.ParseID(vm.ID)
	if !ok {
		return store.NotFound("vm")
	}
	if !store.ValidState(to) {
		return novacron.FieldError("state", "unknown state %q", to)
	}
	if desired != "" && !store.ValidState(desired) {
		return novacron.FieldError("desired_state", "unknown state %q", desired)
	}
	if _, err := store.PrepareOperation(op, id, ""); err != nil {
		return err
	}
	now := store.Time(s.now())
	var got *novacron.VM
	var o novacron.Operation
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var tenant string
		var state novacron.VMState
		var current string
		err := tx.QueryRowContext(ctx, `SELECT tenant_id, state, operation_id FROM vms WHERE id = ?`, id).
			Scan(&tenant, &state, nullTextCol{&current})
		if errors.Is(err, sql.ErrNoRows) {
			return store.NotFound("vm")
		}
		if err != nil {
			return err
		}
		if !store.StateIn(state, from) {
			return store.InvalidState(state)
		}
		if current != "" {
			running, err := operationRunning(ctx, tx, current)
			if err != nil {
				return err
			}
			if running {
				return store.Busy(current)
			}
		}
		if o, err = store.PrepareOperation(op, id, tenant); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE vms SET state = ?, desired_state = coalesce(?, desired_state), operation_id = ?,
			updated_at = ? WHERE id = ?`, to, nullText(string(desired)), o.ID, timeText(now), id)
		if err != nil {
			return err
		}
		if err := insertOperation(ctx, tx, &o, now); err != nil {
			return err
		}
		got, err = getVM(ctx, tx, id, "")
		return err
	})
	if err != nil {
		return wrap("begin operation", err)
	}
	*vm, *op = *got, o
	return nil
}

// SetVMState records the observed state, reason and exit code of a VM.
func (s *Store) SetVMState(ctx context.Context, id string, state novacron.VMState, reason string, exitCode *int) error {
	id, ok := store.ParseID(id)
	if !ok {
		return store.NotFound("vm")
	}
	if !store.ValidState(state) {
		return novacron.FieldError("state", "unknown state %q", state)
	}
	n, err := rowsAffected(s.write.ExecContext(ctx, `UPDATE vms SET state = ?, state_reason = ?, exit_code = ?, updated_at = ?
		WHERE id = ?`, state, reason, exitCode, timeText(s.now()), id))
	if err != nil {
		return wrap("set vm state", err)
	}
	if n == 0 {
		return store.NotFound("vm")
	}
	return nil
}

// ObserveVMState records an observed state while the VM is still as seen
// (same state and updated_at) with no operation running.
func (s *Store) ObserveVMState(ctx context.Context, seen *novacron.VM, state novacron.VMState, reason string, exitCode *int) (bool, error) {
	id, ok := store.ParseID(seen.ID)
	if !ok {
		return false, store.NotFound("vm")
	}
	if !store.ValidState(state) {
		return false, novacron.FieldError("state", "unknown state %q", state)
	}
	n, err := rowsAffected(s.write.ExecContext(ctx, `UPDATE vms SET state = ?, state_reason = ?, exit_code = ?, updated_at = ?
		WHERE id = ? AND state = ? AND updated_at = ? AND operation_id IS NULL`,
		state, reason, exitCode, timeText(s.now()), id, seen.State, timeText(seen.UpdatedAt)))
	if err != nil {
		return false, wrap("observe vm state", err)
	}
	return n == 1, nil
}

// SetVMDesiredState records what the VM should be doing ("" for nothing).
func (s *Store) SetVMDesiredState(ctx context.Context, id string, desired novacron.VMState) error {
	id, ok := store.ParseID(id)
	if !ok {
		return store.NotFound("vm")
	}
	if desired != "" && !store.ValidState(desired) {
		return novacron.FieldError("desired_state", "unknown state %q", desired)
	}
	n, err := rowsAffected(s.write.ExecContext(ctx, `UPDATE vms SET desired_state = ?, updated_at = ? WHERE id = ?`,
		desired, timeText(s.now()), id))
	if err != nil {
		return wrap("set vm desired state", err)
	}
	if n == 0 {
		return store.NotFound("vm")
	}
	return nil
}

// DeleteVM deletes the VM row; its operations stay.
func (s *Store) DeleteVM(ctx context.Context, id string) error {
	id, ok := store.ParseID(id)
	if !ok {
		return store.NotFound("vm")
	}
	n, err := rowsAffected(s.write.ExecContext(ctx, `DELETE FROM vms WHERE id = ?`, id))
	if err != nil {
		return wrap("delete vm", err)
	}
	if n == 0 {
		return store.NotFound("vm")
	}
	return nil
}

// TenantUsage sums the tenant's VMs; ENotFound when there is no tenant.
func (s *Store) TenantUsage(ctx context.Context, tenantID string) (novacron.Usage, error) {
	id, ok := store.ParseID(tenantID)
	if !ok {
		return novacron.Usage{}, store.NotFound("tenant")
	}
	var u novacron.Usage
	err := s.read.QueryRowContext(ctx, `SELECT count(v.id), coalesce(sum(v.cpus), 0), coalesce(sum(v.memory_mb), 0),
		coalesce(sum(v.disk_gb), 0)
		FROM tenants t LEFT JOIN vms v ON v.tenant_id = t.id WHERE t.id = ? GROUP BY t.id`, id).
		Scan(&u.VMs, &u.VCPUs, &u.MemoryMB, &u.DiskGB)
	if errors.Is(err, sql.ErrNoRows) {
		return novacron.Usage{}, store.NotFound("tenant")
	}
	return u, wrap("tenant usage", err)
}
