package api

import (
	"context"
	"net/http"

	"github.com/novacron/novacron"
)

// Login exchanges a username and password for a session token. It does not
// change c: use c.WithToken(resp.Token) to act as the user. A wrong username
// or password is an unauthorized *Error.
func (c *Client) Login(ctx context.Context, username, password string) (*LoginResponse, error) {
	var out LoginResponse
	err := c.Do(ctx, http.MethodPost, "/auth/login", nil, LoginRequest{Username: username, Password: password}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Logout ends the session of c's token at once.
func (c *Client) Logout(ctx context.Context) error {
	return c.Do(ctx, http.MethodPost, "/auth/logout", nil, nil, nil)
}

// Me returns the user that c's token acts as.
func (c *Client) Me(ctx context.Context) (*novacron.User, error) {
	var out novacron.User
	if err := c.Do(ctx, http.MethodGet, "/auth/me", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Register creates an account with role user in tenant default. Servers
// refuse it (forbidden) unless started with --allow-registration.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (*novacron.User, error) {
	var out struct {
		User novacron.User `json:"user"`
	}
	if err := c.Do(ctx, http.MethodPost, "/auth/register", nil, req, &out); err != nil {
		return nil, err
	}
	return &out.User, nil
}

// CreateToken creates a personal API token that acts as c's user. expiresIn
// is a Go duration ("720h"), or "" for the server's default. The secret is in
// the answer only.
func (c *Client) CreateToken(ctx context.Context, name, expiresIn string) (*TokenResponse, error) {
	var out TokenResponse
	err := c.Do(ctx, http.MethodPost, "/api/tokens", nil, CreateTokenRequest{Name: name, ExpiresIn: expiresIn}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTokens lists one page of the personal API tokens of c's user.
func (c *Client) ListTokens(ctx context.Context, opts ListOptions) (*List[Token], error) {
	var out List[Token]
	if err := c.Do(ctx, http.MethodGet, "/api/tokens", pageQuery(opts.Limit, opts.Cursor), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteToken revokes one personal API token of c's user.
func (c *Client) DeleteToken(ctx context.Context, id string) error {
	if err := requireID("token", id); err != nil {
		return err
	}
	return c.Do(ctx, http.MethodDelete, pathf("/api/tokens/%s", id), nil, nil, nil)
}
