// Package guestcmd decodes and checks the command, environment and working
// directory that a guest's driver config gives it. The process and container
// drivers share these rules, so that a config means the same in both: errors
// are invalid_request errors naming the field ("config.command[0]").
package guestcmd

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

// Limits of a guest's command, environment and working directory.
const (
	MaxArgs      = 256
	MaxArgBytes  = 4096
	MaxEnv       = 128
	MaxEnvKey    = 256
	MaxEnvValue  = 32 << 10
	MaxPathBytes = 4096
)

// DefaultPath is the PATH a guest gets unless its config sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Object decodes raw as a JSON object whose keys are all known, and returns
// its fields. field names the object in errors ("config").
func Object(field string, raw json.RawMessage, known ...string) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &fields) != nil {
		return nil, novacron.FieldError(field, "must be a JSON object (fields: %s)", strings.Join(known, ", "))
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return nil, novacron.FieldError(field+"."+FieldName(k), "unknown field (known: %s)", strings.Join(known, ", "))
		}
	}
	return fields, nil
}

// Command decodes and checks a command: the program, an absolute path, and
// its arguments.
func Command(field string, raw json.RawMessage) ([]string, error) {
	var cmd []string
	if err := json.Unmarshal(raw, &cmd); err != nil {
		return nil, novacron.FieldError(field, "must be an array of 1 to %d strings, the first an absolute path", MaxArgs)
	}
	if err := CheckCommand(field, cmd); err != nil {
		return nil, err
	}
	return cmd, nil
}

// CheckCommand checks a command: 1 to MaxArgs arguments of at most
// MaxArgBytes without NUL bytes, the first an absolute path. An argument's
// error names it (field+"[1]").
func CheckCommand(field string, cmd []string) error {
	if len(cmd) == 0 || len(cmd) > MaxArgs {
		return novacron.FieldError(field, "must have 1 to %d elements", MaxArgs)
	}
	for i, a := range cmd {
		if len(a) > MaxArgBytes {
			return novacron.FieldError(argField(field, i), "must be at most %d bytes", MaxArgBytes)
		}
		if strings.IndexByte(a, 0) >= 0 {
			return novacron.FieldError(argField(field, i), "must not contain NUL bytes")
		}
	}
	if !path.IsAbs(cmd[0]) {
		return novacron.FieldError(argField(field, 0), "must be an absolute path")
	}
	return nil
}

func argField(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// Env decodes and checks an environment: an object of string values.
func Env(field string, raw json.RawMessage) (map[string]string, error) {
	var env map[string]string
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, novacron.FieldError(field, "must be an object of string values")
	}
	if err := CheckEnv(field, env); err != nil {
		return nil, err
	}
	return env, nil
}

// CheckEnv checks an environment: at most MaxEnv variables, names that a
// shell accepts, values of at most MaxEnvValue bytes without NUL bytes. A
// value's error names it (field+".NAME").
func CheckEnv(field string, env map[string]string) error {
	if len(env) > MaxEnv {
		return novacron.FieldError(field, "must have at most %d entries", MaxEnv)
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !envKeyRE.MatchString(k) || len(k) > MaxEnvKey {
			return novacron.FieldError(field, "key %q must match [A-Za-z_][A-Za-z0-9_]* (at most %d characters)", FieldName(k), MaxEnvKey)
		}
		v := env[k]
		if len(v) > MaxEnvValue {
			return novacron.FieldError(field+"."+k, "must be at most %d bytes", MaxEnvValue)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return novacron.FieldError(field+"."+k, "must not contain NUL bytes")
		}
	}
	return nil
}

// Environ is the environment a guest is started with: PATH (DefaultPath) and
// HOME (home) defaults overridden by env, as sorted NAME=value strings.
func Environ(env map[string]string, home string) []string {
	all := map[string]string{"PATH": DefaultPath, "HOME": home}
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

// String decodes a JSON string.
func String(field string, raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", novacron.FieldError(field, "must be a string")
	}
	return s, nil
}

// CleanRelative returns the cleaned form of a relative directory, "" for
// "." itself, and false when s is absolute, has a ".." element (even one
// that cleans away), has a NUL byte or is longer than MaxPathBytes.
func CleanRelative(s string) (string, bool) {
	if path.IsAbs(s) || !plainPath(s) {
		return "", false
	}
	c := path.Clean(s)
	if c == "." {
		return "", true
	}
	return c, true
}

// CleanAbsolute returns the cleaned form of an absolute directory and false
// when s is relative, has a ".." element, has a NUL byte or is longer than
// MaxPathBytes.
func CleanAbsolute(s string) (string, bool) {
	if !path.IsAbs(s) || !plainPath(s) {
		return "", false
	}
	return path.Clean(s), true
}

// plainPath reports whether s is short, without NUL bytes and without "..".
func plainPath(s string) bool {
	if len(s) > MaxPathBytes || strings.IndexByte(s, 0) >= 0 {
		return false
	}
	return !slices.Contains(strings.Split(s, "/"), "..")
}

// FieldName shortens a key from a request for an error message.
func FieldName(k string) string {
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	return strings.ToValidUTF8(k, "?")
}

// IsNull reports whether a JSON value is null; a null field counts as absent.
func IsNull(r json.RawMessage) bool { return string(bytes.TrimSpace(r)) == "null" }
