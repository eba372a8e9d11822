package api

import (
	"context"
	"net/http"

	"github.com/novacron/novacron"
)

// GetOperation returns one operation by id: the Location of an
// asynchronous call, or a VM's operation_id.
func (c *Client) GetOperation(ctx context.Context, id string) (*novacron.Operation, error) {
	if err := requireID("operation", id); err != nil {
		return nil, err
	}
	var out novacron.Operation
	if err := c.Do(ctx, http.MethodGet, pathf("/api/operations/%s", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListOperations lists one page of the operations the caller can see,
// newest first.
func (c *Client) ListOperations(ctx context.Context, f OperationFilter) (*List[novacron.Operation], error) {
	q := pageQuery(f.Limit, f.Cursor, "vm_id", f.VMID, "status", string(f.Status))
	var out List[novacron.Operation]
	if err := c.Do(ctx, http.MethodGet, "/api/operations", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
