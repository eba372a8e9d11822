package qemu

import (
	"context"
	"path/filepath"
)

// ExecuteQMP runs a QMP command on a guest's QEMU behind the driver's back,
// as something outside NovaCron could.
func ExecuteQMP(ctx context.Context, d *Driver, id, command string) error {
	q, err := d.dial(ctx, filepath.Join(d.cfg.Dir, id))
	if err != nil {
		return err
	}
	defer q.Close()
	return q.Execute(ctx, command, nil, nil)
}
