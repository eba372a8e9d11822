package cli_test

// End-to-end tests of the client verbs: a real control plane (server.Open on
// port 0, on SQLite and on PostgreSQL) driven through cli.Run exactly as a
// user would, with the credentials file in a temporary XDG_CONFIG_HOME.
//
// cli.Run reads the environment through os.LookupEnv, so these tests set it
// with t.Setenv and do not run in parallel.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/api"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/cli"
	"github.com/novacron/novacron/internal/server"
	"github.com/novacron/novacron/internal/testenv"
)

// Every password operation is a bcrypt of cost 12, seconds under -race: the
// test makes as few as it can (per store: the first admin, a login, bob's
// creation, the reset and a login with the new password).
const (
	e2eAdminPassword = "e2e-admin-password-1"
	e2eNewPassword   = "e2e-reset-password-2"
	e2eBobPassword   = "bobs-password-123"
)

// isolateEnv blanks every variable the CLI reads as configuration, so a
// developer's NOVACRON_SERVER or NOVACRON_TOKEN cannot leak into the test
// (the CLI ignores empty values), and points XDG_CONFIG_HOME at a fresh
// directory, which it returns.
func isolateEnv(t *testing.T) string {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NOVACRON_") && !strings.HasPrefix(k, "NOVACRON_TEST_") {
			t.Setenv(k, "")
		}
	}
	for _, k := range []string{"DB_URL", "AUTH_SECRET"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	return dir
}

// result is the outcome of one cli.Run.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

// runCLI runs the command line args with stdin and returns its outcome.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := cli.Run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	if ctx.Err() != nil {
		t.Fatalf("novacron %s: timed out", strings.Join(args, " "))
	}
	return result{args: args, code: code, stdout: out.String(), stderr: errOut.String()}
}

// ok runs a command that must succeed and returns its stdout.
func ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := runCLI(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("novacron %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs a command that must fail with exit code 1 and an error line
// on stderr that mentions want.
func fails(t *testing.T, want string, args ...string) result {
	t.Helper()
	r := runCLI(t, "", args...)
	if r.code != 1 {
		t.Fatalf("novacron %s: exit %d, want 1\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, want) {
		t.Fatalf("novacron %s: stderr %q, want an error mentioning %q", strings.Join(args, " "), r.stderr, want)
	}
	if r.stdout != "" {
		t.Errorf("novacron %s: a failure printed %q on stdout", strings.Join(args, " "), r.stdout)
	}
	return r
}

// decode parses a command's JSON output into v.
func decode(t *testing.T, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("output is not the expected JSON: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value in the output:\n%s", out)
	}
}

// field returns the value of a "Key:  value" line of table output.
func field(t *testing.T, out, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `:[ ]+(.*?)[ ]*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q line in:\n%s", key, out)
	}
	return m[1]
}

// me asks the API directly who a bearer token is, and returns the status.
func me(t *testing.T, url, token string) int {
	t.Helper()
	return doJSON(t, "GET", url+"/auth/me", token, nil, nil)
}

// doJSON sends a request straight to the API, bypassing the CLI, and decodes
// a 2xx answer into out.
func doJSON(t *testing.T, method, url, token string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	return resp.StatusCode
}

// storedCredentials reads the file `novacron login` writes.
func storedCredentials(t *testing.T, xdg string) (server, token, username string) {
	t.Helper()
	p := filepath.Join(xdg, "novacron", "credentials.json")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("credentials file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Server, Token, Username string }
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("credentials file: %v: %s", err, b)
	}
	for _, pw := range []string{e2eAdminPassword, e2eNewPassword} {
		if strings.Contains(string(b), pw) {
			t.Error("the credentials file holds a password")
		}
	}
	return c.Server, c.Token, c.Username
}

func startServer(t *testing.T, db string) *server.Server {
	t.Helper()
	// Creating the first admin is a bcrypt: seconds under -race, far more
	// on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := server.Open(ctx, server.Config{
		DataDir:       t.TempDir(),
		DB:            db,
		Listen:        "127.0.0.1:0",
		AdminPassword: e2eAdminPassword,
		Logger:        slog.New(slog.DiscardHandler),
		PruneInterval: time.Hour,
	})
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

func TestCLIEndToEnd(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			db := ""
			if store == "postgres" {
				db = testenv.PostgresURL(t)
			}
			xdg := isolateEnv(t)
			srv := startServer(t, db)
			testCLIEndToEnd(t, srv, xdg)
		})
	}
}

func testCLIEndToEnd(t *testing.T, srv *server.Server, xdg string) {
	url := srv.URL()

	// Before any login: no credentials, and the CLI says how to get some.
	r := fails(t, "unauthorized", "whoami", "--server", url)
	if !strings.Contains(r.stderr, "novacron login") {
		t.Errorf("no login hint without credentials: %q", r.stderr)
	}

	// login reads the password from stdin and remembers the session.
	out := ok(t, e2eAdminPassword+"\n", "login", "--server", url, "--username", "admin", "--password-stdin")
	if !strings.HasPrefix(out, "Logged in to "+url+" as admin (role admin); the session expires at ") {
		t.Errorf("login printed %q", out)
	}
	credServer, adminSession, credUser := storedCredentials(t, xdg)
	if credServer != url || credUser != "admin" || adminSession == "" {
		t.Fatalf("stored credentials: server %q user %q token %q", credServer, credUser, adminSession)
	}

	// whoami uses the stored server and session, in both output formats.
	out = ok(t, "", "whoami")
	if field(t, out, "Server") != url || field(t, out, "Username") != "admin" || field(t, out, "Role") != "admin" {
		t.Errorf("whoami printed:\n%s", out)
	}
	var admin novacron.User
	decode(t, ok(t, "", "whoami", "--output", "json"), &admin)
	if admin.Username != "admin" || admin.Role != novacron.RoleAdmin || admin.ID == "" || admin.PasswordHash != "" {
		t.Fatalf("whoami -o json: %+v", admin)
	}

	// A tenant with a quota, then an operator in it.
	out = ok(t, "", "tenant", "create", "acme", "--vms", "5")
	acmeID := field(t, out, "ID")
	if field(t, out, "Name") != "acme" || field(t, out, "Quota VMs") != "5" || field(t, out, "Quota vCPUs") != "unlimited" {
		t.Errorf("tenant create printed:\n%s", out)
	}
	var acme novacron.Tenant
	decode(t, ok(t, "", "tenant", "show", "acme", "-o", "json"), &acme)
	if acme.ID != acmeID || acme.Quotas.VMs == nil || *acme.Quotas.VMs != 5 || acme.Quotas.VCPUs != nil {
		t.Fatalf("tenant show: %+v", acme)
	}

	out = ok(t, e2eBobPassword+"\n", "user", "create", "bob", "--email", "bob@example.com",
		"--role", "operator", "--tenant", "acme", "--password-stdin")
	bobID := field(t, out, "ID")
	if field(t, out, "Username") != "bob" || field(t, out, "Email") != "bob@example.com" ||
		field(t, out, "Role") != "operator" || field(t, out, "Tenant") != acmeID {
		t.Errorf("user create printed:\n%s", out)
	}
	if strings.Contains(out, e2eBobPassword) {
		t.Error("user create printed the password")
	}

	out = ok(t, "", "user", "list", "--output", "json")
	if strings.Contains(out, "password") || strings.Contains(out, "$2a$") {
		t.Fatalf("user list leaks a password (hash):\n%s", out)
	}
	var users api.List[novacron.User]
	decode(t, out, &users)
	names := map[string]novacron.User{}
	for _, u := range users.Items {
		names[u.Username] = u
	}
	if len(users.Items) != 2 || users.NextCursor != "" {
		t.Errorf("user list: %d users, cursor %q, want admin and bob", len(users.Items), users.NextCursor)
	}
	if b := names["bob"]; b.ID != bobID || b.Role != novacron.RoleOperator || b.TenantID != acmeID || b.Email != "bob@example.com" {
		t.Errorf("bob in the list: %+v", b)
	}
	if names["admin"].Role != novacron.RoleAdmin {
		t.Errorf("admin in the list: %+v", names["admin"])
	}
	// The filters of user list reach the server.
	decode(t, ok(t, "", "user", "list", "--role", "operator", "--tenant", "acme", "-o", "json"), &users)
	if len(users.Items) != 1 || users.Items[0].Username != "bob" {
		t.Errorf("user list --role operator --tenant acme: %+v", users.Items)
	}

	// Give bob a live API token straight in the store (a login would cost
	// a bcrypt, seconds under -race), for revoke-sessions to end below.
	bobToken, bobHash := auth.NewAPIToken()
	if err := srv.Store().CreateSession(context.Background(), &novacron.Session{UserID: bobID, Kind: novacron.SessionToken,
		Name: "bob-pat", TokenHash: bobHash, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var bobMe novacron.User
	if st := doJSON(t, "GET", url+"/auth/me", bobToken, nil, &bobMe); st != 200 || bobMe.ID != bobID {
		t.Fatalf("bob's token: status %d, user %+v", st, bobMe)
	}

	// A personal token, shown once, acts as its user until deleted.
	r = runCLI(t, "", "token", "create", "ci")
	if r.code != 0 {
		t.Fatalf("token create: exit %d: %s", r.code, r.stderr)
	}
	pat, patID := field(t, r.stdout, "Token"), field(t, r.stdout, "ID")
	if !strings.HasPrefix(pat, "nvc_") || field(t, r.stdout, "Name") != "ci" {
		t.Fatalf("token create printed:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "not shown again") {
		t.Errorf("token create did not warn: %q", r.stderr)
	}
	out = ok(t, "", "token", "list", "-o", "json")
	if strings.Contains(out, pat) {
		t.Fatal("token list shows the secret")
	}
	var toks api.List[api.Token]
	decode(t, out, &toks)
	if len(toks.Items) != 1 || toks.Items[0].ID != patID || toks.Items[0].Name != "ci" {
		t.Fatalf("token list: %+v", toks.Items)
	}

	// --token wins over the stored session: a garbage one is refused …
	fails(t, "unauthorized", "whoami", "--token", "nvc_not-a-token")
	// … and the new token authenticates as admin.
	var viaPAT novacron.User
	decode(t, ok(t, "", "whoami", "--token", pat, "--server", url, "-o", "json"), &viaPAT)
	if viaPAT.ID != admin.ID {
		t.Fatalf("whoami --token: %+v", viaPAT)
	}
	out = ok(t, "", "token", "delete", "ci")
	if strings.TrimSpace(out) != "Revoked token "+patID+"." {
		t.Errorf("token delete printed %q", out)
	}
	r = fails(t, "unauthorized", "whoami", "--token", pat)
	if strings.Contains(r.stderr, "novacron login") {
		t.Errorf("a refused --token gets the no-credentials hint: %q", r.stderr)
	}
	fails(t, "not_found", "token", "delete", "ci")

	// The audit log recorded the changes, with who made them.
	var audit api.List[novacron.AuditEntry]
	decode(t, ok(t, "", "audit", "list", "--output", "json", "--all"), &audit)
	found := map[string]novacron.AuditEntry{}
	for _, a := range audit.Items {
		if _, dup := found[a.Action]; !dup && a.Success {
			found[a.Action] = a
		}
	}
	for action, id := range map[string]string{"tenant.create": acmeID, "user.create": bobID, "token.create": "", "token.delete": patID} {
		a, okA := found[action]
		if !okA {
			t.Errorf("no successful %s in the audit log", action)
			continue
		}
		if a.Username != "admin" || a.UserID != admin.ID || (id != "" && a.ResourceID != id) {
			t.Errorf("audit %s: %+v", action, a)
		}
	}
	decode(t, ok(t, "", "audit", "list", "--action", "user.create", "--user", "admin", "-o", "json"), &audit)
	if len(audit.Items) != 1 || audit.Items[0].ResourceID != bobID {
		t.Errorf("audit list --action user.create --user admin: %+v", audit.Items)
	}

	// An admin ends every session of bob at once.
	out = ok(t, "", "user", "revoke-sessions", "bob")
	if strings.TrimSpace(out) != "Revoked every session of user bob ("+bobID+")." {
		t.Errorf("revoke-sessions printed %q", out)
	}
	if st := me(t, url, bobToken); st != 401 {
		t.Fatalf("bob's session after revoke-sessions: status %d, want 401", st)
	}

	// admin reset-password works on the database directly, while the server
	// runs, and ends the admin's sessions.
	where := []string{"--data-dir", srv.Config().DataDir}
	if db := srv.Config().DB; db != "" {
		where = []string{"--db", db}
	}
	r = runCLI(t, e2eNewPassword+"\n", append([]string{"admin", "reset-password", "admin", "--password-stdin"}, where...)...)
	if r.code != 0 {
		t.Fatalf("admin reset-password: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r.stdout != "" || !strings.HasPrefix(r.stderr, "Password of admin reset; ") {
		t.Errorf("admin reset-password printed stdout %q stderr %q", r.stdout, r.stderr)
	}
	if me(t, url, adminSession) != 401 {
		t.Fatal("the admin's session survived the password reset")
	}
	fails(t, "unauthorized", "whoami")

	// A new login with the new password; without --username the CLI uses
	// the username of the stored login for that server.
	out = ok(t, e2eNewPassword+"\n", "login", "--password-stdin")
	if !strings.HasPrefix(out, "Logged in to "+url+" as admin ") {
		t.Errorf("login printed %q", out)
	}
	_, relogin, _ := storedCredentials(t, xdg)
	if relogin == adminSession || me(t, url, relogin) != 200 {
		t.Fatal("the new login stored no new working session")
	}
	decode(t, ok(t, "", "audit", "list", "--action", "user.reset_password", "-o", "json"), &audit)
	if len(audit.Items) != 1 || audit.Items[0].ResourceID != admin.ID || audit.Items[0].Username != "novacron admin" {
		t.Errorf("audit of the reset: %+v", audit.Items)
	}

	// logout ends the stored session on the server and forgets it.
	out = ok(t, "", "logout")
	if strings.TrimSpace(out) != "Logged out of "+url+"." {
		t.Errorf("logout printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(xdg, "novacron", "credentials.json")); !os.IsNotExist(err) {
		t.Errorf("credentials file after logout: %v", err)
	}
	if me(t, url, relogin) != 401 {
		t.Fatal("the session survived logout")
	}
	r = fails(t, "unauthorized", "whoami", "--server", url)
	if !strings.Contains(r.stderr, "novacron login") {
		t.Errorf("no login hint after logout: %q", r.stderr)
	}
	out = ok(t, "", "logout", "--server", url)
	if strings.TrimSpace(out) != "Not logged in to "+url+"." {
		t.Errorf("second logout printed %q", out)
	}
}
