package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

// defaultServer is the control plane's address when neither --server nor
// the credentials file says otherwise.
const defaultServer = "http://127.0.0.1:8090"

// addClientFlags gives cmd and its subcommands the flags of commands that
// talk to a server: --server, --token and --output.
func addClientFlags(cmd *cobra.Command) *cobra.Command {
	pf := cmd.PersistentFlags()
	pf.String("server", "", "`URL` of the NovaCron server (default: the server of the last login, else "+defaultServer+")")
	pf.String("token", "", "API token to authenticate with instead of the stored login")
	pf.VarP(newEnumValue("table", "table", "json"), "output", "o", "output `format`: table or json")
	markSetting(pf, "server", "token", "output")
	return cmd
}

// client returns an API client for cmd's --server and --token, falling back
// on the credentials stored by login. The stored token is only sent to the
// server it was issued by.
func (e *env) client(cmd *cobra.Command) (*api.Client, *credentials, error) {
	creds, err := e.loadCredentials()
	if err != nil {
		return nil, nil, err
	}
	server := defaultServer
	if f := cmd.Flags().Lookup("server"); f != nil && f.Changed {
		server = f.Value.String()
	} else if creds != nil && creds.Server != "" {
		server = creds.Server
	}
	server = strings.TrimRight(server, "/")
	if u, err := url.Parse(server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, usagef("invalid server %q: want http(s)://host[:port]", server)
	}
	token := ""
	if f := cmd.Flags().Lookup("token"); f != nil && f.Changed {
		token = f.Value.String()
	} else if creds != nil && strings.TrimRight(creds.Server, "/") == server {
		token = creds.Token
	}
	e.loginHint = token == ""
	c := api.New(server,
		api.WithToken(token),
		api.WithHTTPClient(&http.Client{}),
		api.WithUserAgent("novacron-cli/"+version),
	)
	return c, creds, nil
}

// resolveUser finds a user by username or id.
func resolveUser(ctx context.Context, c *api.Client, nameOrID string) (*novacron.User, error) {
	users, err := api.ListAll(ctx, func(ctx context.Context, cursor string) (*api.List[novacron.User], error) {
		return c.ListUsers(ctx, api.UserFilter{Username: nameOrID, Cursor: cursor})
	})
	if err != nil {
		return nil, err
	}
	for i := range users {
		if users[i].Username == nameOrID {
			return &users[i], nil
		}
	}
	u, err := c.GetUser(ctx, nameOrID)
	if api.IsCode(err, novacron.ENotFound) {
		return nil, notFound("user", nameOrID, err)
	}
	return u, err
}

// resolveTenant finds a tenant by name or id.
func resolveTenant(ctx context.Context, c *api.Client, nameOrID string) (*novacron.Tenant, error) {
	tenants, err := api.ListAll(ctx, func(ctx context.Context, cursor string) (*api.List[novacron.Tenant], error) {
		return c.ListTenants(ctx, api.ListOptions{Cursor: cursor, Limit: 500})
	})
	if err != nil {
		return nil, err
	}
	for i := range tenants {
		if tenants[i].Name == nameOrID {
			return &tenants[i], nil
		}
	}
	for i := range tenants {
		if tenants[i].ID == nameOrID {
			return &tenants[i], nil
		}
	}
	t, err := c.GetTenant(ctx, nameOrID)
	if api.IsCode(err, novacron.ENotFound) {
		return nil, notFound("tenant", nameOrID, err)
	}
	return t, err
}

// notFound rewrites the server's not_found answer for an id into one that
// says the name was tried too.
func notFound(what, nameOrID string, err error) error {
	e := &api.Error{Code: novacron.ENotFound, Message: fmt.Sprintf("no %s named or with id %q", what, nameOrID)}
	var ae *api.Error
	if errors.As(err, &ae) {
		e.Status, e.RequestID = ae.Status, ae.RequestID
	}
	return e
}
