package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// testEnv returns an env whose environment is vars and whose config
// directory is a fresh temporary directory.
func testEnv(t *testing.T, vars map[string]string, stdin string) (*env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	vars = mapsWithDefaults(vars, map[string]string{
		"XDG_CONFIG_HOME": t.TempDir(),
		"HOME":            t.TempDir(),
	})
	var stdout, stderr bytes.Buffer
	e := &env{
		stdin:  strings.NewReader(stdin),
		stdout: &stdout,
		stderr: &stderr,
		lookupEnv: func(k string) (string, bool) {
			v, ok := vars[k]
			return v, ok
		},
	}
	return e, &stdout, &stderr
}

func mapsWithDefaults(m, defaults map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// probe is what the test command saw of its flags.
type probe struct {
	db, listen string
	workers    int
	debug      bool
	server     string
	// name is a verb's flag, not a setting.
	name string
}

// newProbeCmd returns a command declared the way server.go declares its
// flags, recording their final values.
func newProbeCmd(got *probe) *cobra.Command {
	cmd := &cobra.Command{
		Use:  "probe",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			got.server, _ = cmd.Flags().GetString("server")
			return nil
		},
	}
	cmd.Flags().StringVar(&got.db, "db", "sqlite:default.db", "database URL")
	cmd.Flags().StringVar(&got.listen, "listen", ":8090", "address")
	cmd.Flags().IntVar(&got.workers, "workers", 4, "workers")
	cmd.Flags().BoolVar(&got.debug, "debug", false, "debug")
	aliasEnv(cmd, "db", "NOVACRON_DB_URL", "DB_URL")
	markSettings(cmd)
	cmd.Flags().StringVar(&got.name, "name", "", "a verb's flag")
	return addClientFlags(cmd)
}

func TestConfigPrecedence(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		config string // written to a file passed with NOVACRON_CONFIG
		want   probe
		code   int
		stderr string // a substring of stderr
	}{
		{
			name: "defaults",
			want: probe{db: "sqlite:default.db", listen: ":8090", workers: 4},
		},
		{
			name:   "config file",
			config: "# comment\n\ndb = postgres://file\n  listen=:1  \nworkers = 9\ndebug = true\nserver = \"http://x:1\"\n",
			want:   probe{db: "postgres://file", listen: ":1", workers: 9, debug: true, server: "http://x:1"},
		},
		{
			name:   "second alias beats the file",
			env:    map[string]string{"DB_URL": "postgres://alias2"},
			config: "db = postgres://file\n",
			want:   probe{db: "postgres://alias2", listen: ":8090", workers: 4},
		},
		{
			name: "first alias beats the second",
			env:  map[string]string{"DB_URL": "postgres://alias2", "NOVACRON_DB_URL": "postgres://alias1"},
			want: probe{db: "postgres://alias1", listen: ":8090", workers: 4},
		},
		{
			name: "twin beats the aliases",
			env:  map[string]string{"DB_URL": "postgres://alias2", "NOVACRON_DB_URL": "postgres://alias1", "NOVACRON_DB": "postgres://twin"},
			want: probe{db: "postgres://twin", listen: ":8090", workers: 4},
		},
		{
			name:   "flag beats everything",
			args:   []string{"--db", "postgres://flag", "--workers=2"},
			env:    map[string]string{"NOVACRON_DB": "postgres://twin", "DB_URL": "x", "NOVACRON_WORKERS": "3"},
			config: "db = postgres://file\nworkers = 1\n",
			want:   probe{db: "postgres://flag", listen: ":8090", workers: 2},
		},
		{
			name:   "empty variable is unset",
			env:    map[string]string{"NOVACRON_DB": "", "NOVACRON_LISTEN": ""},
			config: "db = postgres://file\n",
			want:   probe{db: "postgres://file", listen: ":8090", workers: 4},
		},
		{
			name: "bool and inherited flags from the environment",
			env:  map[string]string{"NOVACRON_DEBUG": "true", "NOVACRON_SERVER": "http://env:1"},
			want: probe{db: "sqlite:default.db", listen: ":8090", workers: 4, debug: true, server: "http://env:1"},
		},
		{
			name:   "cobra's own flags are not configurable",
			env:    map[string]string{"NOVACRON_VERSION": "1.2.3", "NOVACRON_HELP": "true"},
			want:   probe{db: "sqlite:default.db", listen: ":8090", workers: 4},
			stderr: "",
		},
		{
			name:   "another command's setting is a known key",
			config: "rate-limit-ip = 5\nsession-ttl = 1h\n",
			want:   probe{db: "sqlite:default.db", listen: ":8090", workers: 4},
		},
		{
			name: "a verb's flag is not read from the environment",
			env:  map[string]string{"NOVACRON_NAME": "oops"},
			want: probe{db: "sqlite:default.db", listen: ":8090", workers: 4},
		},
		{
			name:   "a verb's flag is not a config key",
			config: "name = oops\n",
			code:   2,
			stderr: "unknown key \"name\"",
		},
		{
			name:   "unknown key names its line",
			config: "db = x\n\n# fine\nbogus = 1\n",
			code:   2,
			stderr: ":4: unknown key \"bogus\"",
		},
		{
			name:   "line without equals",
			config: "db\n",
			code:   2,
			stderr: ":1: want \"name = value\"",
		},
		{
			name:   "duplicate key",
			config: "db = a\ndb = b\n",
			code:   2,
			stderr: ":2: \"db\" is already set on line 1",
		},
		{
			name:   "config cannot name a config",
			config: "config = other.conf\n",
			code:   2,
			stderr: "cannot be set in a config file",
		},
		{
			name:   "bad value in the environment names the variable",
			env:    map[string]string{"NOVACRON_WORKERS": "many"},
			code:   2,
			stderr: "$NOVACRON_WORKERS: invalid value for --workers",
		},
		{
			name:   "bad value in the file names the line",
			config: "listen = :1\nworkers = many\n",
			code:   2,
			stderr: ":2: invalid value for workers",
		},
		{
			name:   "enum checked from the environment",
			env:    map[string]string{"NOVACRON_OUTPUT": "yaml"},
			code:   2,
			stderr: "$NOVACRON_OUTPUT: invalid value for --output: must be one of table, json",
		},
		{
			name:   "missing config file",
			args:   []string{"--config", "/nonexistent/novacron.conf"},
			code:   2,
			stderr: "config file: open /nonexistent/novacron.conf",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{}
			for k, v := range tt.env {
				vars[k] = v
			}
			if tt.config != "" {
				path := filepath.Join(t.TempDir(), "novacron.conf")
				if err := os.WriteFile(path, []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
				vars["NOVACRON_CONFIG"] = path
			}
			e, stdout, stderr := testEnv(t, vars, "")
			var got probe
			root := newRootCmd(e)
			root.AddCommand(newProbeCmd(&got))
			code := execute(context.Background(), e, root, append([]string{"probe"}, tt.args...))
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
			if tt.code == 0 && got != tt.want {
				t.Errorf("flags = %+v, want %+v", got, tt.want)
			}
			if tt.code == 0 && stdout.Len() > 0 {
				t.Errorf("stdout = %q", stdout)
			}
		})
	}
}

func TestConfigFlagBeatsConfigEnv(t *testing.T) {
	dir := t.TempDir()
	fromFlag, fromEnv := filepath.Join(dir, "flag.conf"), filepath.Join(dir, "env.conf")
	os.WriteFile(fromFlag, []byte("listen = :flag\n"), 0o600)
	os.WriteFile(fromEnv, []byte("listen = :env\n"), 0o600)
	e, _, stderr := testEnv(t, map[string]string{"NOVACRON_CONFIG": fromEnv}, "")
	var got probe
	root := newRootCmd(e)
	root.AddCommand(newProbeCmd(&got))
	if code := execute(context.Background(), e, root, []string{"probe", "--config", fromFlag}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got.listen != ":flag" {
		t.Errorf("listen = %q, want the --config file's", got.listen)
	}
}

func TestRequiredFlagFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		code int
	}{
		{map[string]string{"AUTH_SECRET": "s3cret"}, 0},
		{nil, 2},
	} {
		e, _, stderr := testEnv(t, tc.env, "")
		var secret string
		cmd := &cobra.Command{Use: "probe", RunE: func(*cobra.Command, []string) error { return nil }}
		cmd.Flags().StringVar(&secret, "auth-secret", "", "")
		cmd.MarkFlagRequired("auth-secret")
		aliasEnv(cmd, "auth-secret", "AUTH_SECRET")
		markSettings(cmd)
		root := newRootCmd(e)
		root.AddCommand(cmd)
		if code := execute(context.Background(), e, root, []string{"probe"}); code != tc.code {
			t.Errorf("env %v: exit %d, want %d: %s", tc.env, code, tc.code, stderr)
		}
		if tc.code == 0 && secret != "s3cret" {
			t.Errorf("secret = %q", secret)
		}
	}
}

func TestConfigAppliedOnce(t *testing.T) {
	// A command with its own PersistentPreRunE still gets the root's hook
	// (cobra.EnableTraverseRunHooks), and the hook applies config once.
	e, _, stderr := testEnv(t, map[string]string{"NOVACRON_LISTEN": ":7"}, "")
	var got probe
	var ownHook bool
	probeCmd := newProbeCmd(&got)
	probeCmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		ownHook = true
		return e.configure(cmd) // a second call is a no-op
	}
	root := newRootCmd(e)
	root.AddCommand(probeCmd)
	if code := execute(context.Background(), e, root, []string{"probe"}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !ownHook || got.listen != ":7" {
		t.Errorf("own hook ran: %v, listen = %q", ownHook, got.listen)
	}
}

func TestAliasEnvPanicsOnUnknownFlag(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	aliasEnv(&cobra.Command{Use: "x"}, "nope", "NOPE")
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"db":          "NOVACRON_DB",
		"auth-secret": "NOVACRON_AUTH_SECRET",
		"memory-mb":   "NOVACRON_MEMORY_MB",
	} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}

func TestParseConfigQuoting(t *testing.T) {
	entries, err := parseConfig("f", strings.NewReader("a = \" x = y # z \"\nb = p#ss=word\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].value != " x = y # z " || entries[1].value != "p#ss=word" || entries[1].line != 2 {
		t.Errorf("entries = %+v", entries)
	}
	if _, err := parseConfig("f", strings.NewReader("a = \"unterminated\\\"\n")); err == nil {
		t.Error("bad quoting accepted")
	}
}
