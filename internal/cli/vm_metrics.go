package cli

import (
	"strconv"

	"github.com/novacron/novacron/api"
	"github.com/spf13/cobra"
)

func newVMMetricsCmd(e *env) *cobra.Command {
	var r api.MetricsRange
	cmd := &cobra.Command{
		Use:   "metrics VM",
		Short: "Show a VM's usage over a range of time",
		Long: `Show the samples its node took of a VM's usage: CPU, memory and disk in
percent of the VM's allocation, network in bytes per second, disk
operations per second. --from and --to take RFC 3339 times or durations
relative to now (-24h); --step averages over buckets of that length. By
default: the last hour, raw samples, or the smallest step that gives at
most 1000 points. A value that was not measured shows as -.`,
		Example: `  novacron vm metrics web --from -24h
  novacron vm metrics web --from -720h --step 6h -o json`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&r.From, "from", "", "start of the range: RFC 3339 or relative (-24h); default an hour before --to")
	cmd.Flags().StringVar(&r.To, "to", "", "end of the range: RFC 3339 or relative; default now")
	cmd.Flags().StringVar(&r.Step, "step", "", "average over buckets of this length (5m, 1h)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, _, err := e.client(cmd)
		if err != nil {
			return err
		}
		vm, err := resolveVM(cmd.Context(), c, args[0])
		if err != nil {
			return err
		}
		m, err := c.VMMetrics(cmd.Context(), vm.ID, r)
		if err != nil {
			return err
		}
		if outputJSON(cmd) {
			return writeJSON(e.stdout, m)
		}
		t := newTable(e.stdout, "TIME", "CPU %", "MEMORY %", "DISK %", "NET OUT B/S", "NET IN B/S", "IOPS")
		for _, p := range m.Points {
			t.row(fmtTime(p.TS), optFloat(p.CPUUsage, 2), optFloat(p.MemoryUsage, 2), optFloat(p.DiskUsage, 2),
				optFloat(p.NetworkSent, 0), optFloat(p.NetworkRecv, 0), optFloat(p.IOPS, 1))
		}
		return t.flush()
	}
	return cmd
}

// optFloat shows a measured value with prec decimals, "" when unmeasured.
func optFloat(p *float64, prec int) string {
	if p == nil {
		return ""
	}
	return strconv.FormatFloat(*p, 'f', prec, 64)
}
