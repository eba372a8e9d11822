package process

import (
	"encoding/json"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/driver/guestcmd"
)

// Limits of a guest's driver config, shared with the container driver.
const (
	maxArgs     = guestcmd.MaxArgs
	maxArgBytes = guestcmd.MaxArgBytes
	maxEnv      = guestcmd.MaxEnv
)

// guestConfig is a process VM's driver config:
//
//	{"command": ["/bin/sleep", "3600"], "env": {"K": "V"}, "cwd": "sub/dir"}
type guestConfig struct {
	// Command is the program (an absolute path) and its arguments.
	Command []string `json:"command"`
	// Env is the guest's environment, on top of PATH and HOME defaults.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is the guest's working directory relative to its work directory,
	// cleaned; "" is the work directory itself.
	Cwd string `json:"cwd,omitempty"`
}

// parseConfig strictly decodes and checks a driver config. Errors are
// invalid_request errors naming the field ("config.command").
func parseConfig(raw json.RawMessage) (guestConfig, error) {
	var c guestConfig
	fields, err := guestcmd.Object("config", raw, "command", "env", "cwd")
	if err != nil {
		return c, err
	}

	cmd, ok := fields["command"]
	if !ok || guestcmd.IsNull(cmd) {
		return c, novacron.FieldError("config.command", "required: an array of 1 to %d strings, the first an absolute path", maxArgs)
	}
	if c.Command, err = guestcmd.Command("config.command", cmd); err != nil {
		return c, err
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
		if c.Cwd, ok = guestcmd.CleanRelative(s); !ok {
			return c, novacron.FieldError("config.cwd", "must be a relative path inside the guest's working directory, without '..', at most %d bytes", guestcmd.MaxPathBytes)
		}
	}
	return c, nil
}

// defaultPath is the PATH a guest gets unless its config sets one.
const defaultPath = guestcmd.DefaultPath

// guestEnv is the environment a guest is started with: PATH and HOME
// defaults overridden by the configured variables, sorted by name.
func guestEnv(env map[string]string, home string) []string {
	return guestcmd.Environ(env, home)
}
