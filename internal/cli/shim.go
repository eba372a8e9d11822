package cli

import (
	"github.com/novacron/novacron/internal/driver/process"
	"github.com/spf13/cobra"
)

// newShimCmd is the hidden `shim` command: the per-guest supervisor the
// process driver starts (`novacron shim run … DIR`) and its init stage
// (`novacron shim init`). It is not for people: its arguments are the
// driver's, passed through untouched.
func newShimCmd(_ *env) *cobra.Command {
	return &cobra.Command{
		Use:                "shim",
		Short:              "Supervise one process guest (started by the node agent)",
		Hidden:             true,
		DisableFlagParsing: true,
		Args:               cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return process.RunShim(cmd.Context(), args)
		},
	}
}
