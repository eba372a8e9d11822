package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron/internal/server"
	"github.com/novacron/novacron/internal/testenv"
)

const adminPassword = "admin-password-for-tests"

// stores runs fn once per store: SQLite, and PostgreSQL when available.
func stores(t *testing.T, fn func(t *testing.T, db func(t *testing.T) string)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, func(t *testing.T) string { return "" })
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, func(t *testing.T) string { return testenv.PostgresURL(t) })
	})
}

// syncBuffer is a log sink the test can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shortTempDir is a temporary directory with a short path: guests' unix
// sockets live below the data directory, and a socket path has at most 107
// bytes.
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type harness struct {
	t   *testing.T
	srv *server.Server
	url string
	log *syncBuffer
	hc  *http.Client
}

// start runs a real server on port 0 in a temporary data directory.
func start(t *testing.T, db string, mod func(*server.Config)) *harness {
	t.Helper()
	logs := &syncBuffer{}
	cfg := server.Config{
		DataDir:       shortTempDir(t),
		DB:            db,
		Listen:        "127.0.0.1:0",
		AdminPassword: adminPassword,
		Logger:        slog.New(slog.NewJSONHandler(logs, nil)),
		PruneInterval: time.Hour,
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	h := &harness{t: t, srv: srv, url: srv.URL(), log: logs, hc: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// on returns the harness reporting to t, for subtests.
func (h *harness) on(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r reply) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

func (r reply) items() []map[string]any {
	raw, _ := r.body["items"].([]any)
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i], _ = v.(map[string]any)
	}
	return out
}

// req sends a request. body is sent as JSON (a string is sent verbatim) and
// hdr holds extra header pairs.
func (h *harness) req(method, path, token string, body any, hdr ...string) reply {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	r, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.hc.Do(r)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &out.body)
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable && out.code() != "operation_failed" {
		h.t.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, raw)
	}
	if resp.Header.Get("X-Request-ID") == "" {
		h.t.Errorf("%s %s: no X-Request-ID", method, path)
	}
	return out
}

// want checks a reply's status (and error code when given).
func (h *harness) want(r reply, status int, code ...string) reply {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if len(code) > 0 && r.code() != code[0] {
		h.t.Fatalf("code %q, want %q: %s", r.code(), code[0], r.raw)
	}
	if status >= 400 {
		e, _ := r.body["error"].(map[string]any)
		if e == nil || e["message"] == "" || e["request_id"] != r.header.Get("X-Request-ID") {
			h.t.Fatalf("error body not in the API's shape: %s", r.raw)
		}
	}
	return r
}

func (h *harness) login(user, pw string) string {
	h.t.Helper()
	r := h.want(h.req("POST", "/auth/login", "", map[string]string{"username": user, "password": pw}), 200)
	tok := r.str("token")
	if tok == "" {
		h.t.Fatalf("login answered no token: %s", r.raw)
	}
	return tok
}

func (h *harness) admin() string { return h.login("admin", adminPassword) }

// mkTenant creates a tenant and returns its id.
func (h *harness) mkTenant(admin, name string) string {
	h.t.Helper()
	return h.want(h.req("POST", "/api/tenants", admin, map[string]any{"name": name}), 201).str("id")
}

// mkUser creates a user and returns its id and a session token.
func (h *harness) mkUser(admin, name, role, tenant string) (id, token string) {
	h.t.Helper()
	pw := "pw-of-" + name + "-123"
	r := h.want(h.req("POST", "/api/users", admin, map[string]any{"username": name, "email": name + "@example.com",
		"password": pw, "role": role, "tenant_id": tenant}), 201)
	return r.str("id"), h.login(name, pw)
}
