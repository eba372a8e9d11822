package cli

import (
	"context"
	"strings"
	"testing"
)

// TestMetricsFlags checks --metrics-interval and --metrics-retention and
// their environment twins, refused before the server opens anything.
func TestMetricsFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--metrics-interval", "500ms"}, want: "--metrics-interval"},
		{args: []string{"--metrics-interval", "2h"}, want: "--metrics-interval"},
		{env: map[string]string{"NOVACRON_METRICS_INTERVAL": "0s"}, want: "--metrics-interval"},
		{args: []string{"--metrics-retention", "10m"}, want: "--metrics-retention"},
		{env: map[string]string{"NOVACRON_METRICS_RETENTION": "30m"}, want: "--metrics-retention"},
	} {
		dir := t.TempDir() + "/data"
		e, _, stderr := testEnv(t, tc.env, "")
		code := execute(context.Background(), e, newRootCmd(e), append([]string{"server", "--data-dir", dir, "--listen", "127.0.0.1:0"}, tc.args...))
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("args %v env %v: exit %d, stderr %q; want a usage error about %s", tc.args, tc.env, code, stderr, tc.want)
		}
	}
}
