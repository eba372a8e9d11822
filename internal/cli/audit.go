package cli

import (
	"context"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

func newAuditCmd(e *env) *cobra.Command {
	return addClientFlags(newGroupCmd("audit", "Read the audit log", newAuditListCmd(e)))
}

func newAuditListCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List audit entries, newest first",
		Long: `List audit entries, newest first: all of them for admins, those of their
tenant for operators. --from and --to take RFC 3339 times or durations
relative to now (-24h).`,
		Example: `  novacron audit list --user alice --action login --from -24h`,
		Args:    cobra.NoArgs,
	}
	fs := cmd.Flags()
	user := fs.String("user", "", "only entries of the user with this `username or id`")
	var f api.AuditFilter
	fs.StringVar(&f.Action, "action", "", "only entries of this `action`")
	fs.StringVar(&f.Resource, "resource", "", "only entries about this `resource` type")
	fs.StringVar(&f.From, "from", "", "only entries at or after this `time`")
	fs.StringVar(&f.To, "to", "", "only entries before this `time`")
	addListFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		if *user != "" {
			f.UserID = *user
			// A deleted user's entries remain: when the name resolves to
			// nobody, filter on the argument as an id.
			if u, err := resolveUser(cmd.Context(), c, *user); err == nil {
				f.UserID = u.ID
			} else if !api.IsCode(err, novacron.ENotFound) && !api.IsCode(err, novacron.EForbidden) {
				return err
			}
		}
		l, err := listPages(cmd, func(ctx context.Context, limit int, cursor string) (*api.List[novacron.AuditEntry], error) {
			page := f
			page.Limit, page.Cursor = limit, cursor
			return c.ListAudit(ctx, page)
		})
		if err != nil {
			return err
		}
		header := []string{"TIME", "USER", "ACTION", "RESOURCE", "RESULT", "IP", "ERROR"}
		return printList(cmd, e, l, header, func(a novacron.AuditEntry) []string {
			who := a.Username
			if who == "" {
				who = a.UserID
			}
			res := a.Resource
			if a.ResourceID != "" {
				res += "/" + a.ResourceID
			}
			result := "ok"
			if !a.Success {
				result = "failed"
			}
			return []string{fmtTime(a.TS), who, a.Action, res, result, a.IP, a.Error}
		})
	}
	return cmd
}
