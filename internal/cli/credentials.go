package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// credentials is what `novacron login` remembers, in
// $XDG_CONFIG_HOME/novacron/credentials.json (mode 0600).
type credentials struct {
	Server   string `json:"server"`
	Token    string `json:"token"`
	Username string `json:"username"`
}

// credentialsPath returns the credentials file's path. XDG_CONFIG_HOME is
// read through env so tests can point it at a temporary directory.
func (e *env) credentialsPath() (string, error) {
	dir := e.getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		if home := e.getenv("HOME"); home != "" && runtime.GOOS != "windows" && runtime.GOOS != "darwin" && runtime.GOOS != "plan9" {
			dir = filepath.Join(home, ".config")
		} else {
			d, err := os.UserConfigDir()
			if err != nil {
				return "", fmt.Errorf("credentials: %w", err)
			}
			dir = d
		}
	}
	return filepath.Join(dir, "novacron", "credentials.json"), nil
}

// loadCredentials returns the stored credentials, or nil when there are none.
func (e *env) loadCredentials() (*credentials, error) {
	path, err := e.credentialsPath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	var c credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("credentials: %s: %w", path, err)
	}
	return &c, nil
}

// saveCredentials writes c to the credentials file, readable by its owner
// only, replacing it atomically so a crash never leaves half a token.
func (e *env) saveCredentials(c *credentials) error {
	path, err := e.credentialsPath()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*.json") // created 0600
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}

// removeCredentials deletes the credentials file; a missing file is fine.
func (e *env) removeCredentials() error {
	path, err := e.credentialsPath()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}
