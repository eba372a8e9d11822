package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// qmpConn is a QEMU Machine Protocol connection: JSON objects, one a line,
// over a unix socket. It is synchronous: Execute writes a command and reads
// until its answer, keeping the asynchronous events it reads meanwhile.
// One connection serves one goroutine.
type qmpConn struct {
	conn   net.Conn
	r      *bufio.Reader
	nextID atomic.Uint64
	// Events holds the events read so far (at most maxEvents, the newest).
	Events []qmpEvent
}

// qmpEvent is an asynchronous QMP event ("SHUTDOWN", "STOP", …).
type qmpEvent struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// qmpError is an error QEMU answered a command with.
type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string { return e.Class + ": " + e.Desc }

// qmpMessage is any message QEMU sends.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP,omitempty"`
	Return json.RawMessage `json:"return,omitempty"`
	Error  *qmpError       `json:"error,omitempty"`
	ID     json.RawMessage `json:"id,omitempty"`
	qmpEvent
}

const (
	maxEvents  = 64
	maxQMPLine = 1 << 20
)

// dialQMP connects to the QMP socket at path, reads QEMU's greeting and
// negotiates capabilities. ctx bounds the handshake.
func dialQMP(ctx context.Context, path string) (*qmpConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: dial %s: %w", path, err)
	}
	q := &qmpConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	if err := q.handshake(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmpConn) handshake(ctx context.Context) error {
	q.deadline(ctx)
	m, err := q.read()
	if err != nil {
		return fmt.Errorf("qmp: greeting: %w", err)
	}
	if m.QMP == nil {
		return errors.New("qmp: no greeting")
	}
	return q.Execute(ctx, "qmp_capabilities", nil, nil)
}

// deadline applies ctx's deadline, or a default one, to the connection.
func (q *qmpConn) deadline(ctx context.Context) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	_ = q.conn.SetDeadline(dl)
}

func (q *qmpConn) read() (qmpMessage, error) {
	var m qmpMessage
	line, err := q.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A long line: gather it whole, up to a bound.
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(buf) < maxQMPLine {
			line, err = q.r.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("bad message %.200q: %w", line, err)
	}
	return m, nil
}

// Execute runs command with args (nil for none) and decodes its return
// value into result (nil to ignore it). A command QEMU refuses is a
// *qmpError.
func (q *qmpConn) Execute(ctx context.Context, command string, args, result any) error {
	q.deadline(ctx)
	id := q.nextID.Add(1)
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        uint64 `json:"id"`
	}{command, args, id}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("qmp: %s: %w", command, err)
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("qmp: %s: %w", command, err)
	}
	want := fmt.Sprint(id)
	for {
		m, err := q.read()
		if err != nil {
			return fmt.Errorf("qmp: %s: %w", command, err)
		}
		if m.Event != "" {
			q.Events = append(q.Events, m.qmpEvent)
			if len(q.Events) > maxEvents {
				q.Events = q.Events[len(q.Events)-maxEvents:]
			}
			continue
		}
		if string(m.ID) != want {
			continue // an answer to a command this connection did not send
		}
		if m.Error != nil {
			return fmt.Errorf("qmp: %s: %w", command, m.Error)
		}
		if result != nil && m.Return != nil {
			if err := json.Unmarshal(m.Return, result); err != nil {
				return fmt.Errorf("qmp: %s: %w", command, err)
			}
		}
		return nil
	}
}

// qmpStatus is query-status's answer.
type qmpStatus struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

// QueryStatus returns the VM's run state ("running", "paused",
// "shutdown", …).
func (q *qmpConn) QueryStatus(ctx context.Context) (qmpStatus, error) {
	var st qmpStatus
	err := q.Execute(ctx, "query-status", nil, &st)
	return st, err
}

// Close closes the connection.
func (q *qmpConn) Close() error { return q.conn.Close() }
