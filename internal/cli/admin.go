package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// newAdminCmd is a placeholder for `novacron admin`, which administers a
// control plane's database directly; the real command replaces this file.
func newAdminCmd(_ *env) *cobra.Command {
	return &cobra.Command{
		Use:    "admin",
		Short:  "Administer the control plane's database (not implemented yet)",
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("admin: not implemented")
		},
	}
}
