package process

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/novacron/novacron"
)

func TestParseConfig(t *testing.T) {
	longArg := strings.Repeat("a", maxArgBytes+1)
	manyArgs, _ := json.Marshal(append([]string{"/bin/true"}, make([]string, maxArgs)...))
	env := map[string]string{}
	for i := range maxEnv + 1 {
		env["K"+strconv.Itoa(i)] = "v"
	}
	manyEnv, _ := json.Marshal(map[string]any{"command": []string{"/bin/true"}, "env": env})
	for _, tc := range []struct {
		name, config string
		field        string // "" when valid
		want         guestConfig
	}{
		{"minimal", `{"command": ["/bin/sleep", "1"]}`, "", guestConfig{Command: []string{"/bin/sleep", "1"}}},
		{"full", `{"command": ["/bin/sh"], "env": {"A_1": "x", "_b": ""}, "cwd": "./a//b/"}`, "",
			guestConfig{Command: []string{"/bin/sh"}, Env: map[string]string{"A_1": "x", "_b": ""}, Cwd: "a/b"}},
		{"cwd dot", `{"command": ["/bin/sh"], "cwd": "."}`, "", guestConfig{Command: []string{"/bin/sh"}}},
		{"null env and cwd", `{"command": ["/bin/sh"], "env": null, "cwd": null}`, "", guestConfig{Command: []string{"/bin/sh"}}},
		{"unknown field", `{"command": ["/bin/sh"], "user": "root"}`, "config.user", guestConfig{}},
		{"empty", ``, "config", guestConfig{}},
		{"null", `null`, "config", guestConfig{}},
		{"array", `["/bin/sh"]`, "config", guestConfig{}},
		{"no command", `{}`, "config.command", guestConfig{}},
		{"empty command", `{"command": []}`, "config.command", guestConfig{}},
		{"command string", `{"command": "/bin/sh -c x"}`, "config.command", guestConfig{}},
		{"relative program", `{"command": ["sleep", "1"]}`, "config.command[0]", guestConfig{}},
		{"too many args", `{"command": ` + string(manyArgs) + `}`, "config.command", guestConfig{}},
		{"long arg", `{"command": ["/bin/echo", "` + longArg + `"]}`, "config.command[1]", guestConfig{}},
		{"NUL in arg", `{"command": ["/bin/echo", "a\u0000b"]}`, "config.command[1]", guestConfig{}},
		{"env not object", `{"command": ["/bin/sh"], "env": ["A=1"]}`, "config.env", guestConfig{}},
		{"env number", `{"command": ["/bin/sh"], "env": {"A": 1}}`, "config.env", guestConfig{}},
		{"env bad key", `{"command": ["/bin/sh"], "env": {"1A": "x"}}`, "config.env", guestConfig{}},
		{"env key with =", `{"command": ["/bin/sh"], "env": {"A=B": "x"}}`, "config.env", guestConfig{}},
		{"env NUL", `{"command": ["/bin/sh"], "env": {"A": "x\u0000"}}`, "config.env.A", guestConfig{}},
		{"too many env", string(manyEnv), "config.env", guestConfig{}},
		{"cwd absolute", `{"command": ["/bin/sh"], "cwd": "/etc"}`, "config.cwd", guestConfig{}},
		{"cwd dotdot", `{"command": ["/bin/sh"], "cwd": "../x"}`, "config.cwd", guestConfig{}},
		{"cwd inner dotdot", `{"command": ["/bin/sh"], "cwd": "a/../../b"}`, "config.cwd", guestConfig{}},
		{"cwd dotdot that cleans away", `{"command": ["/bin/sh"], "cwd": "a/../b"}`, "config.cwd", guestConfig{}},
		{"cwd number", `{"command": ["/bin/sh"], "cwd": 1}`, "config.cwd", guestConfig{}},
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

func TestGuestEnv(t *testing.T) {
	got := guestEnv(map[string]string{"B": "2", "PATH": "/opt/bin", "A": "1"}, "/home/g")
	want := []string{"A=1", "B=2", "HOME=/home/g", "PATH=/opt/bin"}
	if !slices.Equal(got, want) {
		t.Fatalf("guestEnv = %q, want %q", got, want)
	}
	got = guestEnv(nil, "/w")
	want = []string{"HOME=/w", "PATH=" + defaultPath}
	if !slices.Equal(got, want) {
		t.Fatalf("guestEnv = %q, want %q", got, want)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"0190b6a4-7c2f-7d5e-8a1b-2c3d4e5f6a7b":          true,
		"0190B6A4-7C2F-7D5E-8A1B-2C3D4E5F6A7B":          false,
		"urn:uuid:0190b6a4-7c2f-7d5e-8a1b-2c3d4e5f6a7b": false,
		"{0190b6a4-7c2f-7d5e-8a1b-2c3d4e5f6a7b}":        false,
		"../0190b6a4-7c2f-7d5e-8a1b-2c3d4e5f6a":         false,
		"":                                              false,
	} {
		if got := validID(id); got != want {
			t.Errorf("validID(%q) = %v, want %v", id, got, want)
		}
	}
}
