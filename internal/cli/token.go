package cli

import (
	"context"
	"fmt"

	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

func newTokenCmd(e *env) *cobra.Command {
	return addClientFlags(newGroupCmd("token", "Manage your personal API tokens",
		newTokenListCmd(e),
		newTokenCreateCmd(e),
		newTokenDeleteCmd(e),
	))
}

func newTokenListCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List your API tokens",
		Args:    cobra.NoArgs,
	}
	addListFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		l, err := listPages(cmd, func(ctx context.Context, limit int, cursor string) (*api.List[api.Token], error) {
			return c.ListTokens(ctx, api.ListOptions{Limit: limit, Cursor: cursor})
		})
		if err != nil {
			return err
		}
		return printList(cmd, e, l, []string{"ID", "NAME", "CREATED", "EXPIRES"}, func(t api.Token) []string {
			return []string{t.ID, t.Name, fmtTime(t.CreatedAt), fmtTime(t.ExpiresAt)}
		})
	}
	return cmd
}

func newTokenCreateCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an API token that acts as you",
		Long: `Create a personal API token that acts as you until it expires or is deleted.
The token is printed once: store it now. Use it with --token or NOVACRON_TOKEN.`,
		Example: `  novacron token create ci --expires-in 720h`,
		Args:    cobra.ExactArgs(1),
	}
	expiresIn := cmd.Flags().String("expires-in", "", "lifetime as a Go `duration` (720h); default: the server's")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		t, err := c.CreateToken(cmd.Context(), args[0], *expiresIn)
		if err != nil {
			return err
		}
		if outputJSON(cmd) {
			return writeJSON(e.stdout, t)
		}
		if err := fields(e.stdout, "ID", t.ID, "Name", t.Name, "Expires", fmtTime(t.ExpiresAt), "Token", t.Token); err != nil {
			return err
		}
		fmt.Fprintln(e.stderr, "Store the token now: it is not shown again.")
		return nil
	}
	return cmd
}

func newTokenDeleteCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete TOKEN",
		Aliases: []string{"rm", "revoke"},
		Short:   "Revoke one of your API tokens, by id or name",
		Args:    cobra.ExactArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		tokens, err := api.ListAll(cmd.Context(), func(ctx context.Context, cursor string) (*api.List[api.Token], error) {
			return c.ListTokens(ctx, api.ListOptions{Cursor: cursor, Limit: 500})
		})
		if err != nil {
			return err
		}
		var match []api.Token
		for _, t := range tokens {
			if t.ID == args[0] {
				match = []api.Token{t}
				break
			}
			if t.Name == args[0] {
				match = append(match, t)
			}
		}
		switch {
		case len(match) > 1:
			return usagef("%d tokens are named %q: give the id", len(match), args[0])
		case len(match) == 0:
			// Let the server decide: the id may be one the list left out.
			match = []api.Token{{ID: args[0]}}
		}
		t := match[0]
		if err := c.DeleteToken(cmd.Context(), t.ID); err != nil {
			return err
		}
		return printDone(cmd, e, t, "Revoked token %s.", t.ID)
	}
	return cmd
}
