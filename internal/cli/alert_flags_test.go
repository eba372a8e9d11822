package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServerAlertFlags: bad alert settings are usage errors (exit 2),
// refused before anything is created in the data directory.
func TestServerAlertFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--alert-webhook-allow", "not-a-cidr"}, "--alert-webhook-allow"},
		{[]string{"--alert-interval", "0s"}, "--alert-interval"},
		{[]string{"--alert-stale-after", "-1s"}, "--alert-stale-after"},
		{[]string{"--alert-webhook-secret", "k", "--alert-webhook-secret-file", empty}, "exclude each other"},
		{[]string{"--alert-webhook-secret-file", empty}, "the file is empty"},
		{[]string{"--alert-webhook-secret-file", filepath.Join(dir, "missing")}, "--alert-webhook-secret-file"},
	} {
		args := append([]string{"server", "--data-dir", dir, "--listen", "127.0.0.1:0"}, tc.args...)
		r := runCLI(t, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused configuration created the data directory (%v)", err)
	}
}
