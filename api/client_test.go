package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
)

// fakeServer answers like the control plane for the few routes these tests
// call, and remembers the last request.
type fakeServer struct {
	t    *testing.T
	last *http.Request
	body []byte
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.last = r
	f.body, _ = io.ReadAll(r.Body)
	w.Header().Set("X-Request-ID", "req-header")
	w.Header().Set("Content-Type", "application/json")
	writeErr := func(status int, code, msg string, details map[string]any) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
			"code": code, "message": msg, "request_id": "req-body", "details": details}})
	}
	if r.URL.Path != "/auth/login" && r.URL.Path != "/health" && r.Header.Get("Authorization") != "Bearer tok" {
		writeErr(401, "unauthorized", "missing or invalid token", nil)
		return
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/auth/login":
		var req api.LoginRequest
		json.Unmarshal(f.body, &req)
		if req.Password != "secret" {
			writeErr(401, "unauthorized", "invalid username or password", nil)
			return
		}
		fmt.Fprintf(w, `{"token":"tok","expires_at":"2030-01-02T03:04:05Z","user":{"id":"u1","username":%q,"email":"a@example.com","role":"admin","tenant_id":"t1","created_at":"2024-01-01T00:00:00Z"}}`, req.Username)
	case r.Method == "GET" && r.URL.Path == "/api/users":
		// Three users, two per page; the cursor is the index of the next one.
		users := []string{"alice", "bob", "carol"}
		start := 0
		fmt.Sscan(r.URL.Query().Get("cursor"), &start)
		end := min(start+2, len(users))
		var items []novacron.User
		for i := start; i < end; i++ {
			items = append(items, novacron.User{ID: fmt.Sprint("u", i), Username: users[i], Role: novacron.RoleUser})
		}
		next := ""
		if end < len(users) {
			next = fmt.Sprint(end)
		}
		json.NewEncoder(w).Encode(api.List[novacron.User]{Items: items, NextCursor: next})
	case r.Method == "PUT" && r.URL.Path == "/api/users/u1":
		fmt.Fprint(w, `{"id":"u1","username":"alice","email":"new@example.com","role":"operator","tenant_id":"t1"}`)
	case r.Method == "DELETE" && r.URL.Path == "/api/users/u1/sessions":
		w.WriteHeader(http.StatusNoContent)
	case r.Method == "DELETE" && r.URL.Path == "/api/tenants/t1":
		writeErr(409, "conflict", "tenant t1 still owns 2 users", map[string]any{"users": 2})
	case r.Method == "GET" && r.URL.Path == "/api/audit":
		w.Header().Set("Retry-After", "7")
		writeErr(429, "rate_limited", "slow down", nil)
	case r.URL.Path == "/api/proxy":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html>bad gateway</html>")
	case r.URL.Path == "/health":
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"degraded","checks":{"database":"connection refused"}}`)
	default:
		writeErr(404, "not_found", "no route "+r.URL.Path, nil)
	}
}

func newClient(t *testing.T, opts ...api.Option) (*api.Client, *fakeServer) {
	t.Helper()
	f := &fakeServer{t: t}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return api.New(srv.URL+"/", opts...), f
}

func TestLoginAndToken(t *testing.T) {
	ctx := context.Background()
	c, f := newClient(t, api.WithUserAgent("test-agent/1"))
	resp, err := c.Login(ctx, "alice", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Token != "tok" || resp.User.Username != "alice" || resp.User.Role != novacron.RoleAdmin ||
		!resp.ExpiresAt.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("login answer = %+v", resp)
	}
	if got := f.last.Header.Get("User-Agent"); got != "test-agent/1" {
		t.Errorf("User-Agent = %q", got)
	}
	if got := f.last.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := f.last.Header.Get("Authorization"); got != "" {
		t.Errorf("login sent Authorization %q before having a token", got)
	}

	// Without the token the server refuses; WithToken returns an
	// authenticated copy and leaves c alone.
	if _, err := c.ListUsers(ctx, api.UserFilter{}); !api.IsCode(err, novacron.EUnauthorized) {
		t.Fatalf("unauthenticated list: err = %v", err)
	}
	authed := c.WithToken(resp.Token)
	if _, err := authed.ListUsers(ctx, api.UserFilter{}); err != nil {
		t.Fatal(err)
	}
	if got := f.last.Header.Get("Authorization"); got != "Bearer tok" {
		t.Errorf("Authorization = %q", got)
	}
}

func TestWrongPassword(t *testing.T) {
	c, _ := newClient(t)
	_, err := c.Login(context.Background(), "alice", "nope")
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %T %v, want *api.Error", err, err)
	}
	want := api.Error{Status: 401, Code: "unauthorized", Message: "invalid username or password", RequestID: "req-body"}
	if e.Status != want.Status || e.Code != want.Code || e.Message != want.Message || e.RequestID != want.RequestID {
		t.Errorf("err = %+v, want %+v", *e, want)
	}
	if got := err.Error(); got != "invalid username or password (unauthorized, request req-body)" {
		t.Errorf("Error() = %q", got)
	}
}

func TestErrorDecoding(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t, api.WithToken("tok"))
	tests := []struct {
		name       string
		call       func() error
		status     int
		code       string
		message    string
		requestID  string
		details    map[string]any
		retryAfter time.Duration
	}{
		{
			name:   "conflict with details",
			call:   func() error { return c.DeleteTenant(ctx, "t1") },
			status: 409, code: novacron.EConflict, message: "tenant t1 still owns 2 users", requestID: "req-body",
			details: map[string]any{"users": float64(2)},
		},
		{
			name:   "rate limited",
			call:   func() error { _, err := c.ListAudit(ctx, api.AuditFilter{Action: "login"}); return err },
			status: 429, code: novacron.ERateLimited, message: "slow down", requestID: "req-body", retryAfter: 7 * time.Second,
		},
		{
			name:   "not the API's body",
			call:   func() error { return c.Do(ctx, "GET", "/api/proxy", nil, nil, nil) },
			status: 502, code: novacron.EUnavailable, message: "Bad Gateway: <html>bad gateway</html>", requestID: "req-header",
		},
		{
			name:   "not found",
			call:   func() error { _, err := c.GetTenant(ctx, "a/b"); return err },
			status: 404, code: novacron.ENotFound, message: "no route /api/tenants/a/b", requestID: "req-body",
		},
		{
			name: "empty id refused locally",
			call: func() error { return c.DeleteUser(ctx, "") },
			code: novacron.EInvalid, message: "user id is empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var e *api.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %T %v, want *api.Error", err, err)
			}
			if e.Status != tt.status || e.Code != tt.code || e.Message != tt.message || e.RequestID != tt.requestID || e.RetryAfter != tt.retryAfter {
				t.Errorf("err = %+v", *e)
			}
			if fmt.Sprint(e.Details) != fmt.Sprint(tt.details) {
				t.Errorf("details = %v, want %v", e.Details, tt.details)
			}
			if !api.IsCode(fmt.Errorf("wrapped: %w", err), tt.code) {
				t.Errorf("IsCode(wrapped, %q) = false", tt.code)
			}
		})
	}
}

func TestIDsAreEscaped(t *testing.T) {
	c, f := newClient(t, api.WithToken("tok"))
	c.GetTenant(context.Background(), "a/b?c")
	if got := f.last.URL.EscapedPath(); got != "/api/tenants/a%2Fb%3Fc" {
		t.Errorf("path = %q", got)
	}
}

func TestListAllFollowsCursors(t *testing.T) {
	ctx := context.Background()
	c, f := newClient(t, api.WithToken("tok"))

	page, err := c.ListUsers(ctx, api.UserFilter{Limit: 2, Role: novacron.RoleUser, Username: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.NextCursor != "2" {
		t.Fatalf("first page = %+v", page)
	}
	if got := f.last.URL.Query().Encode(); got != "limit=2&role=user&username=x" {
		t.Errorf("query = %q", got)
	}

	var cursors []string
	all, err := api.ListAll(ctx, func(ctx context.Context, cursor string) (*api.List[novacron.User], error) {
		cursors = append(cursors, cursor)
		return c.ListUsers(ctx, api.UserFilter{Cursor: cursor})
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range all {
		names = append(names, u.Username)
	}
	if strings.Join(names, ",") != "alice,bob,carol" || fmt.Sprint(cursors) != "[ 2]" {
		t.Errorf("ListAll = %v after cursors %q", names, cursors)
	}
}

func TestListAllStopsOnRepeatedCursor(t *testing.T) {
	_, err := api.ListAll(context.Background(), func(context.Context, string) (*api.List[int], error) {
		return &api.List[int]{Items: []int{1}, NextCursor: "same"}, nil
	})
	if err == nil || !strings.Contains(err.Error(), "repeated cursor") {
		t.Errorf("err = %v", err)
	}
}

func TestUpdateSendsOnlySetFields(t *testing.T) {
	c, f := newClient(t, api.WithToken("tok"))
	email, role := "new@example.com", novacron.RoleOperator
	u, err := c.UpdateUser(context.Background(), "u1", api.UpdateUserRequest{Email: &email, Role: &role})
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != email || u.Role != role {
		t.Errorf("user = %+v", u)
	}
	if got := string(f.body); got != `{"email":"new@example.com","role":"operator"}` {
		t.Errorf("body = %s", got)
	}
	if f.last.Method != "PUT" {
		t.Errorf("method = %s", f.last.Method)
	}
}

func TestRevokeUserSessions(t *testing.T) {
	c, f := newClient(t, api.WithToken("tok"))
	if err := c.RevokeUserSessions(context.Background(), "u1"); err != nil {
		t.Fatal(err)
	}
	if f.last.Method != "DELETE" || f.last.URL.Path != "/api/users/u1/sessions" {
		t.Errorf("request = %s %s", f.last.Method, f.last.URL.Path)
	}
}

func TestTenantQuotasOnTheWire(t *testing.T) {
	vms := int64(10)
	b, err := json.Marshal(api.CreateTenantRequest{Name: "acme", Quotas: &novacron.Quotas{VMs: &vms}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"acme","quotas":{"vms":10,"vcpus":null,"memory_mb":null,"disk_gb":null,"images_gb":null}}`
	if string(b) != want {
		t.Errorf("body = %s, want %s", b, want)
	}
	b, _ = json.Marshal(api.CreateTenantRequest{Name: "acme"})
	if string(b) != `{"name":"acme"}` {
		t.Errorf("body without quotas = %s", b)
	}
}

func TestHealthDegraded(t *testing.T) {
	c, _ := newClient(t)
	h, err := c.Health(context.Background())
	if !api.IsCode(err, novacron.EUnavailable) {
		t.Fatalf("err = %v", err)
	}
	if h == nil || h.Status != "degraded" || h.Checks["database"] != "connection refused" {
		t.Errorf("health = %+v", h)
	}
}

func TestTransportErrorIsNotAnAPIError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	_, err := api.New(srv.URL).Me(context.Background())
	if err == nil || api.ErrorCode(err) != "" {
		t.Errorf("err = %v, code %q", err, api.ErrorCode(err))
	}
}
