package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/store"
)

const opColumns = `id, vm_id, tenant_id, action, status, phase, error, user_id, created_at, finished_at`

func scanOperation(row scanner) (*novacron.Operation, error) {
	var o novacron.Operation
	err := row.Scan(&o.ID, nullTextCol{&o.VMID}, nullTextCol{&o.TenantID}, &o.Action, &o.Status, &o.Phase, &o.Error,
		nullTextCol{&o.UserID}, timeCol{&o.CreatedAt}, nullTimeCol{&o.FinishedAt})
	if err != nil {
		return nil, err
	}
	return &o, nil
}

// insertOperation inserts the prepared operation o, created at now, and
// sets its creation time.
func insertOperation(ctx context.Context, tx *sql.Tx, o *novacron.Operation, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO operations (`+opColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
		o.ID, nullText(o.VMID), nullText(o.TenantID), o.Action, o.Status, o.Phase, o.Error, nullText(o.UserID), timeText(now))
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
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM operations WHERE id = ? AND status = 'running')`, id).Scan(&ok)
	return ok, err
}

// GetOperation returns the operation with the given id within scope.
func (s *Store) GetOperation(ctx context.Context, scope novacron.Scope, id string) (*novacron.Operation, error) {
	id, ok := store.ParseID(id)
	st, sok := store.ScopeTenant(scope)
	if !ok || !sok {
		return nil, store.NotFound("operation")
	}
	o, err := scanOperation(s.read.QueryRowContext(ctx, `SELECT `+opColumns+` FROM operations
		WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)`, id, nullText(st)))
	if errors.Is(err, sql.ErrNoRows) {
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
	rows, err := s.read.QueryContext(ctx, `SELECT `+opColumns+` FROM operations
		WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR vm_id = ?2) AND (?3 IS NULL OR status = ?3)
		  AND id < ?4
		ORDER BY id DESC LIMIT ?5`, nullText(st), nullText(vm), nullText(string(f.Status)), before, limit+1)
	if err != nil {
		return nil, "", wrap("list operations", err)
	}
	defer rows.Close()
	var ops []*novacron.Operation
	for rows.Next() {
		o, err := scanOperation(rows)
		if err != nil {
			return nil, "", wrap("list operations", err)
		}
		ops = append(ops, o)
	}
	if err := rows.Err(); err != nil {
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
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE operations SET phase = ? WHERE id = ? AND status = 'running'`, phase, id))
		if err != nil {
			return err
		}
		if n == 0 {
			return notRunning(ctx, tx, id)
		}
		return nil
	})
	return wrap("set operation phase", err)
}

// FinishOperation ends a running operation with status (succeeded or
// failed) and errMsg, and clears the operation of the VM that points at it.
func (s *Store) FinishOperation(ctx context.Context, id string, status novacron.OpStatus, errMsg string) error {
	id, ok := store.ParseID(id)
	if !ok {
		return store.NotFound("operation")
	}
	if status != novacron.OpSucceeded && status != novacron.OpFailed {
		return novacron.FieldError("status", "must be succeeded or failed")
	}
	now := timeText(s.now())
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE operations SET status = ?, error = ?, finished_at = ?
			WHERE id = ? AND status = 'running'`, status, errMsg, now, id))
		if err != nil {
			return err
		}
		if n == 0 {
			return notRunning(ctx, tx, id)
		}
		_, err = tx.ExecContext(ctx, `UPDATE vms SET operation_id = NULL, updated_at = ? WHERE operation_id = ?`, now, id)
		return err
	})
	return wrap("finish operation", err)
}
