package cli

import (
	"fmt"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

func newLoginCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to a server and remember the session",
		Long: `Log in to a NovaCron server and store the session token, the server and the
username in $XDG_CONFIG_HOME/novacron/credentials.json (mode 0600). Later
commands use them unless --server or --token say otherwise.

The password is asked for on the terminal without echo, or read from stdin
with --password-stdin.`,
		Example: `  novacron login --server https://novacron.example.com:8090 --username admin
  echo "$PASSWORD" | novacron login --username admin --password-stdin`,
		Args: cobra.NoArgs,
	}
	username := cmd.Flags().StringP("username", "u", "", "user to log in as (default: the last one logged in)")
	fromStdin := cmd.Flags().Bool("password-stdin", false, "read the password from stdin")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, creds, err := e.client(cmd)
		if err != nil {
			return err
		}
		e.loginHint = false // a refused login is about the password
		user := *username
		if user == "" && creds != nil && creds.Server == c.BaseURL() {
			user = creds.Username
		}
		if user == "" && !*fromStdin {
			user, _ = e.readLine("Username: ")
		}
		if user == "" {
			return usagef("--username is required")
		}
		pw, err := e.readPassword(*fromStdin, "Password: ", false)
		if err != nil {
			return err
		}
		resp, err := c.Login(cmd.Context(), user, pw)
		if err != nil {
			return err
		}
		err = e.saveCredentials(&credentials{Server: c.BaseURL(), Token: resp.Token, Username: resp.User.Username})
		if err != nil {
			return err
		}
		if outputJSON(cmd) {
			return writeJSON(e.stdout, struct {
				Server    string        `json:"server"`
				ExpiresAt time.Time     `json:"expires_at"`
				User      novacron.User `json:"user"`
			}{c.BaseURL(), resp.ExpiresAt, resp.User})
		}
		fmt.Fprintf(e.stdout, "Logged in to %s as %s (role %s); the session expires at %s.\n",
			c.BaseURL(), resp.User.Username, resp.User.Role, fmtTime(resp.ExpiresAt))
		return nil
	}
	return addClientFlags(cmd)
}

func newLogoutCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "End the stored session and forget it",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, creds, err := e.client(cmd)
		if err != nil {
			return err
		}
		stored := creds != nil && !cmd.Flags().Changed("token") && creds.Server == c.BaseURL()
		if e.loginHint {
			fmt.Fprintf(e.stdout, "Not logged in to %s.\n", c.BaseURL())
			return nil
		}
		err = c.Logout(cmd.Context())
		if stored {
			// Forget the token even when the server cannot be told: it is
			// the user's intent, and an expired token is useless anyway.
			if rerr := e.removeCredentials(); rerr != nil {
				return rerr
			}
		}
		if err != nil && !api.IsCode(err, novacron.EUnauthorized) {
			return fmt.Errorf("the server did not end the session, which may still be valid: %w", err)
		}
		fmt.Fprintf(e.stdout, "Logged out of %s.\n", c.BaseURL())
		return nil
	}
	return addClientFlags(cmd)
}

func newWhoamiCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the user the credentials act as",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		u, err := c.Me(cmd.Context())
		if err != nil {
			return err
		}
		if outputJSON(cmd) {
			return writeJSON(e.stdout, u)
		}
		return fields(e.stdout,
			"Server", c.BaseURL(),
			"Username", u.Username,
			"ID", u.ID,
			"Email", u.Email,
			"Role", string(u.Role),
			"Tenant", u.TenantID,
		)
	}
	return addClientFlags(cmd)
}
