package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

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

// queryer is what the pool and a transaction share.
type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func scanVM(row pgx.Row) (*novacron.VM, error) {
	var v novacron.VM
	var node, owner, image, op *string
	var config, labels []byte
	err := row.Scan(&v.ID, &v.Name, &v.Driver, &v.State, &v.DesiredState, &v.StateReason, &v.ExitCode,
		&node, &v.NodeStatus, &v.TenantID, &owner, &v.CPUs, &v.MemoryMB, &v.DiskGB,
		&image, &config, &labels, &v.RestartPolicy, &v.Autostart, &op, &v.CreatedAt, &v.UpdatedAt)
	if err != nil {
		return nil, err
	}
	v.NodeID, v.OwnerID, v.ImageID, v.OperationID = deref(node), deref(owner), deref(image), deref(op)
	v.Config = config
	if v.Labels, err = store.DecodeLabels(labels); err != nil {
		return nil, err
	}
	return &v, nil
}

// getVM reads the VM with the canonical id within the tenant st ("" for
// every tenant).
func getVM(ctx context.Context, q queryer, id, st string) (*novacron.VM, error) {
	v, err := scanVM(q.QueryRow(ctx, vmSelect+` WHERE v.id = $1 AND ($2::uuid IS NULL OR v.tenant_id = $2)`, id, null(st)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound("vm")
	}
	return v, err
}

// exists reports whether table has a row with the given id.
func exists(ctx context.Context, q queryer, table, id string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id = $1)`, id).Scan(&ok)
	return ok, err
}

// nameTaken reports whether another VM of the tenant (than the one with id
// self) has the name.
func nameTaken(ctx context.Context, q queryer, tenant, name, self string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM vms WHERE tenant_id = $1 AND name = $2 AND id <> $3)`,
		tenant, name, self).Scan(&ok)
	return ok, err
}

// usage sums the tenant's VMs.
func usage(ctx context.Context, q queryer, tenant string) (novacron.Usage, error) {
	var u novacron.Usage
	err := q.QueryRow(ctx, `SELECT count(*), coalesce(sum(cpus), 0)::bigint, coalesce(sum(memory_mb), 0)::bigint,
		coalesce(sum(disk_gb), 0)::bigint FROM vms WHERE tenant_id = $1`, tenant).
		Scan(&u.VMs, &u.VCPUs, &u.MemoryMB, &u.DiskGB)
	return u, err
}

// lockQuotas reads the tenant's quotas and locks its row until the end of
// tx, so that quota checks of one tenant take turns: each sees the VMs the
// one before it inserted. FOR NO KEY UPDATE conflicts with itself and with
// the FOR UPDATE of UpdateTenant and DeleteTenant, but not with the key
// share lock that inserting a row referencing the tenant takes. It is
// ENotFound when there is no tenant.
func lockQuotas(ctx context.Context, tx pgx.Tx, tenant string) (novacron.Quotas, error) {
	var b []byte
	err := tx.QueryRow(ctx, `SELECT quotas FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, tenant).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return novacron.Quotas{}, store.NotFound("tenant")
	}
	if err != nil {
		return novacron.Quotas{}, err
	}
	return store.DecodeQuotas(b)
}

// vmForeignKey maps a foreign key violation of vms to the field at fault.
func vmForeignKey(err error) error {
	e, ok := pgError(err)
	if !ok || e.Code != "23503" {
		return nil
	}
	for _, ref := range []struct{ field, what string }{
		{"node_id", "node"}, {"image_id", "image"}, {"owner_id", "user"}, {"tenant_id", "tenant"},
	} {
		if strings.Contains(e.ConstraintName, ref.field) {
			return novacron.FieldError(ref.field, "%s does not exist", ref.what)
		}
	}
	return novacron.FieldError("vm", "refers to a node, image or owner that does not exist")
}

// CreateVM inserts vm and its creation operation op in one transaction,
// within the tenant's quotas, and reloads both from the rows.
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
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		q, err := lockQuotas(ctx, tx, v.TenantID)
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
		if err := lockConfigImages(ctx, tx, v.Config); err != nil {
			return err
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
		_, err = tx.Exec(ctx, `INSERT INTO vms (id, name, driver, state, desired_state, state_reason, exit_code,
			node_id, tenant_id, owner_id, cpus, memory_mb, disk_gb, image_id, config, labels, restart_policy, autostart,
			operation_id, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $20)`,
			v.ID, v.Name, v.Driver, v.State, v.DesiredState, v.StateReason, v.ExitCode,
			null(v.NodeID), v.TenantID, null(v.OwnerID), v.CPUs, v.MemoryMB, v.DiskGB, null(v.ImageID),
			js.Config, js.Labels, v.RestartPolicy, v.Autostart, o.ID, now)
		if e, ok := pgError(err); ok && e.Code == "23505" {
			if strings.HasSuffix(e.ConstraintName, "_pkey") {
				return novacron.Errorf(novacron.EConflict, "vm id already exists")
			}
			return store.NameTaken(v.Name)
		}
		if ferr := vmForeignKey(err); ferr != nil {
			return ferr
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
	v, err := getVM(ctx, s.pool, id, st)
	return v, wrap("get vm", err)
}

// GetVMByName returns the VM with the given name within scope. Across
// every tenant a name that several tenants use is EConflict.
func (s *Store) GetVMByName(ctx context.Context, scope novacron.Scope, name string) (*novacron.VM, error) {
	st, ok := store.ScopeTenant(scope)
	if !ok || name == "" {
		return nil, store.NotFound("vm")
	}
	rows, err := s.pool.Query(ctx, vmSelect+` WHERE v.name = $1 AND ($2::uuid IS NULL OR v.tenant_id = $2)
		ORDER BY v.id LIMIT 2`, name, null(st))
	if err != nil {
		return nil, wrap("get vm", err)
	}
	vms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*novacron.VM, error) { return scanVM(row) })
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
	rows, err := s.pool.Query(ctx, vmSelect+`
		WHERE ($1::uuid IS NULL OR v.tenant_id = $1) AND ($2::text IS NULL OR v.state = $2)
		  AND ($3::uuid IS NULL OR v.node_id = $3) AND ($4::text IS NULL OR v.driver = $4)
		  AND ($5::text IS NULL OR v.name = $5) AND ($6::jsonb IS NULL OR v.labels @> $6::jsonb)
		  AND v.id > $7
		ORDER BY v.id LIMIT $8`,
		null(st), null(string(f.State)), null(node), null(f.Driver), null(f.Name), want, after, limit+1)
	if err != nil {
		return nil, "", wrap("list vms", err)
	}
	vms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*novacron.VM, error) { return scanVM(row) })
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
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// A VM never changes tenant: lock the tenant first, as CreateVM
		// does, then the VM.
		var tenant string
		err := tx.QueryRow(ctx, `SELECT tenant_id FROM vms WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)`,
			id, null(st)).Scan(&tenant)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.NotFound("vm")
		}
		if err != nil {
			return err
		}
		q, err := lockQuotas(ctx, tx, tenant)
		if err != nil {
			return err
		}
		var state novacron.VMState
		var name string
		var cpus, memory int
		err = tx.QueryRow(ctx, `SELECT state, name, cpus, memory_mb FROM vms WHERE id = $1 FOR UPDATE`, id).
			Scan(&state, &name, &cpus, &memory)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.NotFound("vm")
		}
		if err != nil {
			return err
		}
		if !store.StateIn(state, states) {
			return store.InvalidState(state)
		}
		if vm.Name != name {
			taken, err := nameTaken(ctx, tx, tenant, vm.Name, id)
			if err != nil {
				return err
			}
			if taken {
				return store.NameTaken(vm.Name)
			}
		}
		if vm.CPUs > cpus || vm.MemoryMB > memory {
			used, err := usage(ctx, tx, tenant)
			if err != nil {
				return err
			}
			req := novacron.Usage{VCPUs: int64(vm.CPUs - cpus), MemoryMB: int64(vm.MemoryMB - memory)}
			if err := store.CheckQuotas(q, used, req); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE vms SET name = $1, cpus = $2, memory_mb = $3, labels = $4, restart_policy = $5,
			autostart = $6, updated_at = $7 WHERE id = $8`,
			vm.Name, vm.CPUs, vm.MemoryMB, labels, vm.RestartPolicy, vm.Autostart, now, id)
		if e, ok := pgError(err); ok && e.Code == "23505" {
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
//
// The row lock makes it atomic: a second caller waits for the first to
// commit and then reads the row it wrote. The running operation is looked
// up in a statement of its own after the lock, whose snapshot sees the
// operation that the first caller inserted (a subquery in the UPDATE's
// WHERE would not: under READ COMMITTED it keeps the older snapshot when
// the row is rechecked, and two pauses of a running VM, whose state does
// not change, would both pass).
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var tenant string
		var state novacron.VMState
		var current *string
		err := tx.QueryRow(ctx, `SELECT tenant_id, state, operation_id FROM vms WHERE id = $1 FOR UPDATE`, id).
			Scan(&tenant, &state, &current)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.NotFound("vm")
		}
		if err != nil {
			return err
		}
		if !store.StateIn(state, from) {
			return store.InvalidState(state)
		}
		if current != nil {
			running, err := operationRunning(ctx, tx, *current)
			if err != nil {
				return err
			}
			if running {
				return store.Busy(*current)
			}
		}
		if o, err = store.PrepareOperation(op, id, tenant); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE vms SET state = $1, desired_state = coalesce($2, desired_state), operation_id = $3,
			updated_at = $4 WHERE id = $5`, to, null(string(desired)), o.ID, now, id)
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
	tag, err := s.pool.Exec(ctx, `UPDATE vms SET state = $1, state_reason = $2, exit_code = $3, updated_at = $4
		WHERE id = $5`, state, reason, exitCode, store.Time(s.now()), id)
	if err != nil {
		return wrap("set vm state", err)
	}
	if tag.RowsAffected() == 0 {
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
	tag, err := s.pool.Exec(ctx, `UPDATE vms SET state = $1, state_reason = $2, exit_code = $3, updated_at = $4
		WHERE id = $5 AND state = $6 AND updated_at = $7 AND operation_id IS NULL`,
		state, reason, exitCode, store.Time(s.now()), id, seen.State, store.Time(seen.UpdatedAt))
	if err != nil {
		return false, wrap("observe vm state", err)
	}
	return tag.RowsAffected() == 1, nil
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
	tag, err := s.pool.Exec(ctx, `UPDATE vms SET desired_state = $1, updated_at = $2 WHERE id = $3`,
		desired, store.Time(s.now()), id)
	if err != nil {
		return wrap("set vm desired state", err)
	}
	if tag.RowsAffected() == 0 {
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM vms WHERE id = $1`, id)
	if err != nil {
		return wrap("delete vm", err)
	}
	if tag.RowsAffected() == 0 {
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
	err := s.pool.QueryRow(ctx, `SELECT count(v.id), coalesce(sum(v.cpus), 0)::bigint, coalesce(sum(v.memory_mb), 0)::bigint,
		coalesce(sum(v.disk_gb), 0)::bigint
		FROM tenants t LEFT JOIN vms v ON v.tenant_id = t.id WHERE t.id = $1 GROUP BY t.id`, id).
		Scan(&u.VMs, &u.VCPUs, &u.MemoryMB, &u.DiskGB)
	if errors.Is(err, pgx.ErrNoRows) {
		return novacron.Usage{}, store.NotFound("tenant")
	}
	return u, wrap("tenant usage", err)
}

// lockConfigImages takes a key share lock on the images a VM's config
// names (a qemu VM's kernel and initrd), which no foreign key guards: a
// concurrent DeleteImage, which locks the image FOR UPDATE before it looks
// for VMs using it, then either waits for this VM and sees it, or deletes
// the image first and this create fails.
func lockConfigImages(ctx context.Context, tx pgx.Tx, config json.RawMessage) error {
	for _, ref := range store.ConfigImages(config) {
		id, ok := store.ParseID(ref.ID)
		if !ok {
			return novacron.FieldError(ref.Field, "no such image")
		}
		var got string
		err := tx.QueryRow(ctx, `SELECT id::text FROM images WHERE id = $1 FOR KEY SHARE`, id).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			return novacron.FieldError(ref.Field, "no such image")
		}
		if err != nil {
			return err
		}
	}
	return nil
}
