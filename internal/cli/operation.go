package cli

import (
	"context"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

func newOperationCmd(e *env) *cobra.Command {
	cmd := addClientFlags(newGroupCmd("operation", "Follow the asynchronous operations on VMs",
		newOperationListCmd(e),
		newOperationShowCmd(e),
	))
	cmd.Aliases = []string{"op"}
	return cmd
}

func fmtFinished(op novacron.Operation) string {
	if op.FinishedAt == nil {
		return ""
	}
	return fmtTime(*op.FinishedAt)
}

func newOperationListCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List operations, newest first",
		Example: `  novacron operation list --vm web --status failed`,
		Args:    cobra.NoArgs,
	}
	fs := cmd.Flags()
	vmArg := fs.String("vm", "", "only operations on the VM with this `name or id`")
	status := newEnumValue("", string(novacron.OpRunning), string(novacron.OpSucceeded), string(novacron.OpFailed))
	fs.Var(status, "status", "only operations with this `status`: running, succeeded or failed")
	addListFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		f := api.OperationFilter{Status: novacron.OpStatus(status.value)}
		switch {
		case isUUID(*vmArg):
			// Taken as is: the operations of a deleted VM outlive it.
			f.VMID = *vmArg
		case *vmArg != "":
			vm, err := resolveVM(cmd.Context(), c, *vmArg)
			if err != nil {
				return err
			}
			f.VMID = vm.ID
		}
		l, err := listPages(cmd, func(ctx context.Context, limit int, cursor string) (*api.List[novacron.Operation], error) {
			page := f
			page.Limit, page.Cursor = limit, cursor
			return c.ListOperations(ctx, page)
		})
		if err != nil {
			return err
		}
		return printList(cmd, e, l, []string{"ID", "VM", "ACTION", "STATUS", "CREATED", "FINISHED", "ERROR"},
			func(op novacron.Operation) []string {
				return []string{op.ID, op.VMID, op.Action, string(op.Status), fmtTime(op.CreatedAt), fmtFinished(op), op.Error}
			})
	}
	return cmd
}

func newOperationShowCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show an operation",
		Long: `Show an operation: the Location of an asynchronous call, the operation a
VM shows while an action runs, or the one a --wait that ran out names.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		op, err := c.GetOperation(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if outputJSON(cmd) {
			return writeJSON(e.stdout, op)
		}
		return fields(e.stdout,
			"ID", op.ID,
			"VM", op.VMID,
			"Action", op.Action,
			"Status", string(op.Status),
			"Phase", op.Phase,
			"Error", op.Error,
			"User", op.UserID,
			"Tenant", op.TenantID,
			"Created", fmtTime(op.CreatedAt),
			"Finished", fmtFinished(*op),
		)
	}
	return cmd
}
