package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

const opColumns = `id, vm_id, tenant_id, action, status, phase, error, user_id, created_at, finished_at`

func scanOperation(row pgx.Row) (*novacron.Operation, error) {
	var o novacron.Operation
	var vm, tenant, user *string
	err := row.Scan(&o.ID, &vm, &tenant, &o.Action, &o.Status, &o.Phase, &o.Error, &user, &o.CreatedAt, &o.FinishedAt)
	if err != nil {
		return nil, err
	}
	o.VMID, o.TenantID, o.UserID = deref(vm), deref(tenant), deref(user)
	return &o, nil
}

// insertOperation inserts the prepared operation o, created at now, and
// sets its creation time.
func insertOperation(ctx context.Context, tx pgx.Tx, o *novacron.Operation, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO operations (`+opColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)`,
		o.ID, null(o.VMID), null(o.TenantID), o.Action, o.Status, o.Phase, o.Error, null(o.UserID), now)
	if cerr := uniqueConflict(err, "operation id already exists", "operation already exists"); cerr != nil {
		return cerr
	}
	if err != nil {
		return err
	}
	o.CreatedAt = now
	return nil
}

// operationRunning reports whether the operation with the id runs.
func operationRunning(ctx context.Context, q queryer, id string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM operations WHERE id = $1 AND status = 'running')`, id).Scan(&ok)
	return ok, err
}

// GetOperation returns the operation with the given id within scope.
func (s *Store) GetOperation(ctx context.Context, scope novacron.Scope, id string) (*novacron.Operation, error) {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return nil, store.NotFound("operation")
	}
	o, err := scanOperation(s.pool.QueryRow(ctx, `SELECT `+opColumns+` FROM operations
		WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)`, id, null(st)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.NotFound("operation")
	}
	return o, wrap("get operation", err)
}

// ListOperations lists the operations within scope that match f, newest
// (by id) first.
func (s *Store) ListOperations(ctx context.Context, scope novacron.Scope, f novacron.OperationFilter) ([]*novacron.Operation, string, error) {
	limit := store.Limit(f.Page)
	before, err := store.DecodeCursor(f.Cursor, store.MaxID)
	if err != nil {
		return nil, "", err
	}
	vm, err := store.FilterID("vm_id", f.VMID)
	if err != nil {
		return nil, "", err
	}
	st, ok := store.ScopeTenant(scope)
	if !ok {
		return nil, "", nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+opColumns+` FROM operations
		WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::uuid IS NULL OR vm_id = $2) AND ($3::text IS NULL OR status = $3)
		  AND id < $4
		ORDER BY id DESC LIMIT $5`, null(st), null(vm), null(string(f.Status)), before, limit+1)
	if err != nil {
		return nil, "", wrap("list operations", err)
	}
	ops, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*novacron.Operation, error) { return scanOperation(row) })
	if err != nil {
		return nil, "", wrap("list operations", err)
	}
	ops, next := store.NextCursor(ops, limit, func(o *novacron.Operation) string { return o.ID })
	return ops, next, nil
}

// notRunning explains why an update of a running operation touched no
// row: there is none (ENotFound) or it ended (EConflict).
func notRunning(ctx context.Context, q queryer, id string) error {
	ok, err := exists(ctx, q, "operations", id)
	if err != nil {
		return err
	}
	if !ok {
		return store.NotFound("operation")
	}
	return store.OperationFinished()
}

// SetOperationPhase records the phase a running operation reached.
func (s *Store) SetOperationPhase(ctx context.Context, id, phase string) error {
	id, ok := store.ParseID(id)
	if !ok {
		return store.NotFound("operation")
	}
	tag, err := s.pool.Exec(ctx, `UPDATE operations SET phase = $1 WHERE id = $2 AND status = 'running'`, phase, id)
	if err != nil {
		return wrap("set operation phase", err)
	}
	if tag.RowsAffected() == 0 {
		return wrap("set operation phase", notRunning(ctx, s.pool, id))
	}
	return nil
}

// FinishOperation ends a running operation with status (succeeded or
// failed) and errMsg, and clears the operation of the VM that points at
// it. Of two concurrent calls, the second waits for the row lock of the
// first and then finds the operation ended.
func (s *Store) FinishOperation(ctx context.Context, id string, status novacron.OpStatus, errMsg string) error {
	id, ok := store.ParseID(id)
	if !ok {
		return store.NotFound("operation")
	}
	if status != novacron.OpSucceeded && status != novacron.OpFailed {
		return novacron.FieldError("status", "must be succeeded or failed")
	}
	now := store.Time(s.now())
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE operations SET status = $1, error = $2, finished_at = $3
			WHERE id = $4 AND status = 'running'`, status, errMsg, now, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notRunning(ctx, tx, id)
		}
		_, err = tx.Exec(ctx, `UPDATE vms SET operation_id = NULL, updated_at = $1 WHERE operation_id = $2`, now, id)
		return err
	})
	return wrap("finish operation", err)
}
