package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

func newVMCmd(e *env) *cobra.Command {
	return addClientFlags(newGroupCmd("vm", "Manage VMs, containers and processes",
		newVMListCmd(e),
		newVMShowCmd(e),
		newVMCreateCmd(e),
		newVMUpdateCmd(e),
		newVMStartCmd(e),
		newVMStopCmd(e),
		newVMRestartCmd(e),
		newVMPauseCmd(e),
		newVMResumeCmd(e),
		newVMDeleteCmd(e),
		newVMLogsCmd(e),
		newVMExecCmd(e),
		newVMConsoleCmd(e),
		newVMStatsCmd(e),
		newVMMetricsCmd(e),
	))
}

var vmStates = []string{
	string(novacron.StateCreating), string(novacron.StateStopped), string(novacron.StateStarting),
	string(novacron.StateRunning), string(novacron.StateStopping), string(novacron.StateRestarting),
	string(novacron.StatePaused), string(novacron.StateMigrating), string(novacron.StateDeleting),
	string(novacron.StateFailed),
}

var vmDrivers = []string{novacron.DriverProcess, novacron.DriverContainer, novacron.DriverQEMU}

// restartPolicyValue is a --restart-policy flag.
func restartPolicyValue() *enumValue {
	return newEnumValue("", string(novacron.RestartNever), string(novacron.RestartOnFailure), string(novacron.RestartAlways))
}

// resolveVM finds a VM by id or name. A UUID is looked up as an id first;
// anything else, or a UUID that is no VM's id, as a name. Names are unique
// within a tenant, so an admin who sees several tenants may find several
// VMs of one name: then the id is needed.
func resolveVM(ctx context.Context, c *api.Client, nameOrID string) (*novacron.VM, error) {
	looksLikeID := isUUID(nameOrID)
	if looksLikeID {
		vm, err := c.GetVM(ctx, nameOrID)
		if !api.IsCode(err, novacron.ENotFound) {
			return vm, err
		}
	}
	vms, err := api.ListAll(ctx, func(ctx context.Context, cursor string) (*api.List[novacron.VM], error) {
		return c.ListVMs(ctx, api.VMFilter{Name: nameOrID, Cursor: cursor})
	})
	if err != nil {
		return nil, err
	}
	vms = slices.DeleteFunc(vms, func(vm novacron.VM) bool { return vm.Name != nameOrID })
	switch len(vms) {
	case 0:
		msg := fmt.Sprintf("no VM named %q", nameOrID)
		if looksLikeID {
			msg = fmt.Sprintf("no VM named or with id %q", nameOrID)
		}
		return nil, &api.Error{Code: novacron.ENotFound, Message: msg}
	case 1:
		return &vms[0], nil
	}
	ids := make([]string, len(vms))
	for i, vm := range vms {
		ids[i] = fmt.Sprintf("%s (tenant %s)", vm.ID, vm.TenantID)
	}
	return nil, fmt.Errorf("%d VMs are named %q; give the id of one: %s", len(vms), nameOrID, strings.Join(ids, ", "))
}

// isUUID reports whether s has the form of a UUID, the form of every id
// the server hands out.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

// parseKeyValues parses repeated k=v flag values into a map; flag names the
// flag for errors.
func parseKeyValues(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--%s %q: want KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// fmtLabels writes labels as k=v pairs in key order.
func fmtLabels(labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	for i, k := range keys {
		keys[i] = k + "=" + labels[k]
	}
	return strings.Join(keys, ",")
}

// fmtAge writes how long ago t was in its largest unit: 45s, 12m, 5h, 3d.
func fmtAge(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := max(time.Since(t), 0)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

func fmtMemory(mb int) string { return strconv.Itoa(mb) + " MB" }

// printVM prints one VM as JSON or as key/value lines.
func printVM(cmd *cobra.Command, e *env, vm *novacron.VM) error {
	if outputJSON(cmd) {
		return writeJSON(e.stdout, vm)
	}
	exitCode := ""
	if vm.ExitCode != nil {
		exitCode = strconv.Itoa(*vm.ExitCode)
	}
	disk := ""
	if vm.DiskGB > 0 {
		disk = strconv.Itoa(vm.DiskGB) + " GB"
	}
	config := string(vm.Config)
	var b bytes.Buffer
	if json.Compact(&b, vm.Config) == nil {
		config = b.String()
	}
	if config == "{}" || config == "null" {
		config = ""
	}
	return fields(e.stdout,
		"ID", vm.ID,
		"Name", vm.Name,
		"State", string(vm.State),
		"State reason", vm.StateReason,
		"Exit code", exitCode,
		"Driver", vm.Driver,
		"CPUs", strconv.Itoa(vm.CPUs),
		"Memory", fmtMemory(vm.MemoryMB),
		"Disk", disk,
		"Image", vm.ImageID,
		"Config", config,
		"Labels", fmtLabels(vm.Labels),
		"Restart policy", string(vm.RestartPolicy),
		"Autostart", strconv.FormatBool(vm.Autostart),
		"Node", vm.NodeID,
		"Node status", vm.NodeStatus,
		"Tenant", vm.TenantID,
		"Owner", vm.OwnerID,
		"Operation", vm.OperationID,
		"Created", fmtTime(vm.CreatedAt),
		"Updated", fmtTime(vm.UpdatedAt),
	)
}

func newVMListCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List VMs",
		Long: `List the VMs you can see, oldest first. A REASON column says why the
failed ones failed; --output json prints every field, ids included.`,
		Example: `  novacron vm list --state running --label app=web
  novacron vm list --driver process -o json`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	state := newEnumValue("", vmStates...)
	fs.Var(state, "state", "only VMs in this `state`: "+strings.Join(vmStates, ", "))
	driver := newEnumValue("", vmDrivers...)
	fs.Var(driver, "driver", "only VMs of this `driver`: "+strings.Join(vmDrivers, ", "))
	node := fs.String("node", "", "only VMs on the node with this `id`")
	labels := fs.StringArray("label", nil, "only VMs with this `key=value` label (repeatable; all must match)")
	addListFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		lm, err := parseKeyValues("label", *labels)
		if err != nil {
			return err
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		f := api.VMFilter{State: novacron.VMState(state.value), Driver: driver.value, NodeID: *node, Labels: lm}
		l, err := listPages(cmd, func(ctx context.Context, limit int, cursor string) (*api.List[novacron.VM], error) {
			page := f
			page.Limit, page.Cursor = limit, cursor
			return c.ListVMs(ctx, page)
		})
		if err != nil {
			return err
		}
		header := []string{"NAME", "STATE", "DRIVER", "CPUS", "MEMORY", "NODE", "AGE"}
		failed := slices.ContainsFunc(l.Items, func(vm novacron.VM) bool { return vm.State == novacron.StateFailed })
		if failed {
			header = append(header, "REASON")
		}
		return printList(cmd, e, l, header, func(vm novacron.VM) []string {
			row := []string{vm.Name, string(vm.State), vm.Driver, strconv.Itoa(vm.CPUs), fmtMemory(vm.MemoryMB),
				vm.NodeID, fmtAge(vm.CreatedAt)}
			if failed {
				reason := ""
				if vm.State == novacron.StateFailed {
					reason = vm.StateReason
				}
				row = append(row, reason)
			}
			return row
		})
	}
	return cmd
}

func newVMShowCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show VM",
		Short: "Show a VM, by name or id",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		vm, err := resolveVM(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		return printVM(cmd, e, vm)
	}
	return cmd
}

func newVMCreateCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAME [-- COMMAND [ARG...]]",
		Short: "Create a VM, container or process",
		Long: `Create a VM. For the process and container drivers the command to run
follows "--", with --env and --cwd; any driver's configuration may instead be
given whole as a JSON object with --driver-config (or @FILE to read it from a
file). The VM is created stopped, or started with --start.

Creating is asynchronous: without --wait the VM is printed in state creating;
with --wait the command returns when it is stopped (or running), and fails
with the server's reason if creating or starting failed.`,
		Example: `  novacron vm create web --driver process --start --wait -- /bin/sleep 3600
  novacron vm create api --driver container --image IMAGE_ID --env PORT=8080 --label app=api -- /srv/api
  novacron vm create db --driver qemu --cpus 2 --memory-mb 2048 --disk-gb 20 --image IMAGE_ID \
      --driver-config '{"accel": "kvm"}' --restart-policy on-failure`,
		Args: cobra.ArbitraryArgs,
	}
	fs := cmd.Flags()
	driver := newEnumValue("", vmDrivers...)
	fs.Var(driver, "driver", "`driver`: "+strings.Join(vmDrivers, ", ")+" (required)")
	_ = cmd.MarkFlagRequired("driver")
	cpus := fs.Int("cpus", 1, "virtual CPUs")
	memoryMB := fs.Int("memory-mb", 256, "memory in `MB`")
	diskGB := fs.Int("disk-gb", 0, "disk size in `GB` (default: the driver's)")
	image := fs.String("image", "", "image `id` to boot or run")
	driverConfig := fs.String("driver-config", "", "the driver's configuration as a JSON `object`, or @FILE")
	envs := fs.StringArray("env", nil, "environment variable `KEY=VALUE` of the command (repeatable)")
	cwd := fs.String("cwd", "", "working `directory` of the command")
	labels := fs.StringArray("label", nil, "label `key=value` (repeatable)")
	selector := fs.StringArray("node-selector", nil, "place only on a node with this `key=value` label (repeatable)")
	node := fs.String("node", "", "place on the node with this `id` (admin)")
	policy := restartPolicyValue()
	fs.Var(policy, "restart-policy", "`policy` for a guest that stops on its own: never (default), on-failure or always")
	autostart := fs.Bool("autostart", false, "start the VM when its node boots")
	start := fs.Bool("start", false, "start the VM once created")
	wait := addWaitFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name, command, err := splitDash(cmd, args)
		if err != nil {
			return err
		}
		req := api.CreateVMRequest{
			Name: name, Driver: driver.value, CPUs: *cpus, MemoryMB: *memoryMB, DiskGB: *diskGB,
			ImageID: *image, NodeID: *node, Start: *start,
			RestartPolicy: novacron.RestartPolicy(policy.value),
		}
		if fs.Changed("autostart") {
			req.Autostart = autostart
		}
		if req.Labels, err = parseKeyValues("label", *labels); err != nil {
			return err
		}
		if req.NodeSelector, err = parseKeyValues("node-selector", *selector); err != nil {
			return err
		}
		environ, err := parseKeyValues("env", *envs)
		if err != nil {
			return err
		}
		if req.Config, err = buildConfig(driver.value, *driverConfig, command, environ, *cwd); err != nil {
			return err
		}
		w, err := wait.options()
		if err != nil {
			return err
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		vm, err := c.CreateVM(cmd.Context(), req, w)
		if vm != nil {
			if perr := printVM(cmd, e, vm); perr != nil && err == nil {
				err = perr
			}
		}
		return explainWait(err)
	}
	return cmd
}

// splitDash returns the one argument before "--" and the command after it.
func splitDash(cmd *cobra.Command, args []string) (name string, command []string, err error) {
	dash := cmd.ArgsLenAtDash()
	before := args
	if dash >= 0 {
		before, command = args[:dash], args[dash:]
	}
	if len(before) != 1 {
		return "", nil, usagef("give one NAME, then the command after --: %s NAME [-- COMMAND [ARG...]]", cmd.CommandPath())
	}
	if dash >= 0 && len(command) == 0 {
		return "", nil, usagef("no command after --")
	}
	return before[0], command, nil
}

// buildConfig returns the driver configuration of a new VM: --driver-config
// as given, or the one built from the command, --env and --cwd.
func buildConfig(driver, raw string, command []string, env map[string]string, cwd string) (json.RawMessage, error) {
	takesCommand := driver == novacron.DriverProcess || driver == novacron.DriverContainer
	given := len(command) > 0 || len(env) > 0 || cwd != ""
	if raw != "" {
		if given {
			return nil, usagef("give the command, --env and --cwd inside --driver-config, not beside it")
		}
		if file, ok := strings.CutPrefix(raw, "@"); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, asUsage(fmt.Errorf("--driver-config: %w", err))
			}
			raw = string(b)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &obj); err != nil || obj == nil {
			return nil, usagef("--driver-config: want a JSON object")
		}
		var b bytes.Buffer
		_ = json.Compact(&b, []byte(raw))
		return b.Bytes(), nil
	}
	if !given {
		if driver == novacron.DriverProcess {
			return nil, usagef("a process needs a command: %s", "novacron vm create NAME --driver process -- /bin/sleep 3600")
		}
		return nil, nil
	}
	if !takesCommand {
		return nil, usagef("a %s VM takes no command, --env or --cwd; use --driver-config", driver)
	}
	cfg := struct {
		Command []string          `json:"command,omitempty"`
		Env     map[string]string `json:"env,omitempty"`
		Cwd     string            `json:"cwd,omitempty"`
	}{command, env, cwd}
	return json.Marshal(cfg)
}

func newVMUpdateCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update VM",
		Short: "Rename, resize or relabel a VM, or change its restart policy",
		Long: `Change the given fields of a VM, named by name or id. Changing --cpus or
--memory-mb needs a stopped VM. --label key=value sets a label and --label key-
removes one; the other labels stay.`,
		Example: `  novacron vm update web --cpus 2 --memory-mb 512
  novacron vm update web --label tier=front --label old- --restart-policy always
  novacron vm update web --autostart=false`,
		Args: cobra.ExactArgs(1),
	}
	fs := cmd.Flags()
	name := fs.String("name", "", "new `name`")
	cpus := fs.Int("cpus", 0, "virtual CPUs")
	memoryMB := fs.Int("memory-mb", 0, "memory in `MB`")
	labels := fs.StringArray("label", nil, "set label `key=value`, or remove it with key- (repeatable)")
	policy := restartPolicyValue()
	fs.Var(policy, "restart-policy", "`policy` for a guest that stops on its own: never, on-failure or always")
	autostart := fs.Bool("autostart", false, "start the VM when its node boots (--autostart=false: do not)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var req api.UpdateVMRequest
		if fs.Changed("name") {
			req.Name = name
		}
		if fs.Changed("cpus") {
			req.CPUs = cpus
		}
		if fs.Changed("memory-mb") {
			req.MemoryMB = memoryMB
		}
		if fs.Changed("restart-policy") {
			p := novacron.RestartPolicy(policy.value)
			req.RestartPolicy = &p
		}
		if fs.Changed("autostart") {
			req.Autostart = autostart
		}
		set, remove := map[string]string{}, []string{}
		for _, l := range *labels {
			if k, ok := strings.CutSuffix(l, "-"); ok && k != "" && !strings.Contains(k, "=") {
				remove = append(remove, k)
				continue
			}
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				return usagef("--label %q: want KEY=VALUE or KEY-", l)
			}
			set[k] = v
		}
		if req == (api.UpdateVMRequest{}) && len(*labels) == 0 {
			return usagef("nothing to change: give --name, --cpus, --memory-mb, --label, --restart-policy or --autostart")
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		vm, err := resolveVM(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		if len(*labels) > 0 {
			// The API replaces the labels: start from the current ones.
			next := maps.Clone(vm.Labels)
			if next == nil {
				next = map[string]string{}
			}
			maps.Copy(next, set)
			for _, k := range remove {
				delete(next, k)
			}
			req.Labels = &next
		}
		vm, err = c.UpdateVM(cmd.Context(), vm.ID, req)
		if err != nil {
			return err
		}
		return printVM(cmd, e, vm)
	}
	return cmd
}

func newVMLogsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs VM",
		Short: "Print the output of a process or container",
		Long: `Print what a process or container VM wrote to stdout and stderr, as the
server keeps it, unchanged. With --follow, go on printing what it writes
until its guest's run ends (or Ctrl-C).`,
		Example: `  novacron vm logs web --tail 100
  novacron vm logs web --follow --tail 10`,
		Args: cobra.ExactArgs(1),
	}
	tail := cmd.Flags().Int("tail", 0, "only the last `N` lines (default: the server's)")
	follow := cmd.Flags().BoolP("follow", "f", false, "go on printing the output as it is written, until the guest's run ends")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *tail < 0 {
			return usagef("--tail must not be negative")
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		vm, err := resolveVM(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		if *follow {
			r, err := c.FollowVMLogs(cmd.Context(), vm.ID, *tail)
			if err != nil {
				return err
			}
			defer r.Close()
			_, err = io.Copy(e.stdout, r)
			if cmd.Context().Err() != nil {
				return nil // Ctrl-C: the usual end of a follow
			}
			return err
		}
		b, err := c.VMLogs(cmd.Context(), vm.ID, *tail)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	}
	return cmd
}
