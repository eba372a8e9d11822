package process

import (
	"bytes"
	"encoding/json"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/novacron/novacron"
)

// Limits of a guest's driver config.
const (
	maxArgs     = 256
	maxArgBytes = 4096
	maxEnv      = 128
	maxEnvValue = 32 << 10
	maxCwdBytes = 4096
)

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

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
	var fields map[string]json.RawMessage
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return c, novacron.FieldError("config", "must be a JSON object with a command")
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return c, novacron.FieldError("config", "must be a JSON object with a command")
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		switch k {
		case "command", "env", "cwd":
		default:
			return c, novacron.FieldError("config."+fieldName(k), "unknown field (known: command, env, cwd)")
		}
	}

	cmd, ok := fields["command"]
	if !ok || isNull(cmd) {
		return c, novacron.FieldError("config.command", "required: an array of 1 to %d strings, the first an absolute path", maxArgs)
	}
	if err := json.Unmarshal(cmd, &c.Command); err != nil {
		return c, novacron.FieldError("config.command", "must be an array of strings")
	}
	if err := checkCommand(c.Command); err != nil {
		return c, err
	}

	if env, ok := fields["env"]; ok && !isNull(env) {
		if err := json.Unmarshal(env, &c.Env); err != nil {
			return c, novacron.FieldError("config.env", "must be an object of string values")
		}
		if err := checkEnv(c.Env); err != nil {
			return c, err
		}
	}

	if cwd, ok := fields["cwd"]; ok && !isNull(cwd) {
		var s string
		if err := json.Unmarshal(cwd, &s); err != nil {
			return c, novacron.FieldError("config.cwd", "must be a string")
		}
		if c.Cwd, ok = cleanCwd(s); !ok {
			return c, novacron.FieldError("config.cwd", "must be a relative path inside the guest's working directory, without '..', at most %d bytes", maxCwdBytes)
		}
	}
	return c, nil
}

func checkCommand(cmd []string) error {
	if len(cmd) == 0 || len(cmd) > maxArgs {
		return novacron.FieldError("config.command", "must have 1 to %d elements", maxArgs)
	}
	for i, a := range cmd {
		if len(a) > maxArgBytes {
			return novacron.FieldError(argField(i), "must be at most %d bytes", maxArgBytes)
		}
		if strings.IndexByte(a, 0) >= 0 {
			return novacron.FieldError(argField(i), "must not contain NUL bytes")
		}
	}
	if !path.IsAbs(cmd[0]) {
		return novacron.FieldError("config.command[0]", "must be an absolute path")
	}
	return nil
}

func argField(i int) string { return "config.command[" + strconv.Itoa(i) + "]" }

func checkEnv(env map[string]string) error {
	if len(env) > maxEnv {
		return novacron.FieldError("config.env", "must have at most %d entries", maxEnv)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !envKeyRE.MatchString(k) || len(k) > 256 {
			return novacron.FieldError("config.env", "key %q must match [A-Za-z_][A-Za-z0-9_]* (at most 256 characters)", fieldName(k))
		}
		v := env[k]
		if len(v) > maxEnvValue {
			return novacron.FieldError("config.env."+k, "must be at most %d bytes", maxEnvValue)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return novacron.FieldError("config.env."+k, "must not contain NUL bytes")
		}
	}
	return nil
}

// cleanCwd returns the cleaned form of a relative working directory, "" for
// the work directory itself, and false when s is absolute, climbs out with
// "..", or is too long.
func cleanCwd(s string) (string, bool) {
	if len(s) > maxCwdBytes || strings.IndexByte(s, 0) >= 0 || path.IsAbs(s) {
		return "", false
	}
	for _, el := range strings.Split(s, "/") {
		if el == ".." {
			return "", false
		}
	}
	c := path.Clean(s)
	if c == "." {
		return "", true
	}
	return c, true
}

// fieldName shortens an unknown key for an error message.
func fieldName(k string) string {
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	return strings.ToValidUTF8(k, "?")
}

func isNull(r json.RawMessage) bool { return string(bytes.TrimSpace(r)) == "null" }

// defaultPath is the PATH a guest gets unless its config sets one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// guestEnv is the environment a guest is started with: PATH and HOME
// defaults overridden by the configured variables, sorted by name.
func guestEnv(env map[string]string, home string) []string {
	all := map[string]string{"PATH": defaultPath, "HOME": home}
	for k, v := range env {
		all[k] = v
	}
	out := make([]string, 0, len(all))
	for k, v := range all {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
