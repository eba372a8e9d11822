package process

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/novacron/novacron/internal/driver"
)

// protocolVersion is the version of the shim's socket protocol. A shim
// outlives the agent that started it, so a newer agent may talk to an older
// shim: it reads the version from every answer.
const protocolVersion = 1

// request is one line a driver sends on a shim's socket; one request per
// connection. Ops: status, stop, pause, resume.
type request struct {
	Op        string `json:"op"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
	Force     bool   `json:"force,omitempty"`
}

// response is the shim's one-line answer. A refused request has OK false,
// a novacron error Code and a client-safe Error.
type response struct {
	OK        bool              `json:"ok"`
	Version   int               `json:"version"`
	Code      string            `json:"code,omitempty"`
	Error     string            `json:"error,omitempty"`
	State     driver.GuestState `json:"state,omitempty"`
	PID       int               `json:"pid,omitempty"`
	StartedAt time.Time         `json:"started_at,omitzero"`
	Exit      *exitRecord       `json:"exit,omitempty"`
}

// readyMsg is what a shim writes on its ready pipe (fd 3) once the guest
// runs (PID) or failed to start (Error, Field naming the config field at
// fault when User says the config is).
type readyMsg struct {
	PID       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Error     string    `json:"error,omitempty"`
	Field     string    `json:"field,omitempty"`
	User      bool      `json:"user,omitempty"`
}

// initParams is what a shim hands its init stage on fd 3.
type initParams struct {
	ShimPID    int      `json:"shim_pid"`
	ProcsFiles []string `json:"procs_files"`
	Work       string   `json:"work"`
	Cwd        string   `json:"cwd,omitempty"`
	UID        int      `json:"uid"`
	GID        int      `json:"gid"`
	Argv       []string `json:"argv"`
	Env        []string `json:"env"`
}

// initError is what the init stage writes on fd 4 when it cannot exec the
// guest. The shim sees EOF and no message once exec succeeded.
type initError struct {
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	User    bool   `json:"user,omitempty"`
}

// call sends req to the shim listening on sock and returns its answer. The
// connection ends with ctx.
func call(ctx context.Context, sock string, req request) (response, error) {
	var resp response
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return resp, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return resp, err
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		if ctx.Err() != nil {
			return resp, ctx.Err()
		}
		return resp, err
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return resp, fmt.Errorf("shim answer: %w", err)
	}
	return resp, nil
}
