package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
)

// fakeAPI is a small control plane: one login (alice/secret), a few users
// and tenants, answering errors the way the real server does.
type fakeAPI struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []string          // "METHOD /path?query"
	auth     map[string]string // path → Authorization header last sent
	bodies   map[string]string // "METHOD /path" → last body
	loggedIn bool
}

var created = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

var fakeUsers = []novacron.User{
	{ID: "u-admin", Username: "admin", Email: "admin@example.com", Role: novacron.RoleAdmin, TenantID: "t-default", CreatedAt: created},
	{ID: "u-alice", Username: "alice", Email: "alice@example.com", Role: novacron.RoleOperator, TenantID: "t-acme", CreatedAt: created},
	{ID: "u-bob", Username: "bob", Email: "bob@example.com", Role: novacron.RoleUser, TenantID: "t-acme", CreatedAt: created},
}

func int64p(n int64) *int64 { return &n }

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{auth: map[string]string{}, bodies: map[string]string{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	f.auth[r.URL.Path] = r.Header.Get("Authorization")
	f.bodies[r.Method+" "+r.URL.Path] = string(body)
	loggedIn := f.loggedIn
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-ID", "req-42")
	fail := func(status int, code, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
			"code": code, "message": msg, "request_id": "req-42"}})
	}
	if r.URL.Path == "/auth/login" {
		var req api.LoginRequest
		json.Unmarshal(body, &req)
		if req.Username != "alice" || req.Password != "secret" {
			fail(401, "unauthorized", "invalid username or password")
			return
		}
		f.mu.Lock()
		f.loggedIn = true
		f.mu.Unlock()
		json.NewEncoder(w).Encode(api.LoginResponse{Token: "tok-alice", ExpiresAt: created.Add(24 * time.Hour), User: fakeUsers[1]})
		return
	}
	if r.Header.Get("Authorization") != "Bearer tok-alice" || !loggedIn {
		fail(401, "unauthorized", "authentication required")
		return
	}
	switch path := r.URL.Path; {
	case r.Method == "POST" && path == "/auth/logout":
		f.mu.Lock()
		f.loggedIn = false
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == "GET" && path == "/auth/me":
		json.NewEncoder(w).Encode(fakeUsers[1])
	case r.Method == "GET" && path == "/api/users":
		// Pages of two; the cursor is the index of the next user.
		var users []novacron.User
		for _, u := range fakeUsers {
			if name := r.URL.Query().Get("username"); name == "" || u.Username == name {
				users = append(users, u)
			}
		}
		start := 0
		fmt.Sscan(r.URL.Query().Get("cursor"), &start)
		end := min(start+2, len(users))
		l := api.List[novacron.User]{Items: users[start:end]}
		if end < len(users) {
			l.NextCursor = fmt.Sprint(end)
		}
		json.NewEncoder(w).Encode(l)
	case r.Method == "GET" && strings.HasPrefix(path, "/api/users/"):
		for _, u := range fakeUsers {
			if u.ID == strings.TrimPrefix(path, "/api/users/") {
				json.NewEncoder(w).Encode(u)
				return
			}
		}
		fail(404, "not_found", "user not found")
	case r.Method == "POST" && path == "/api/users":
		fail(409, "conflict", `username "bob" is taken`)
	case r.Method == "DELETE" && path == "/api/users/u-bob/sessions":
		w.WriteHeader(http.StatusNoContent)
	case r.Method == "GET" && path == "/api/tenants":
		json.NewEncoder(w).Encode(api.List[novacron.Tenant]{Items: []novacron.Tenant{
			{ID: "t-default", Name: "default", CreatedAt: created},
			{ID: "t-acme", Name: "acme", Quotas: novacron.Quotas{VMs: int64p(10), VCPUs: int64p(32)}, CreatedAt: created},
		}})
	case r.Method == "PUT" && path == "/api/tenants/t-acme":
		var req api.UpdateTenantRequest
		json.Unmarshal(body, &req)
		t := novacron.Tenant{ID: "t-acme", Name: "acme", Quotas: *req.Quotas, CreatedAt: created}
		json.NewEncoder(w).Encode(t)
	default:
		fail(404, "not_found", "no route "+path)
	}
}

func (f *fakeAPI) seen(req string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.requests {
		if r == req {
			return true
		}
	}
	return false
}

// cli runs the command line in a fixed environment and returns its exit
// code and output.
type cli struct {
	t    *testing.T
	vars map[string]string
}

func newCLI(t *testing.T, vars map[string]string) *cli {
	return &cli{t: t, vars: mapsWithDefaults(vars, map[string]string{
		"XDG_CONFIG_HOME": t.TempDir(),
		"HOME":            t.TempDir(),
	})}
}

func (c *cli) run(stdin string, args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	e, out, errOut := testEnv(c.t, c.vars, stdin)
	code = run(context.Background(), e, args)
	return code, out.String(), errOut.String()
}

// mustRun runs a command that must succeed and returns its stdout.
func (c *cli) mustRun(stdin string, args ...string) string {
	c.t.Helper()
	code, stdout, stderr := c.run(stdin, args...)
	if code != 0 {
		c.t.Fatalf("novacron %s: exit %d\nstderr: %s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

func (c *cli) credentialsFile() string {
	return filepath.Join(c.vars["XDG_CONFIG_HOME"], "novacron", "credentials.json")
}

func TestLoginWhoamiLogout(t *testing.T) {
	f := newFakeAPI(t)
	c := newCLI(t, nil)

	out := c.mustRun("secret\n", "login", "--server", f.srv.URL+"/", "--username", "alice", "--password-stdin")
	if want := "Logged in to " + f.srv.URL + " as alice (role operator); the session expires at 2024-05-07T07:08:09Z.\n"; out != want {
		t.Errorf("login printed %q, want %q", out, want)
	}

	// The credentials file: 0600 in a 0700 directory, holding server,
	// token and username.
	path := c.credentialsFile()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials mode = %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("credentials directory mode = %v, want 0700", di.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	var creds credentials
	if err := json.Unmarshal(b, &creds); err != nil {
		t.Fatal(err)
	}
	if creds != (credentials{Server: f.srv.URL, Token: "tok-alice", Username: "alice"}) {
		t.Errorf("credentials = %+v", creds)
	}

	// Later commands use the stored server and token.
	out = c.mustRun("", "whoami")
	for _, want := range []string{"Username:  alice", "Role:      operator", "Server:    " + f.srv.URL} {
		if !strings.Contains(out, want) {
			t.Errorf("whoami output lacks %q:\n%s", want, out)
		}
	}
	if got := f.auth["/auth/me"]; got != "Bearer tok-alice" {
		t.Errorf("Authorization = %q", got)
	}

	// A second login reuses the stored username.
	c.mustRun("secret", "login", "--password-stdin")

	out = c.mustRun("", "logout")
	if out != "Logged out of "+f.srv.URL+".\n" || !f.seen("POST /auth/logout") {
		t.Errorf("logout printed %q; requests %v", out, f.requests)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("credentials file still there: %v", err)
	}

	// Logged out, the server is the default again and nothing is sent.
	code, _, stderr := c.run("", "whoami", "--server", f.srv.URL)
	if code != 1 || stderr != "error: authentication required (unauthorized, request req-42)\n"+
		"No credentials were sent: run 'novacron login' or pass --token.\n" {
		t.Errorf("whoami after logout: exit %d, stderr %q", code, stderr)
	}
}

func TestLoginWrongPassword(t *testing.T) {
	f := newFakeAPI(t)
	c := newCLI(t, map[string]string{"NOVACRON_SERVER": f.srv.URL})
	code, stdout, stderr := c.run("wrong\n", "login", "-u", "alice", "--password-stdin")
	if code != 1 || stdout != "" || stderr != "error: invalid username or password (unauthorized, request req-42)\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(c.credentialsFile()); !os.IsNotExist(err) {
		t.Errorf("credentials written after a failed login: %v", err)
	}
}

func TestLoginWithoutTerminal(t *testing.T) {
	f := newFakeAPI(t)
	c := newCLI(t, map[string]string{"NOVACRON_SERVER": f.srv.URL})
	code, _, stderr := c.run("secret\n", "login", "-u", "alice")
	if code != 2 || !strings.Contains(stderr, "--password-stdin") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestStoredTokenStaysWithItsServer(t *testing.T) {
	a, b := newFakeAPI(t), newFakeAPI(t)
	c := newCLI(t, nil)
	c.mustRun("secret", "login", "--server", a.srv.URL, "-u", "alice", "--password-stdin")
	c.run("", "whoami", "--server", b.srv.URL)
	if got := b.auth["/auth/me"]; got != "" {
		t.Errorf("the token of %s was sent to %s: %q", a.srv.URL, b.srv.URL, got)
	}
	// --token (here from the environment) overrides the stored one.
	c.vars["NOVACRON_TOKEN"] = "tok-other"
	c.run("", "whoami")
	if got := a.auth["/auth/me"]; got != "Bearer tok-other" {
		t.Errorf("Authorization = %q, want the NOVACRON_TOKEN", got)
	}
}

// loggedIn returns a CLI logged in to a fake server.
func loggedIn(t *testing.T) (*fakeAPI, *cli) {
	f := newFakeAPI(t)
	c := newCLI(t, nil)
	c.mustRun("secret", "login", "--server", f.srv.URL, "-u", "alice", "--password-stdin")
	return f, c
}

func TestUserListTable(t *testing.T) {
	_, c := loggedIn(t)
	code, stdout, stderr := c.run("", "user", "list")
	want := `ID       USERNAME  EMAIL              ROLE      TENANT     CREATED
u-admin  admin     admin@example.com  admin     t-default  2024-05-06T07:08:09Z
u-alice  alice     alice@example.com  operator  t-acme     2024-05-06T07:08:09Z
`
	if code != 0 || stdout != want {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s", code, stdout, want)
	}
	if stderr != "More items: add --cursor 2, or --all.\n" {
		t.Errorf("stderr = %q", stderr)
	}

	out := c.mustRun("", "user", "list", "--cursor", "2")
	if !strings.Contains(out, "u-bob") || strings.Contains(out, "u-alice") {
		t.Errorf("second page:\n%s", out)
	}
}

func TestUserListJSONAll(t *testing.T) {
	f, c := loggedIn(t)
	out := c.mustRun("", "user", "list", "--all", "-o", "json", "--limit", "2")
	var l api.List[novacron.User]
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if len(l.Items) != 3 || l.Items[2].Username != "bob" || l.NextCursor != "" {
		t.Errorf("list = %+v", l)
	}
	if !f.seen("GET /api/users?cursor=2&limit=2") {
		t.Errorf("the second page was not fetched: %v", f.requests)
	}
}

func TestUserShowByNameOrID(t *testing.T) {
	_, c := loggedIn(t)
	for _, arg := range []string{"bob", "u-bob"} {
		out := c.mustRun("", "user", "show", arg, "--output", "json")
		var u novacron.User
		if err := json.Unmarshal([]byte(out), &u); err != nil || u.ID != "u-bob" {
			t.Errorf("show %s: %v %+v", arg, err, u)
		}
	}
	code, _, stderr := c.run("", "user", "show", "nobody")
	if code != 1 || stderr != "error: no user named or with id \"nobody\" (not_found, request req-42)\n" {
		t.Errorf("show nobody: exit %d, stderr %q", code, stderr)
	}
}

func TestUserCreateConflict(t *testing.T) {
	f, c := loggedIn(t)
	code, stdout, stderr := c.run("pw\n", "user", "create", "bob", "--email", "b@example.com",
		"--role", "user", "--tenant", "acme", "--password-stdin")
	if code != 1 || stdout != "" || stderr != "error: username \"bob\" is taken (conflict, request req-42)\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	want := `{"username":"bob","email":"b@example.com","password":"pw","role":"user","tenant_id":"t-acme"}`
	if got := f.bodies["POST /api/users"]; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}

func TestUserRevokeSessions(t *testing.T) {
	f, c := loggedIn(t)
	out := c.mustRun("", "user", "revoke-sessions", "bob")
	if out != "Revoked every session of user bob (u-bob).\n" || !f.seen("DELETE /api/users/u-bob/sessions") {
		t.Errorf("printed %q; requests %v", out, f.requests)
	}
}

func TestTenantUpdateKeepsOtherQuotas(t *testing.T) {
	f, c := loggedIn(t)
	out := c.mustRun("", "tenant", "update", "acme", "--vms", "20", "--vcpus", "unlimited", "--disk-gb", "100")
	want := `{"quotas":{"vms":20,"vcpus":null,"memory_mb":null,"disk_gb":100,"images_gb":null}}`
	if got := f.bodies["PUT /api/tenants/t-acme"]; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if !strings.Contains(out, "Quota VMs:         20") || !strings.Contains(out, "Quota vCPUs:       unlimited") {
		t.Errorf("output:\n%s", out)
	}
	out = c.mustRun("", "tenant", "list")
	if !strings.Contains(out, "t-acme     acme     10         32") {
		t.Errorf("tenant list:\n%s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	f, c := loggedIn(t)
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"bogus"}, `error: unknown command "bogus" for "novacron"`},
		{[]string{"user", "bogus"}, `error: unknown command "bogus" for "novacron user"`},
		{[]string{"user", "show"}, "error: accepts 1 arg(s), received 0"},
		{[]string{"user", "list", "--nope"}, "error: unknown flag: --nope"},
		{[]string{"user", "list", "-o", "yaml"}, "must be one of table, json"},
		{[]string{"user", "list", "--all", "--cursor", "2"}, "none of the others can be"},
		{[]string{"user", "create", "x", "--role", "root"}, "must be one of admin, operator, user"},
		{[]string{"user", "update", "bob"}, "nothing to change"},
		{[]string{"tenant", "create", "x", "--vms", "-1"}, `want a number ≥ 0 or "unlimited"`},
		{[]string{"whoami", "--server", "ftp://x"}, `invalid server "ftp://x"`},
	} {
		code, stdout, stderr := c.run("", tc.args...)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "error: ") || !strings.Contains(stderr, tc.stderr) ||
			!strings.Contains(stderr, "--help' for usage.") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, stdout, stderr)
		}
	}
	if f.seen("GET /api/users?username=bob") {
		t.Error("update without changes called the server")
	}
}

func TestHelpSucceeds(t *testing.T) {
	c := newCLI(t, nil)
	for _, args := range [][]string{{}, {"user"}, {"tenant", "--help"}, {"--version"}} {
		code, stdout, _ := c.run("", args...)
		if code != 0 || stdout == "" {
			t.Errorf("%v: exit %d, stdout %q", args, code, stdout)
		}
	}
}

func TestConfigFileForClientCommands(t *testing.T) {
	_, c := loggedIn(t)
	conf := filepath.Join(t.TempDir(), "novacron.conf")
	os.WriteFile(conf, []byte("# client settings\noutput = json\n"), 0o600)
	out := c.mustRun("", "whoami", "--config", conf)
	if !strings.HasPrefix(out, "{") {
		t.Errorf("output = %q, want JSON from the config file", out)
	}
	// The command line beats the file.
	out = c.mustRun("", "whoami", "--config", conf, "-o", "table")
	if !strings.HasPrefix(out, "Server:") {
		t.Errorf("output = %q, want a table from the flag", out)
	}
}

func TestInterrupted(t *testing.T) {
	_, c := loggedIn(t)
	e, _, stderr := testEnv(t, c.vars, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code := run(ctx, e, []string{"whoami"}); code != exitInterrupted || stderr.String() != "error: interrupted\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
