package container

import (
	"encoding/json"
	"slices"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver/guestcmd"
)

// guestConfig is a container VM's driver config, every field optional:
//
//	{"command": ["/bin/sh", "-c", "exec httpd -f"], "env": {"K": "V"}, "cwd": "/srv"}
//
// The rules for command and env are the process driver's (package guestcmd).
type guestConfig struct {
	// Command is the program (an absolute path inside the container) and
	// its arguments; nil when the VM relies on its image's default command.
	Command []string `json:"command,omitempty"`
	// Env is the guest's environment, on top of PATH and HOME defaults.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is the guest's working directory, an absolute path inside the
	// container, cleaned; "/" unless set.
	Cwd string `json:"cwd,omitempty"`
}

// parseConfig strictly decodes and checks a driver config. An empty or null
// config is the default one. Errors are invalid_request errors naming the
// field ("config.command[0]").
func parseConfig(raw json.RawMessage) (guestConfig, error) {
	c := guestConfig{Cwd: "/"}
	if len(raw) == 0 || guestcmd.IsNull(raw) {
		return c, nil
	}
	fields, err := guestcmd.Object("config", raw, "command", "env", "cwd")
	if err != nil {
		return c, err
	}
	if cmd, ok := fields["command"]; ok && !guestcmd.IsNull(cmd) {
		if c.Command, err = guestcmd.Command("config.command", cmd); err != nil {
			return c, err
		}
	}
	if env, ok := fields["env"]; ok && !guestcmd.IsNull(env) {
		if c.Env, err = guestcmd.Env("config.env", env); err != nil {
			return c, err
		}
	}
	if cwd, ok := fields["cwd"]; ok && !guestcmd.IsNull(cwd) {
		s, err := guestcmd.String("config.cwd", cwd)
		if err != nil {
			return c, err
		}
		if c.Cwd, ok = guestcmd.CleanAbsolute(s); !ok {
			return c, novacron.FieldError("config.cwd", "must be an absolute path inside the container, without '..', at most %d bytes", guestcmd.MaxPathBytes)
		}
	}
	return c, nil
}

// envList is the configured environment as sorted NAME=value strings,
// without defaults: buildSpec adds PATH and HOME when they are missing.
func (c guestConfig) envList() []string {
	out := make([]string, 0, len(c.Env))
	for k, v := range c.Env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
