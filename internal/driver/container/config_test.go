package container

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/novacron/novacron"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		field        string // "" when valid
		want         guestConfig
	}{
		{"empty", ``, "", guestConfig{Cwd: "/"}},
		{"null", `null`, "", guestConfig{Cwd: "/"}},
		{"empty object", `{}`, "", guestConfig{Cwd: "/"}},
		{"command", `{"command": ["/bin/sleep", "1"]}`, "", guestConfig{Command: []string{"/bin/sleep", "1"}, Cwd: "/"}},
		{"full", `{"command": ["/bin/sh"], "env": {"A_1": "x", "_b": ""}, "cwd": "/srv//app/"}`, "",
			guestConfig{Command: []string{"/bin/sh"}, Env: map[string]string{"A_1": "x", "_b": ""}, Cwd: "/srv/app"}},
		{"env only", `{"env": {"A": "1"}}`, "", guestConfig{Env: map[string]string{"A": "1"}, Cwd: "/"}},
		{"nulls", `{"command": null, "env": null, "cwd": null}`, "", guestConfig{Cwd: "/"}},
		{"unknown field", `{"user": "root"}`, "config.user", guestConfig{}},
		{"array", `["/bin/sh"]`, "config", guestConfig{}},
		{"string", `"/bin/sh"`, "config", guestConfig{}},
		{"empty command", `{"command": []}`, "config.command", guestConfig{}},
		{"command string", `{"command": "/bin/sh -c x"}`, "config.command", guestConfig{}},
		{"relative program", `{"command": ["sh"]}`, "config.command[0]", guestConfig{}},
		{"NUL in arg", `{"command": ["/bin/echo", "a\u0000b"]}`, "config.command[1]", guestConfig{}},
		{"env bad key", `{"env": {"1A": "x"}}`, "config.env", guestConfig{}},
		{"env NUL", `{"env": {"A": "x\u0000"}}`, "config.env.A", guestConfig{}},
		{"cwd relative", `{"cwd": "srv"}`, "config.cwd", guestConfig{}},
		{"cwd dotdot", `{"cwd": "/srv/../etc"}`, "config.cwd", guestConfig{}},
		{"cwd NUL", `{"cwd": "/a\u0000"}`, "config.cwd", guestConfig{}},
		{"cwd too long", `{"cwd": "/` + strings.Repeat("a", 4096) + `"}`, "config.cwd", guestConfig{}},
		{"cwd number", `{"cwd": 1}`, "config.cwd", guestConfig{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(json.RawMessage(tc.config))
			if tc.field == "" {
				if err != nil {
					t.Fatalf("parseConfig: %v", err)
				}
				if !slices.Equal(got.Command, tc.want.Command) || got.Cwd != tc.want.Cwd || len(got.Env) != len(tc.want.Env) {
					t.Fatalf("parseConfig = %+v, want %+v", got, tc.want)
				}
				for k, v := range tc.want.Env {
					if got.Env[k] != v {
						t.Fatalf("env %s = %q, want %q", k, got.Env[k], v)
					}
				}
				return
			}
			var e *novacron.Error
			if !errors.As(err, &e) || e.Code != novacron.EInvalid || e.Details["field"] != tc.field {
				t.Fatalf("parseConfig = %v, want an invalid_request error on %s", err, tc.field)
			}
			if !strings.HasPrefix(e.Message, tc.field+": ") {
				t.Fatalf("message %q does not start with the field", e.Message)
			}
		})
	}
}

func TestEnvList(t *testing.T) {
	c := guestConfig{Env: map[string]string{"B": "2", "A": "x=y"}}
	if got, want := c.envList(), []string{"A=x=y", "B=2"}; !slices.Equal(got, want) {
		t.Fatalf("envList = %q, want %q", got, want)
	}
	if got := (guestConfig{}).envList(); len(got) != 0 {
		t.Fatalf("envList of no env = %q", got)
	}
}
