package cli

import (
	"context"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

// roleValue is a --role flag.
func roleValue() *enumValue {
	return newEnumValue("", string(novacron.RoleAdmin), string(novacron.RoleOperator), string(novacron.RoleUser))
}

func newUserCmd(e *env) *cobra.Command {
	return addClientFlags(newGroupCmd("user", "Manage users (admin)",
		newUserListCmd(e),
		newUserShowCmd(e),
		newUserCreateCmd(e),
		newUserUpdateCmd(e),
		newUserDeleteCmd(e),
		newUserRevokeSessionsCmd(e),
	))
}

var userHeader = []string{"ID", "USERNAME", "EMAIL", "ROLE", "TENANT", "CREATED"}

func userRow(u novacron.User) []string {
	return []string{u.ID, u.Username, u.Email, string(u.Role), u.TenantID, fmtTime(u.CreatedAt)}
}

// printUser prints one user as JSON or as key/value lines.
func printUser(cmd *cobra.Command, e *env, u *novacron.User) error {
	if outputJSON(cmd) {
		return writeJSON(e.stdout, u)
	}
	return fields(e.stdout,
		"ID", u.ID,
		"Username", u.Username,
		"Email", u.Email,
		"Role", string(u.Role),
		"Tenant", u.TenantID,
		"Created", fmtTime(u.CreatedAt),
		"Updated", fmtTime(u.UpdatedAt),
	)
}

func newUserListCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List users",
		Args:    cobra.NoArgs,
	}
	role := roleValue()
	cmd.Flags().Var(role, "role", "only users with this `role`: admin, operator or user")
	tenant := cmd.Flags().String("tenant", "", "only users of the tenant with this `name or id`")
	addListFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		f := api.UserFilter{Role: novacron.Role(role.value)}
		if *tenant != "" {
			t, err := resolveTenant(cmd.Context(), c, *tenant)
			if err != nil {
				return err
			}
			f.TenantID = t.ID
		}
		l, err := listPages(cmd, func(ctx context.Context, limit int, cursor string) (*api.List[novacron.User], error) {
			page := f
			page.Limit, page.Cursor = limit, cursor
			return c.ListUsers(ctx, page)
		})
		if err != nil {
			return err
		}
		return printList(cmd, e, l, userHeader, userRow)
	}
	return cmd
}

func newUserShowCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show USER",
		Short: "Show a user, by username or id",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		u, err := resolveUser(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		return printUser(cmd, e, u)
	}
	return cmd
}

func newUserCreateCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create USERNAME",
		Short: "Create a user",
		Long: `Create a user. The password is asked for on the terminal (twice, without
echo) or read from stdin with --password-stdin.`,
		Example: `  novacron user create alice --email alice@example.com --role operator --tenant acme
  printf '%s' "$PW" | novacron user create ci --email ci@example.com --password-stdin`,
		Args: cobra.ExactArgs(1),
	}
	fs := cmd.Flags()
	email := fs.String("email", "", "e-mail address")
	role := roleValue()
	fs.Var(role, "role", "`role`: admin, operator or user (default user)")
	tenant := fs.String("tenant", "", "tenant `name or id` (default: the default tenant)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from stdin")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		req := api.CreateUserRequest{Username: args[0], Email: *email, Role: novacron.Role(role.value)}
		if *tenant != "" {
			t, err := resolveTenant(cmd.Context(), c, *tenant)
			if err != nil {
				return err
			}
			req.TenantID = t.ID
		}
		if req.Password, err = e.readPassword(*fromStdin, "Password for "+args[0]+": ", true); err != nil {
			return err
		}
		u, err := c.CreateUser(cmd.Context(), req)
		if err != nil {
			return err
		}
		return printUser(cmd, e, u)
	}
	return cmd
}

func newUserUpdateCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update USER",
		Short: "Change a user's e-mail, role, tenant or password",
		Long: `Change the given fields of a user, named by username or id. With
--password-stdin the new password is read from stdin, or asked for on a
terminal.`,
		Example: `  novacron user update alice --role admin
  novacron user update alice --password-stdin < new-password.txt`,
		Args: cobra.ExactArgs(1),
	}
	fs := cmd.Flags()
	email := fs.String("email", "", "new e-mail address")
	role := roleValue()
	fs.Var(role, "role", "new `role`: admin, operator or user")
	tenant := fs.String("tenant", "", "move to the tenant with this `name or id`")
	setPassword := fs.Bool("password-stdin", false, "set a new password, read from stdin or the terminal")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var req api.UpdateUserRequest
		if fs.Changed("email") {
			req.Email = email
		}
		if fs.Changed("role") {
			r := novacron.Role(role.value)
			req.Role = &r
		}
		if req == (api.UpdateUserRequest{}) && !fs.Changed("tenant") && !*setPassword {
			return usagef("nothing to change: give --email, --role, --tenant or --password-stdin")
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		u, err := resolveUser(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		if fs.Changed("tenant") {
			t, err := resolveTenant(cmd.Context(), c, *tenant)
			if err != nil {
				return err
			}
			req.TenantID = &t.ID
		}
		if *setPassword {
			_, onTerminal := e.terminalFd()
			pw, err := e.readPassword(!onTerminal, "New password for "+u.Username+": ", true)
			if err != nil {
				return err
			}
			req.Password = &pw
		}
		u, err = c.UpdateUser(cmd.Context(), u.ID, req)
		if err != nil {
			return err
		}
		return printUser(cmd, e, u)
	}
	return cmd
}

func newUserDeleteCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete USER",
		Aliases: []string{"rm"},
		Short:   "Delete a user and end their sessions",
		Args:    cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		u, err := resolveUser(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		if err := c.DeleteUser(cmd.Context(), u.ID); err != nil {
			return err
		}
		return printDone(cmd, e, u, "Deleted user %s (%s).", u.Username, u.ID)
	}
	return cmd
}

func newUserRevokeSessionsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke-sessions USER",
		Short: "End every login session and API token of a user at once",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		u, err := resolveUser(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		if err := c.RevokeUserSessions(cmd.Context(), u.ID); err != nil {
			return err
		}
		return printDone(cmd, e, u, "Revoked every session of user %s (%s).", u.Username, u.ID)
	}
	return cmd
}
