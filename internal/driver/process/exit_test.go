package process

import (
	"syscall"
	"testing"
)

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		ws           syscall.WaitStatus
		code, signal int
		reason       string
	}{
		{0, 0, 0, "exited with code 0"},
		{3 << 8, 3, 0, "exited with code 3"},
		{255 << 8, 255, 0, "exited with code 255"},
		{syscall.WaitStatus(syscall.SIGKILL), 137, 9, "killed by signal 9"},
		{syscall.WaitStatus(syscall.SIGTERM), 143, 15, "killed by signal 15"},
		{syscall.WaitStatus(syscall.SIGSEGV) | 0x80, 139, 11, "killed by signal 11"}, // core dumped
	} {
		code, sig := exitStatus(tc.ws)
		if code != tc.code || sig != tc.signal {
			t.Errorf("exitStatus(%#x) = %d, %d; want %d, %d", uint32(tc.ws), code, sig, tc.code, tc.signal)
		}
		if r := exitReason(code, sig, false); r != tc.reason {
			t.Errorf("exitReason(%d, %d) = %q, want %q", code, sig, r, tc.reason)
		}
	}
	if r := exitReason(137, 9, true); r != "out of memory" {
		t.Errorf("OOM reason = %q", r)
	}
	if r := exitReason(1, 0, true); r != "out of memory" {
		t.Errorf("OOM of a child, guest exited 1: reason %q", r)
	}
}

func TestParseStatState(t *testing.T) {
	for _, tc := range []struct {
		stat string
		st   byte
		ok   bool
	}{
		{"123 (sleep) S 1 123 123 0", 'S', true},
		{"123 (a) Z) b) Z 1 123", 'Z', true},
		{"1 (init) R 0", 'R', true},
		{"garbage", 0, false},
		{"1 (x)", 0, false},
	} {
		st, ok := parseStatState([]byte(tc.stat))
		if st != tc.st || ok != tc.ok {
			t.Errorf("parseStatState(%q) = %q, %v; want %q, %v", tc.stat, st, ok, tc.st, tc.ok)
		}
	}
}
