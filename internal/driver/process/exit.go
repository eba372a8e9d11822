package process

import (
	"fmt"
	"syscall"
	"time"
)

// exitRecord is exit.json: how a guest ended, written atomically by its shim.
type exitRecord struct {
	// ExitCode is the exit status, or 128+signal when a signal killed it.
	ExitCode int `json:"exit_code"`
	// Signal is the signal that killed the guest, 0 when it exited.
	Signal    int       `json:"signal,omitempty"`
	Reason    string    `json:"reason"`
	OOM       bool      `json:"oom,omitempty"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	ExitedAt  time.Time `json:"exited_at"`
}

// exitStatus turns a wait status into the exit code the driver contract
// reports (128+signal for a killed guest) and the killing signal.
func exitStatus(ws syscall.WaitStatus) (code, signal int) {
	switch {
	case ws.Exited():
		return ws.ExitStatus(), 0
	case ws.Signaled():
		return 128 + int(ws.Signal()), int(ws.Signal())
	}
	return -1, 0
}

// exitReason says in words why a guest ended. An OOM kill wins over the
// signal it was delivered as.
func exitReason(code, signal int, oom bool) string {
	switch {
	case oom:
		return "out of memory"
	case signal > 0:
		return fmt.Sprintf("killed by signal %d", signal)
	}
	return fmt.Sprintf("exited with code %d", code)
}
