package container

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver"
)

// TestExecProcessGolden: the process of a command exec'd in the golden
// container, with a terminal, an environment and a working directory.
func TestExecProcessGolden(t *testing.T) {
	base := buildSpec(goldenParams()).Process
	p, err := execProcess(base, driver.ExecRequest{Command: []string{"/bin/sh", "-l"}, TTY: true,
		Env: map[string]string{"A": "2", "TERM": "xterm"}, Cwd: "/tmp/"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(p, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "exec.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("execProcess differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

// TestExecProcess checks what an exec'd command's isolation rests on,
// whatever the container's own process says.
func TestExecProcess(t *testing.T) {
	base := buildSpec(goldenParams()).Process
	base.Capabilities.Bounding = []string{"CAP_SYS_ADMIN"}
	base.NoNewPrivileges = false
	p, err := execProcess(base, driver.ExecRequest{Command: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Capabilities
	if !p.NoNewPrivileges || len(c.Bounding)+len(c.Effective)+len(c.Inheritable)+len(c.Permitted)+len(c.Ambient) != 0 ||
		c.Bounding == nil {
		t.Errorf("privileges: %+v, no_new_privileges %v", c, p.NoNewPrivileges)
	}
	if p.User.UID != 201234 || p.User.GID != 201234 || p.Cwd != "/srv" || p.Terminal {
		t.Errorf("user %+v, cwd %q, terminal %v", p.User, p.Cwd, p.Terminal)
	}
	if want := []string{"A=1", "HOME=/", "PATH=" + "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}; !slices.Equal(p.Env, want) {
		t.Errorf("env %q, want %q", p.Env, want)
	}
	if p, _ := execProcess(base, driver.ExecRequest{Command: []string{"/bin/sh"}, TTY: true}); !slices.Contains(p.Env, "TERM=xterm") {
		t.Errorf("a terminal's env %q has no TERM", p.Env)
	}
	p.Args[0] = "changed"
	if base.Args[0] == "changed" {
		t.Error("execProcess shares its arguments with the container's process")
	}

	for _, tc := range []struct {
		name string
		base *specs.Process
		req  driver.ExecRequest
		code string // "" for a plain error
	}{
		{"root", &specs.Process{User: specs.User{UID: 0, GID: 1000}}, driver.ExecRequest{Command: []string{"/bin/true"}}, ""},
		{"group root", &specs.Process{User: specs.User{UID: 1000, GID: 0}}, driver.ExecRequest{Command: []string{"/bin/true"}}, ""},
		{"no process", nil, driver.ExecRequest{Command: []string{"/bin/true"}}, ""},
		{"a relative cwd", base, driver.ExecRequest{Command: []string{"/bin/true"}, Cwd: "srv"}, novacron.EInvalid},
		{"a cwd with ..", base, driver.ExecRequest{Command: []string{"/bin/true"}, Cwd: "/srv/../etc"}, novacron.EInvalid},
	} {
		_, err := execProcess(tc.base, tc.req)
		if err == nil || (tc.code != "" && novacron.ErrorCode(err) != tc.code) {
			t.Errorf("%s: %v, want an error %s", tc.name, err, tc.code)
		}
	}
}

func TestStatSessionAndCgroup(t *testing.T) {
	for _, tc := range []struct {
		stat string
		sid  int
		ok   bool
	}{
		{"123 (sh) S 100 123 123 34816 123 4194560", 123, true},
		{"124 (a) b) c) R 1 124 77 0", 77, true},
		{"125 (x) R 1", 0, false},
		{"garbage", 0, false},
	} {
		sid, ok := statSession([]byte(tc.stat))
		if sid != tc.sid || ok != tc.ok {
			t.Errorf("statSession(%q) = %d, %v", tc.stat, sid, ok)
		}
	}
	v1 := "12:pids:/novacron/abc\n11:memory:/novacron/abc\n0::/\n"
	v2 := "0::/novacron/abc\n"
	if !inCgroup([]byte(v1), "/novacron/abc") || !inCgroup([]byte(v2), "/novacron/abc") ||
		inCgroup([]byte(v1), "/novacron/ab") || inCgroup([]byte("0::/novacron/abc/sub\n"), "/novacron/abc") {
		t.Error("inCgroup")
	}
	if got := execEnv([]string{"A=1", "B=x=y", "C"}, map[string]string{"A": "2", "D": ""}); !slices.Equal(got, []string{"A=2", "B=x=y", "C=", "D="}) {
		t.Errorf("execEnv = %q", got)
	}
}
