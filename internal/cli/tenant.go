package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newTenantCmd(e *env) *cobra.Command {
	return addClientFlags(newGroupCmd("tenant", "Manage tenants and their quotas",
		newTenantListCmd(e),
		newTenantShowCmd(e),
		newTenantCreateCmd(e),
		newTenantUpdateCmd(e),
		newTenantDeleteCmd(e),
	))
}

// quotaValue is a quota flag: a non-negative number, or "unlimited".
type quotaValue struct{ limit *int64 }

func (q *quotaValue) String() string {
	if q.limit == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*q.limit, 10)
}

func (q *quotaValue) Type() string { return "int|unlimited" }

func (q *quotaValue) Set(s string) error {
	if s == "unlimited" {
		q.limit = nil
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("want a number ≥ 0 or \"unlimited\"")
	}
	q.limit = &n
	return nil
}

// quotaFlags are the five quota flags of tenant create and update.
type quotaFlags struct {
	fs                                 *pflag.FlagSet
	vms, vcpus, memory, disk, imagesGB quotaValue
}

func addQuotaFlags(fs *pflag.FlagSet) *quotaFlags {
	q := &quotaFlags{fs: fs}
	fs.Var(&q.vms, "vms", "most VMs the tenant may hold, or unlimited")
	fs.Var(&q.vcpus, "vcpus", "most vCPUs over all its VMs, or unlimited")
	fs.Var(&q.memory, "memory-mb", "most memory in MiB over all its VMs, or unlimited")
	fs.Var(&q.disk, "disk-gb", "most disk in GiB over all its VMs, or unlimited")
	fs.Var(&q.imagesGB, "images-gb", "most image storage in GiB, or unlimited")
	// The default of a quota is "no flag", not "unlimited".
	for _, name := range []string{"vms", "vcpus", "memory-mb", "disk-gb", "images-gb"} {
		fs.Lookup(name).DefValue = ""
	}
	return q
}

// given reports whether any quota flag was given.
func (q *quotaFlags) given() bool {
	var scratch novacron.Quotas
	return q.apply(&scratch)
}

// apply overrides the limits in base whose flags were given and reports
// whether there was any.
func (q *quotaFlags) apply(base *novacron.Quotas) bool {
	changed := false
	set := func(name string, v *quotaValue, dst **int64) {
		if q.fs.Changed(name) {
			*dst, changed = v.limit, true
		}
	}
	set("vms", &q.vms, &base.VMs)
	set("vcpus", &q.vcpus, &base.VCPUs)
	set("memory-mb", &q.memory, &base.MemoryMB)
	set("disk-gb", &q.disk, &base.DiskGB)
	set("images-gb", &q.imagesGB, &base.ImagesGB)
	return changed
}

var tenantHeader = []string{"ID", "NAME", "VMS", "VCPUS", "MEMORY_MB", "DISK_GB", "IMAGES_GB", "CREATED"}

func tenantRow(t novacron.Tenant) []string {
	q := t.Quotas
	return []string{t.ID, t.Name, fmtLimit(q.VMs), fmtLimit(q.VCPUs), fmtLimit(q.MemoryMB),
		fmtLimit(q.DiskGB), fmtLimit(q.ImagesGB), fmtTime(t.CreatedAt)}
}

func printTenant(cmd *cobra.Command, e *env, t *novacron.Tenant) error {
	if outputJSON(cmd) {
		return writeJSON(e.stdout, t)
	}
	q := t.Quotas
	return fields(e.stdout,
		"ID", t.ID,
		"Name", t.Name,
		"Quota VMs", fmtLimit(q.VMs),
		"Quota vCPUs", fmtLimit(q.VCPUs),
		"Quota memory MiB", fmtLimit(q.MemoryMB),
		"Quota disk GiB", fmtLimit(q.DiskGB),
		"Quota images GiB", fmtLimit(q.ImagesGB),
		"Created", fmtTime(t.CreatedAt),
		"Updated", fmtTime(t.UpdatedAt),
	)
}

func newTenantListCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List tenants",
		Args:    cobra.NoArgs,
	}
	addListFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		l, err := listPages(cmd, func(ctx context.Context, limit int, cursor string) (*api.List[novacron.Tenant], error) {
			return c.ListTenants(ctx, api.ListOptions{Limit: limit, Cursor: cursor})
		})
		if err != nil {
			return err
		}
		return printList(cmd, e, l, tenantHeader, tenantRow)
	}
	return cmd
}

func newTenantShowCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show TENANT",
		Short: "Show a tenant and its quotas, by name or id",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		t, err := resolveTenant(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		return printTenant(cmd, e, t)
	}
	return cmd
}

func newTenantCreateCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a tenant",
		Example: `  novacron tenant create acme --vms 20 --vcpus 64 --memory-mb 131072`,
		Args:    cobra.ExactArgs(1),
	}
	q := addQuotaFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		req := api.CreateTenantRequest{Name: args[0]}
		var quotas novacron.Quotas
		if q.apply(&quotas) {
			req.Quotas = &quotas
		}
		t, err := c.CreateTenant(cmd.Context(), req)
		if err != nil {
			return err
		}
		return printTenant(cmd, e, t)
	}
	return cmd
}

func newTenantUpdateCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update TENANT",
		Short: "Rename a tenant or change its quotas",
		Long: `Rename a tenant or change its quotas, by name or id. Quotas not given keep
their value; "unlimited" removes a limit.`,
		Example: `  novacron tenant update acme --vms 50 --disk-gb unlimited`,
		Args:    cobra.ExactArgs(1),
	}
	name := cmd.Flags().String("name", "", "new name")
	q := addQuotaFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !cmd.Flags().Changed("name") && !q.given() {
			return usagef("nothing to change: give --name or a quota flag")
		}
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		t, err := resolveTenant(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		var req api.UpdateTenantRequest
		if cmd.Flags().Changed("name") {
			req.Name = name
		}
		quotas := t.Quotas
		if q.apply(&quotas) {
			req.Quotas = &quotas
		}
		if t, err = c.UpdateTenant(cmd.Context(), t.ID, req); err != nil {
			return err
		}
		return printTenant(cmd, e, t)
	}
	return cmd
}

func newTenantDeleteCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete TENANT",
		Aliases: []string{"rm"},
		Short:   "Delete an empty tenant",
		Args:    cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		t, err := resolveTenant(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		if err := c.DeleteTenant(cmd.Context(), t.ID); err != nil {
			return err
		}
		return printDone(cmd, e, t, "Deleted tenant %s (%s).", t.Name, t.ID)
	}
	return cmd
}
