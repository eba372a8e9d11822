package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
)

// consoleServer answers the console of vmID as the server does: a
// WebSocket that echoes each message, until the client sends "stop" (the
// guest's side ends: a normal close with a reason) or "shutdown" (1001).
// Any other VM's console is a conflict.
type consoleServer struct {
	mu       sync.Mutex
	header   http.Header
	messages []int // sizes of the messages received
}

func (s *consoleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.header = r.Header.Clone()
	s.mu.Unlock()
	w.Header().Set("X-Request-ID", "r9")
	if r.URL.Path != "/api/vm/vms/"+vmID+"/console" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(409)
		io.WriteString(w, `{"error":{"code":"conflict","message":"the console of vm web is in use","request_id":"r9"}}`)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"novacron"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 10)
	for {
		_, b, err := c.Read(r.Context())
		if err != nil {
			return
		}
		s.mu.Lock()
		s.messages = append(s.messages, len(b))
		s.mu.Unlock()
		switch string(b) {
		case "stop":
			c.Close(websocket.StatusNormalClosure, "the console of vm web ended")
			return
		case "shutdown":
			c.Close(websocket.StatusGoingAway, "the server is shutting down")
			return
		}
		if err := c.Write(r.Context(), websocket.MessageBinary, b); err != nil {
			return
		}
	}
}

func newConsoleClient(t *testing.T) (*api.Client, *consoleServer) {
	s := &consoleServer{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return api.New(srv.URL, api.WithToken("tok"), api.WithUserAgent("test-agent")), s
}

func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return string(b)
}

func TestConsole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, s := newConsoleClient(t)
	con, err := c.Console(ctx, vmID)
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close()
	s.mu.Lock()
	h := s.header
	s.mu.Unlock()
	if h.Get("Authorization") != "Bearer tok" || h.Get("User-Agent") != "test-agent" || h.Get("Sec-WebSocket-Protocol") != "novacron" {
		t.Errorf("handshake headers: %v", h)
	}
	if _, err := io.WriteString(con, "hello\r"); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, con, 6); got != "hello\r" {
		t.Errorf("echo %q", got)
	}
	// A large write goes as messages under the server's limit.
	big := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	if n, err := con.Write(big); err != nil || n != len(big) {
		t.Fatalf("write %d: %d %v", len(big), n, err)
	}
	if got := readN(t, con, len(big)); got != string(big) {
		t.Errorf("the echo of a large write differs")
	}
	s.mu.Lock()
	for _, m := range s.messages {
		if m > 64<<10 {
			t.Errorf("a message of %d bytes", m)
		}
	}
	s.mu.Unlock()
	// The guest's side ends: io.EOF, with the server's reason.
	io.WriteString(con, "stop")
	if n, err := con.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read after the end: %d %v", n, err)
	}
	if con.Reason() != "the console of vm web ended" {
		t.Errorf("reason %q", con.Reason())
	}
	if err := con.Close(); err != nil {
		t.Errorf("close after the server's close: %v", err)
	}

	// A server shutting down is an error.
	con, err = c.Console(ctx, vmID)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(con, "shutdown")
	_, err = con.Read(make([]byte, 10))
	var ce *api.ConsoleClosedError
	if !errors.As(err, &ce) || ce.Code != 1001 || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("read after a shutdown: %v", err)
	}
	con.Close()

	// Detaching: Close, then Read fails.
	con, err = c.Console(ctx, vmID)
	if err != nil {
		t.Fatal(err)
	}
	if err := con.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := con.Read(make([]byte, 1)); err == nil {
		t.Error("read after Close succeeded")
	}
}

func TestConsoleRefused(t *testing.T) {
	ctx := context.Background()
	c, _ := newConsoleClient(t)
	_, err := c.Console(ctx, "other")
	var e *api.Error
	if !errors.As(err, &e) || e.Code != novacron.EConflict || e.Status != 409 || e.RequestID != "r9" ||
		!strings.Contains(e.Message, "in use") {
		t.Errorf("err = %v", err)
	}
	if _, err := c.Console(ctx, ""); !api.IsCode(err, novacron.EInvalid) {
		t.Errorf("empty id: %v", err)
	}
	// A server that is not there is no API error.
	_, err = api.New("http://127.0.0.1:1").Console(ctx, vmID)
	if err == nil || api.ErrorCode(err) != "" {
		t.Errorf("no server: %v", err)
	}
}

func TestConsoleLogAndStats(t *testing.T) {
	ctx := context.Background()
	c, s := newCannedServer(t, map[string]canned{
		"GET /api/vm/vms/" + vmID + "/console/log": {status: 200, ctype: "text/plain; charset=utf-8", body: "login: \r\n"},
		"GET /api/vm/vms/" + vmID + "/stats": {status: 200, body: `{"cpu_seconds":1.5,"memory_bytes":1048576,` +
			`"network_rx_bytes":7,"sampled_at":"2024-05-06T07:08:09Z"}`},
		"GET /api/vm/vms/stopped/stats": {status: 409, body: `{"error":{"code":"invalid_state","message":"vm db is stopped"}}`},
	})
	b, err := c.ConsoleLog(ctx, vmID, 20)
	if err != nil || string(b) != "login: \r\n" {
		t.Fatalf("console log %q, err %v", b, err)
	}
	if r, _ := s.last(t); r.URL.RawQuery != "tail=20" || r.Header.Get("Accept") != "text/plain" {
		t.Errorf("query %q, Accept %q", r.URL.RawQuery, r.Header.Get("Accept"))
	}
	st, err := c.Stats(ctx, vmID)
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUSeconds != 1.5 || st.MemoryBytes != 1<<20 || st.NetworkRxBytes == nil || *st.NetworkRxBytes != 7 ||
		st.DiskReadBytes != nil || !st.SampledAt.Equal(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)) {
		t.Errorf("stats %+v", st)
	}
	if _, err := c.Stats(ctx, "stopped"); !api.IsCode(err, novacron.EInvalidState) {
		t.Errorf("stats of a stopped VM: %v", err)
	}
	if _, err := c.Stats(ctx, ""); !api.IsCode(err, novacron.EInvalid) {
		t.Errorf("empty id: %v", err)
	}
}
