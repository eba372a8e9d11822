package cli

import (
	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Commands are built anew for every Run,
// so no flag state survives between runs.
func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "novacron",
		Short: "NovaCron: manage virtual machines, containers and processes across hosts",
		Long: `NovaCron manages virtual machines, containers and processes across hosts.

Every setting (the flags of server and admin, and --server, --token and
--output) can also be set in the environment as NOVACRON_<FLAG> (upper case,
dashes as underscores, e.g. NOVACRON_SERVER for --server) or in a config file
(--config FILE or NOVACRON_CONFIG) of "flag-name = value" lines. The command
line wins over the environment, which wins over the file. The flags of
client verbs come from the command line only.`,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Configuration is applied here, once, for whichever command runs.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return e.configure(cmd)
		},
	}
	root.PersistentFlags().String(configFlag, "", "read flags from this `file` of \"name = value\" lines (env NOVACRON_CONFIG)")
	root.CompletionOptions.HiddenDefaultCmd = true

	root.AddCommand(
		newLoginCmd(e),
		newLogoutCmd(e),
		newWhoamiCmd(e),
		newUserCmd(e),
		newTenantCmd(e),
		newTokenCmd(e),
		newAuditCmd(e),
		newVMCmd(e),
		newImageCmd(e),
		newOperationCmd(e),
		newServerCmd(e),
		newAdminCmd(e),
		newShimCmd(e),
		newTransferCmd(e),
	)
	return root
}

// newGroupCmd returns a command that only holds subcommands: alone it shows
// its help, with an unknown subcommand it is a usage error (cobra would show
// the help and succeed).
func newGroupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}
