package api

import (
	"context"
	"net/http"

	"github.com/novacron/novacron"
)

// ListTenants lists one page of the tenants the caller can see.
func (c *Client) ListTenants(ctx context.Context, opts ListOptions) (*List[novacron.Tenant], error) {
	var out List[novacron.Tenant]
	if err := c.Do(ctx, http.MethodGet, "/api/tenants", pageQuery(opts.Limit, opts.Cursor), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTenant returns one tenant by id.
func (c *Client) GetTenant(ctx context.Context, id string) (*novacron.Tenant, error) {
	if err := requireID("tenant", id); err != nil {
		return nil, err
	}
	var out novacron.Tenant
	if err := c.Do(ctx, http.MethodGet, pathf("/api/tenants/%s", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateTenant creates a tenant (admin). A taken name is a conflict.
func (c *Client) CreateTenant(ctx context.Context, req CreateTenantRequest) (*novacron.Tenant, error) {
	var out novacron.Tenant
	if err := c.Do(ctx, http.MethodPost, "/api/tenants", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateTenant renames a tenant or replaces its quotas (admin).
func (c *Client) UpdateTenant(ctx context.Context, id string, req UpdateTenantRequest) (*novacron.Tenant, error) {
	if err := requireID("tenant", id); err != nil {
		return nil, err
	}
	var out novacron.Tenant
	if err := c.Do(ctx, http.MethodPut, pathf("/api/tenants/%s", id), nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteTenant deletes an empty tenant (admin); a tenant that still owns
// users or resources is a conflict.
func (c *Client) DeleteTenant(ctx context.Context, id string) error {
	if err := requireID("tenant", id); err != nil {
		return err
	}
	return c.Do(ctx, http.MethodDelete, pathf("/api/tenants/%s", id), nil, nil, nil)
}
