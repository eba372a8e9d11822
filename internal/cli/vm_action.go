package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

// maxWait is the longest wait the server grants an asynchronous call.
const maxWait = 5 * time.Minute

// waitFlags are the --wait and --timeout of an asynchronous verb.
type waitFlags struct {
	wait    *bool
	timeout *time.Duration
}

func addWaitFlags(cmd *cobra.Command) *waitFlags {
	fs := cmd.Flags()
	return &waitFlags{
		wait: fs.Bool("wait", false, "wait for the operation to end: print the final state, fail with the server's reason if it failed"),
		timeout: fs.Duration("timeout", time.Minute,
			"with --wait, stop waiting after this `duration` (at most 5m); the operation goes on"),
	}
}

func (w *waitFlags) options() (api.WaitOptions, error) {
	if *w.timeout <= 0 || *w.timeout > maxWait {
		return api.WaitOptions{}, usagef("--timeout %s: want a duration above 0 and at most %s", *w.timeout, maxWait)
	}
	return api.WaitOptions{Wait: *w.wait, Timeout: *w.timeout}, nil
}

// explainWait adds to a wait that ended before its operation how to follow
// the operation.
func explainWait(err error) error {
	var sr *api.StillRunningError
	if errors.As(err, &sr) && sr.OperationID != "" {
		return fmt.Errorf("%w; it goes on: follow it with 'novacron operation show %s'", err, sr.OperationID)
	}
	return err
}

// printVMState prints a VM after an action: as JSON, or as one line with its
// state, why it is in it, and the operation still at work on it.
func printVMState(cmd *cobra.Command, e *env, vm *novacron.VM) error {
	if outputJSON(cmd) {
		return writeJSON(e.stdout, vm)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "VM %s: %s", vm.Name, vm.State)
	if vm.StateReason != "" {
		fmt.Fprintf(&b, " (%s)", vm.StateReason)
	}
	if vm.OperationID != "" {
		fmt.Fprintf(&b, " (operation %s)", vm.OperationID)
	}
	b.WriteString(".\n")
	_, err := fmt.Fprint(e.stdout, b.String())
	return err
}

// vmActionFunc performs one asynchronous action on the VM with id.
type vmActionFunc func(ctx context.Context, c *api.Client, id string, w api.WaitOptions) (*novacron.VM, error)

// newVMActionCmd returns the command of a lifecycle action: resolve the
// VM, act, print its state.
func newVMActionCmd(e *env, use, short, long string, do vmActionFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use:     use + " VM",
		Short:   short,
		Long:    long + "\n\n" + waitHelp,
		Example: fmt.Sprintf("  novacron vm %s web\n  novacron vm %s web --wait --timeout 2m", use, use),
		Args:    cobra.ExactArgs(1),
	}
	wait := addWaitFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		w, err := wait.options()
		if err != nil {
			return err
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		vm, err := resolveVM(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		vm, err = do(cmd.Context(), c, vm.ID, w)
		if vm != nil {
			if perr := printVMState(cmd, e, vm); perr != nil && err == nil {
				err = perr
			}
		}
		return explainWait(err)
	}
	return cmd
}

const waitHelp = `The action is asynchronous: without --wait the VM is printed in the state it
is passing through, with the operation at work. With --wait the command
returns when the operation ends and prints the final state; it exits 1 with
the server's reason when the operation failed, or when --timeout passed first
(the operation goes on: see 'novacron operation show').`

func newVMStartCmd(e *env) *cobra.Command {
	return newVMActionCmd(e, "start", "Start a stopped or failed VM", "Start a VM, named by name or id, that is stopped or failed.",
		func(ctx context.Context, c *api.Client, id string, w api.WaitOptions) (*novacron.VM, error) {
			return c.StartVM(ctx, id, w)
		})
}

func newVMStopCmd(e *env) *cobra.Command {
	var force bool
	var grace int
	cmd := newVMActionCmd(e, "stop", "Stop a running or paused VM",
		`Stop a VM, named by name or id, that is running or paused: gracefully (a
signal, or an ACPI shutdown), killing it after --timeout-s seconds, or at once
with --force.`,
		func(ctx context.Context, c *api.Client, id string, w api.WaitOptions) (*novacron.VM, error) {
			return c.StopVM(ctx, id, api.StopOptions{Force: force, TimeoutS: grace}, w)
		})
	cmd.Flags().BoolVar(&force, "force", false, "kill the guest at once")
	cmd.Flags().IntVar(&grace, "timeout-s", 0, "`seconds` the guest gets to stop before it is killed (default: the server's)")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if grace < 0 {
			return usagef("--timeout-s must not be negative")
		}
		return nil
	}
	return cmd
}

func newVMRestartCmd(e *env) *cobra.Command {
	return newVMActionCmd(e, "restart", "Restart a running VM", "Restart a running VM, named by name or id.",
		func(ctx context.Context, c *api.Client, id string, w api.WaitOptions) (*novacron.VM, error) {
			return c.RestartVM(ctx, id, w)
		})
}

func newVMPauseCmd(e *env) *cobra.Command {
	return newVMActionCmd(e, "pause", "Pause a running VM", "Pause (freeze) a running VM, named by name or id.",
		func(ctx context.Context, c *api.Client, id string, w api.WaitOptions) (*novacron.VM, error) {
			return c.PauseVM(ctx, id, w)
		})
}

func newVMResumeCmd(e *env) *cobra.Command {
	return newVMActionCmd(e, "resume", "Resume a paused VM", "Resume a paused VM, named by name or id.",
		func(ctx context.Context, c *api.Client, id string, w api.WaitOptions) (*novacron.VM, error) {
			return c.ResumeVM(ctx, id, w)
		})
}

func newVMDeleteCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete VM",
		Aliases: []string{"rm"},
		Short:   "Delete a VM, stopping it first if it runs",
		Long:    "Delete a VM, named by name or id; a running VM is stopped first.\n\n" + waitHelp,
		Example: `  novacron vm delete web --wait`,
		Args:    cobra.ExactArgs(1),
	}
	wait := addWaitFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		w, err := wait.options()
		if err != nil {
			return err
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		vm, err := resolveVM(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		got, err := c.DeleteVM(cmd.Context(), vm.ID, w)
		switch {
		case got != nil:
			if perr := printVMState(cmd, e, got); perr != nil && err == nil {
				err = perr
			}
		case err == nil && w.Wait:
			// 204: the VM is gone.
			gone := struct {
				ID      string `json:"id"`
				Name    string `json:"name"`
				Deleted bool   `json:"deleted"`
			}{vm.ID, vm.Name, true}
			return printDone(cmd, e, gone, "Deleted VM %s (%s).", vm.Name, vm.ID)
		case err == nil:
			// A 202 without a body.
			return printDone(cmd, e, vm, "Deleting VM %s (%s).", vm.Name, vm.ID)
		}
		return explainWait(err)
	}
	return cmd
}
