package api

import (
	"context"
	"net/http"

	"github.com/novacron/novacron"
)

// ListUsers lists one page of users (admin).
func (c *Client) ListUsers(ctx context.Context, f UserFilter) (*List[novacron.User], error) {
	q := pageQuery(f.Limit, f.Cursor, "username", f.Username, "role", string(f.Role), "tenant_id", f.TenantID)
	var out List[novacron.User]
	if err := c.Do(ctx, http.MethodGet, "/api/users", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetUser returns one user by id (admin).
func (c *Client) GetUser(ctx context.Context, id string) (*novacron.User, error) {
	if err := requireID("user", id); err != nil {
		return nil, err
	}
	var out novacron.User
	if err := c.Do(ctx, http.MethodGet, pathf("/api/users/%s", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateUser creates a user (admin). A taken username is a conflict.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (*novacron.User, error) {
	var out novacron.User
	if err := c.Do(ctx, http.MethodPost, "/api/users", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateUser changes the non-nil fields of a user (admin).
func (c *Client) UpdateUser(ctx context.Context, id string, req UpdateUserRequest) (*novacron.User, error) {
	if err := requireID("user", id); err != nil {
		return nil, err
	}
	var out novacron.User
	if err := c.Do(ctx, http.MethodPut, pathf("/api/users/%s", id), nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteUser deletes a user and ends all their sessions (admin).
func (c *Client) DeleteUser(ctx context.Context, id string) error {
	if err := requireID("user", id); err != nil {
		return err
	}
	return c.Do(ctx, http.MethodDelete, pathf("/api/users/%s", id), nil, nil, nil)
}

// RevokeUserSessions ends every login session and personal API token of a
// user at once (admin).
func (c *Client) RevokeUserSessions(ctx context.Context, id string) error {
	if err := requireID("user", id); err != nil {
		return err
	}
	return c.Do(ctx, http.MethodDelete, pathf("/api/users/%s/sessions", id), nil, nil, nil)
}
