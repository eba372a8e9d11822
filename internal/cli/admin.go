package cli

import (
	"fmt"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/server"
	"github.com/spf13/cobra"
)

// newAdminCmd groups the commands that work on the server's database
// directly, for when no one can log in.
func newAdminCmd(e *env) *cobra.Command {
	return newGroupCmd("admin", "Administer the control plane's database directly (run on the server host)",
		newResetPasswordCmd(e))
}

func newResetPasswordCmd(e *env) *cobra.Command {
	var (
		sf        serverFlags
		fromStdin bool
	)
	cmd := &cobra.Command{
		Use:   "reset-password USER",
		Short: "Set a user's password and end all of the user's sessions and tokens",
		Long: `Set a user's password directly in the database, and revoke every session and
API token of the user. The new password is read from the terminal, or from
stdin with --password-stdin; without either, one is generated and printed.
Point --data-dir or --db at the server's database.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pw string
			generated := false
			if fromStdin {
				var err error
				if pw, err = e.readPassword(true, "", false); err != nil {
					return err
				}
			} else if _, ok := e.terminalFd(); ok {
				var err error
				if pw, err = e.readPassword(false, "New password: ", true); err != nil {
					return err
				}
			} else {
				pw, generated = auth.GeneratePassword(), true
			}
			if err := auth.ValidatePassword(pw); err != nil {
				return usagef("%s", novacron.ErrorMessage(err))
			}
			st, err := server.OpenStore(cmd.Context(), server.Config{DataDir: sf.dataDir, DB: sf.db, DBMaxConns: 2})
			if err != nil {
				return err
			}
			defer st.Close()
			u, err := st.GetUserByUsername(cmd.Context(), args[0])
			if novacron.IsCode(err, novacron.ENotFound) {
				return fmt.Errorf("no user %q", args[0])
			}
			if err != nil {
				return err
			}
			n, err := auth.SetPassword(cmd.Context(), st, novacron.AllTenants, u, pw)
			if err != nil {
				return err
			}
			if err := st.InsertAudit(cmd.Context(), &novacron.AuditEntry{TS: time.Now().UTC(), Action: "user.reset_password", Resource: "user",
				ResourceID: u.ID, Username: "novacron admin", TenantID: u.TenantID, Success: true}); err != nil {
				return err
			}
			if generated {
				fmt.Fprintf(e.stdout, "New password of %s: %s\n", u.Username, pw)
			}
			fmt.Fprintf(e.stderr, "Password of %s reset; %d sessions and tokens revoked.\n", u.Username, n)
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the new password from stdin")
	return cmd
}
