package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

// outputJSON reports whether cmd's --output asks for JSON.
func outputJSON(cmd *cobra.Command) bool {
	f := cmd.Flags().Lookup("output")
	return f != nil && f.Value.String() == "json"
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns through text/tabwriter.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

// row writes one line; tabs and newlines inside cells become spaces so they
// cannot break the columns.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
		if cells[i] == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// fields writes key/value lines for one object.
func fields(w io.Writer, kv ...string) error {
	t := newTable(w)
	for i := 0; i+1 < len(kv); i += 2 {
		t.row(kv[i]+":", kv[i+1])
	}
	return t.flush()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtLimit(p *int64) string {
	if p == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*p, 10)
}

// addListFlags gives a list command --limit, --cursor and --all.
func addListFlags(cmd *cobra.Command) {
	cmd.Flags().Int("limit", 0, "items per page (server default 50, max 500)")
	cmd.Flags().String("cursor", "", "start at this cursor, printed after a partial list")
	cmd.Flags().Bool("all", false, "follow cursors and list every item")
	cmd.MarkFlagsMutuallyExclusive("all", "cursor")
}

// listPages fetches the page cmd's list flags ask for, or every page with
// --all.
func listPages[T any](cmd *cobra.Command, fetch func(ctx context.Context, limit int, cursor string) (*api.List[T], error)) (*api.List[T], error) {
	ctx := cmd.Context()
	fs := cmd.Flags()
	limit, _ := fs.GetInt("limit")
	cursor, _ := fs.GetString("cursor")
	all, _ := fs.GetBool("all")
	if limit < 0 {
		return nil, usagef("--limit must not be negative")
	}
	if !all {
		return fetch(ctx, limit, cursor)
	}
	items, err := api.ListAll(ctx, func(ctx context.Context, cursor string) (*api.List[T], error) {
		return fetch(ctx, limit, cursor)
	})
	if err != nil {
		return nil, err
	}
	if items == nil {
		items = []T{}
	}
	return &api.List[T]{Items: items}, nil
}

// printList prints a list as JSON, or as a table followed, on stderr, by how
// to get the next page.
func printList[T any](cmd *cobra.Command, e *env, l *api.List[T], header []string, row func(T) []string) error {
	if l.Items == nil {
		l.Items = []T{}
	}
	if outputJSON(cmd) {
		return writeJSON(e.stdout, l)
	}
	t := newTable(e.stdout, header...)
	for _, it := range l.Items {
		t.row(row(it)...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if l.NextCursor != "" {
		fmt.Fprintf(e.stderr, "More items: add --cursor %s, or --all.\n", l.NextCursor)
	}
	return nil
}

// printDone reports a change that answers no body: obj as JSON, or a
// sentence.
func printDone(cmd *cobra.Command, e *env, obj any, format string, args ...any) error {
	if outputJSON(cmd) {
		return writeJSON(e.stdout, obj)
	}
	_, err := fmt.Fprintf(e.stdout, format+"\n", args...)
	return err
}
