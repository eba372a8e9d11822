package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// maxSecret bounds a password read from stdin.
const maxSecret = 64 << 10

// terminalFd returns the file descriptor of stdin when it is a terminal.
func (e *env) terminalFd() (int, bool) {
	f, ok := e.stdin.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// readPassword reads a password: all of stdin (without its final line end)
// with fromStdin, else from the terminal without echo, twice when confirm
// asks for it. Without a terminal or --password-stdin it is a usage error.
func (e *env) readPassword(fromStdin bool, prompt string, confirm bool) (string, error) {
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(e.stdin, maxSecret))
		if err != nil {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", usagef("--password-stdin: stdin is empty")
		}
		return pw, nil
	}
	fd, ok := e.terminalFd()
	if !ok {
		return "", usagef("no terminal to ask for the password: pass it on stdin with --password-stdin")
	}
	read := func(prompt string) (string, error) {
		fmt.Fprint(e.stderr, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	pw, err := read(prompt)
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	if confirm {
		again, err := read("Repeat " + strings.ToLower(prompt[:1]) + prompt[1:])
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the passwords differ")
		}
	}
	return pw, nil
}

// readLine asks for one line on the terminal, for a missing --username.
func (e *env) readLine(prompt string) (string, bool) {
	if _, ok := e.terminalFd(); !ok {
		return "", false
	}
	fmt.Fprint(e.stderr, prompt)
	s, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && s == "" {
		return "", false
	}
	return strings.TrimSpace(s), true
}
