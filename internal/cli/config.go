package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Configuration: every flag of every command can be given three ways, and
// the first that is present wins:
//
//  1. on the command line: --auth-secret=…
//  2. in the environment: NOVACRON_AUTH_SECRET, then the flag's aliases
//     declared with aliasEnv (AUTH_SECRET), in the order declared
//  3. in the config file named by --config or NOVACRON_CONFIG, as a line
//     "auth-secret = …"
//
// The root command's PersistentPreRunE applies this once, before any
// command's own hooks and RunE, so commands only read their flags. After it,
// Flag.Changed reports whether any of the three sources set the flag, and
// required flags (MarkFlagRequired) may come from any of them.

// envAliasAnnotation is the flag annotation that holds the extra
// environment variables of a flag.
const envAliasAnnotation = "novacron.env-aliases"

// configFlag is the root's flag that names the config file.
const configFlag = "config"

// aliasEnv declares extra environment variables for the flag name of cmd
// (a local or persistent flag), read after NOVACRON_<NAME> and in the order
// given, e.g. aliasEnv(cmd, "db", "NOVACRON_DB_URL", "DB_URL"). It panics when
// cmd has no such flag: that is a programming error.
func aliasEnv(cmd *cobra.Command, name string, envNames ...string) {
	f := cmd.Flags().Lookup(name)
	if f == nil {
		f = cmd.PersistentFlags().Lookup(name)
	}
	if f == nil {
		panic(fmt.Sprintf("cli: aliasEnv: command %q has no flag --%s", cmd.Name(), name))
	}
	if f.Annotations == nil {
		f.Annotations = map[string][]string{}
	}
	f.Annotations[envAliasAnnotation] = append(f.Annotations[envAliasAnnotation], envNames...)
}

// envName is the environment twin of a flag: NOVACRON_ and the name in upper
// case with dashes as underscores.
func envName(flag string) string {
	return "NOVACRON_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// flagEnvNames lists the environment variables of f in the order they are
// read.
func flagEnvNames(f *pflag.Flag) []string {
	return append([]string{envName(f.Name)}, f.Annotations[envAliasAnnotation]...)
}

// settingAnnotation marks a flag as a setting: a flag that may also come
// from the environment or the config file. Server and admin flags and the
// client's connection flags are settings; the flags of client verbs
// (--name, --force, --cpus …) are not, so that NOVACRON_FORCE=true in an
// environment cannot turn every stop into a kill.
const settingAnnotation = "novacron.setting"

// markSettings marks every flag cmd has so far as a setting.
func markSettings(cmd *cobra.Command) *cobra.Command {
	cmd.Flags().VisitAll(markFlag)
	cmd.PersistentFlags().VisitAll(markFlag)
	return cmd
}

// markSetting marks the named flags of fs as settings.
func markSetting(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		markFlag(fs.Lookup(n))
	}
}

func markFlag(f *pflag.Flag) {
	if f.Annotations == nil {
		f.Annotations = map[string][]string{}
	}
	f.Annotations[settingAnnotation] = []string{"true"}
}

// configurable reports whether a flag may come from the environment or the
// config file: only settings, and never cobra's own flags
// (NOVACRON_VERSION=1.2 must not turn every command into --version).
func configurable(f *pflag.Flag) bool {
	if f.Name == "help" || f.Name == "version" || f.Name == configFlag {
		return false
	}
	return len(f.Annotations[settingAnnotation]) > 0
}

// configure applies the environment and the config file to the flags of
// cmd, the command about to run, then checks required flags. It runs once.
func (e *env) configure(cmd *cobra.Command) error {
	e.started = true
	if e.configured {
		return nil
	}
	e.configured = true

	entries, path, err := e.readConfigFile(cmd)
	if err != nil {
		return asUsage(err)
	}
	known := flagNames(cmd.Root())
	byName := map[string]configEntry{}
	for _, ent := range entries {
		if ent.key == configFlag {
			return usagef("%s:%d: %q cannot be set in a config file", path, ent.line, ent.key)
		}
		if !known[ent.key] {
			return usagef("%s:%d: unknown key %q", path, ent.line, ent.key)
		}
		byName[ent.key] = ent
	}

	fs := cmd.Flags()
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || !configurable(f) {
			return
		}
		for _, name := range flagEnvNames(f) {
			if v, ok := e.lookupEnv(name); ok && v != "" {
				if err := setFlag(fs, f.Name, v); err != nil {
					errs = append(errs, fmt.Errorf("$%s: invalid value for --%s: %w", name, f.Name, err))
				}
				return
			}
		}
		if ent, ok := byName[f.Name]; ok {
			if err := setFlag(fs, f.Name, ent.value); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: invalid value for %s: %w", path, ent.line, f.Name, err))
			}
		}
	})
	if len(errs) > 0 {
		return asUsage(errors.Join(errs...))
	}
	if err := cmd.ValidateRequiredFlags(); err != nil {
		return asUsage(err)
	}
	return asUsage(cmd.ValidateFlagGroups())
}

// setFlag sets a flag as if given on the command line (Changed is set) and
// returns why a value is refused without pflag's wrapping, which repeats the
// value (it may be a secret) and the flag's command-line spelling.
func setFlag(fs *pflag.FlagSet, name, value string) error {
	err := fs.Set(name, value)
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) {
		return ive.Unwrap()
	}
	return err
}

// readConfigFile reads the config file named by --config or NOVACRON_CONFIG,
// if any.
func (e *env) readConfigFile(cmd *cobra.Command) ([]configEntry, string, error) {
	path := ""
	if f := cmd.Flags().Lookup(configFlag); f != nil && f.Changed {
		path = f.Value.String()
	} else {
		path = e.getenv(envName(configFlag))
	}
	if path == "" {
		return nil, "", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, path, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	entries, err := parseConfig(path, f)
	return entries, path, err
}

// configEntry is one "key = value" line of a config file.
type configEntry struct {
	key, value string
	line       int
}

// parseConfig parses a config file: "name = value" lines where name is a
// flag's name, blank lines, and lines starting with #. A value may be
// double-quoted (Go syntax) to keep surrounding spaces; there are no comments
// after a value, since # is common in passwords and URLs. name is the file's
// name for error messages.
func parseConfig(name string, r io.Reader) ([]configEntry, error) {
	var entries []configEntry
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		key, value, ok := strings.Cut(s, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return nil, fmt.Errorf("%s:%d: want \"name = value\"", name, n)
		}
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			v, err := strconv.Unquote(value)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: bad quoted value for %q", name, n, key)
			}
			value = v
		}
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s:%d: %q is already set on line %d", name, n, key, prev)
		}
		seen[key] = n
		entries = append(entries, configEntry{key: key, value: value, line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return entries, nil
}

// flagNames returns the names of every setting of cmd and its descendants:
// a config file may hold the settings of several commands (server and
// client).
func flagNames(cmd *cobra.Command) map[string]bool {
	names := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) {
			if configurable(f) {
				names[f.Name] = true
			}
		}
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd)
	return names
}

// enumValue is a string flag that accepts one of a fixed set of values, so
// a wrong value is refused at parse time from any source.
type enumValue struct {
	value   string
	allowed []string
}

func newEnumValue(def string, allowed ...string) *enumValue {
	return &enumValue{value: def, allowed: allowed}
}

func (v *enumValue) String() string { return v.value }
func (v *enumValue) Type() string   { return "string" }

func (v *enumValue) Set(s string) error {
	if !slices.Contains(v.allowed, s) {
		return fmt.Errorf("must be one of %s", strings.Join(v.allowed, ", "))
	}
	v.value = s
	return nil
}
