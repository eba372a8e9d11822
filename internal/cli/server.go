package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// newServerCmd is a placeholder for `novacron server`, which runs the
// control plane; the real command replaces this file.
func newServerCmd(_ *env) *cobra.Command {
	return &cobra.Command{
		Use:    "server",
		Short:  "Run the control plane (not implemented yet)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("server: not implemented")
		},
	}
}
