package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/server"
)

func TestFirstAdminGeneratedPassword(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		var term bytes.Buffer
		h := start(t, db(t), func(c *server.Config) { c.AdminPassword = ""; c.Terminal = &term })
		p := filepath.Join(h.srv.Config().DataDir, "admin-password")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("no password file: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("password file mode %v, want 0600", fi.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		pw := strings.TrimSpace(string(b))
		if len(pw) < 20 {
			t.Fatalf("generated password %q too short", pw)
		}
		if !strings.Contains(term.String(), pw) {
			t.Error("the terminal was not shown the password")
		}
		if strings.Contains(h.log.String(), pw) {
			t.Error("the log carries the admin password")
		}
		h.login("admin", pw)
		h.want(h.req("POST", "/auth/login", "", map[string]string{"username": "admin", "password": "admin"}), 401, "unauthorized")
		h.want(h.req("POST", "/auth/login", "", map[string]string{"username": "admin", "password": ""}), 400, "invalid_request")
	})
}

func TestSessionsAndTokens(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), nil)
		admin := h.admin()
		me := h.want(h.req("GET", "/auth/me", admin, nil), 200)
		if me.str("username") != "admin" || me.str("role") != "admin" || me.body["password_hash"] != nil {
			t.Fatalf("me = %s", me.raw)
		}
		if bytes.Contains(me.raw, []byte("$2a$")) {
			t.Fatal("a password hash left the server")
		}

		// Wrong password and unknown user answer alike.
		a := h.want(h.req("POST", "/auth/login", "", map[string]string{"username": "admin", "password": "wrong-password"}), 401)
		b := h.want(h.req("POST", "/auth/login", "", map[string]string{"username": "nobody", "password": "wrong-password"}), 401)
		if a.body["error"].(map[string]any)["message"] != b.body["error"].(map[string]any)["message"] {
			t.Error("unknown user and wrong password answer differently")
		}

		// Personal tokens: shown once, act as their user, revocable at once.
		tok := h.want(h.req("POST", "/api/tokens", admin, map[string]any{"name": "ci", "expires_in": "24h"}), 201)
		secret := tok.str("token")
		if !strings.HasPrefix(secret, "nvc_") {
			t.Fatalf("token %q", secret)
		}
		h.want(h.req("GET", "/auth/me", secret, nil), 200)
		list := h.want(h.req("GET", "/api/tokens", admin, nil), 200)
		if len(list.items()) != 1 || list.items()[0]["token"] != nil || bytes.Contains(list.raw, []byte(secret)) {
			t.Fatalf("token list %s", list.raw)
		}
		h.want(h.req("POST", "/api/tokens", admin, map[string]any{"name": "x", "expires_in": "forever"}), 400, "invalid_request")
		h.want(h.req("POST", "/api/tokens", admin, map[string]any{"name": "x", "expires_in": "100000h"}), 400, "invalid_request")
		h.want(h.req("DELETE", "/api/tokens/"+tok.str("id"), admin, nil), 204)
		h.want(h.req("GET", "/auth/me", secret, nil), 401, "unauthorized")
		h.want(h.req("DELETE", "/api/tokens/"+tok.str("id"), admin, nil), 404)

		// Logout ends the session at once.
		s2 := h.admin()
		h.want(h.req("POST", "/auth/logout", s2, nil), 204)
		h.want(h.req("GET", "/auth/me", s2, nil), 401, "unauthorized")
		h.want(h.req("GET", "/auth/me", admin, nil), 200)

		// An admin revokes every session and token of a user at once.
		uid, utok := h.mkUser(admin, "alice", "user", "")
		upat := h.want(h.req("POST", "/api/tokens", utok, map[string]any{"name": "alice-pat"}), 201).str("token")
		h.want(h.req("GET", "/auth/me", upat, nil), 200)
		h.want(h.req("DELETE", "/api/users/"+uid+"/sessions", admin, nil), 204)
		h.want(h.req("GET", "/auth/me", utok, nil), 401)
		h.want(h.req("GET", "/auth/me", upat, nil), 401)

		// A password change revokes the old sessions too.
		utok = h.login("alice", "pw-of-alice-123")
		h.want(h.req("PUT", "/api/users/"+uid, admin, map[string]any{"password": "a-brand-new-password"}), 200)
		h.want(h.req("GET", "/auth/me", utok, nil), 401)
		h.login("alice", "a-brand-new-password")

		// Garbage and forged credentials.
		h.want(h.req("GET", "/auth/me", "not-a-jwt", nil), 401)
		h.want(h.req("GET", "/auth/me", "nvc_forged", nil), 401)
		h.want(h.req("GET", "/auth/me", "", nil, "Authorization", "Basic YWRtaW46eA=="), 401)
		h.want(h.req("GET", "/auth/me", "", nil), 401)

		// A deleted user's sessions die with it.
		h.want(h.req("DELETE", "/api/users/"+uid, admin, nil), 204)
		h.want(h.req("GET", "/api/users/"+uid, admin, nil), 404)
		h.want(h.req("DELETE", "/api/users/"+me.str("id"), admin, nil), 409, "conflict")
	})
}

func TestRegistration(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		body := map[string]any{"username": "bob", "email": "bob@example.com", "password": "bobs-password-1"}
		off := start(t, db(t), nil)
		off.want(off.req("POST", "/auth/register", "", body), 403, "forbidden")

		on := start(t, db(t), func(c *server.Config) { c.AllowRegistration = true })
		r := on.want(on.req("POST", "/auth/register", "", body), 201)
		u := r.body["user"].(map[string]any)
		if u["role"] != "user" || u["username"] != "bob" {
			t.Fatalf("registered %v", u)
		}
		on.want(on.req("POST", "/auth/register", "", body), 409, "conflict")
		on.want(on.req("POST", "/auth/register", "", map[string]any{"username": "b", "email": "x@y.z", "password": "long-enough-pw"}), 400)
		on.want(on.req("POST", "/auth/register", "", map[string]any{"username": "carol", "email": "not-an-email", "password": "long-enough-pw"}), 400)
		on.want(on.req("POST", "/auth/register", "", map[string]any{"username": "carol", "email": "c@example.com", "password": "short"}), 400)
		tok := on.login("bob", "bobs-password-1")
		ten := on.want(on.req("GET", "/api/tenants", tok, nil), 200).items()
		if len(ten) != 1 || ten[0]["name"] != "default" || ten[0]["id"] != u["tenant_id"] {
			t.Fatalf("bob's tenants: %v", ten)
		}
	})
}

func TestTenancyAndRoles(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), nil)
		admin := h.admin()
		t1 := h.mkTenant(admin, "acme")
		t2 := h.mkTenant(admin, "globex")
		_, op1 := h.mkUser(admin, "op1", "operator", t1)
		u1id, u1 := h.mkUser(admin, "user1", "user", t1)
		op2id, op2 := h.mkUser(admin, "op2", "operator", t2)

		// Tenants: members see their own; another tenant's is 404, not 403.
		for _, tc := range []struct {
			tok, path string
			status    int
		}{
			{u1, "/api/tenants/" + t1, 200},
			{u1, "/api/tenants/" + t2, 404},
			{op1, "/api/tenants/" + t2, 404},
			{admin, "/api/tenants/" + t2, 200},
			{op1, "/api/users", 403},
			{u1, "/api/users/" + u1id, 403},
			{admin, "/api/users/" + op2id, 200},
			{u1, "/api/audit", 403},
			{op1, "/api/audit", 200},
		} {
			h.want(h.req("GET", tc.path, tc.tok, nil), tc.status)
		}
		if ts := h.want(h.req("GET", "/api/tenants", op1, nil), 200).items(); len(ts) != 1 || ts[0]["id"] != t1 {
			t.Fatalf("op1 sees tenants %v", ts)
		}
		if ts := h.want(h.req("GET", "/api/tenants", admin, nil), 200).items(); len(ts) != 3 {
			t.Fatalf("admin sees %d tenants, want 3", len(ts))
		}
		// Mutations need admin.
		h.want(h.req("POST", "/api/tenants", op1, map[string]any{"name": "evil"}), 403)
		h.want(h.req("PUT", "/api/tenants/"+t1, op1, map[string]any{"quotas": map[string]any{"vms": 1000}}), 403)
		h.want(h.req("POST", "/api/users", op1, map[string]any{"username": "x1", "email": "x@example.com", "password": "long-enough-pw"}), 403)

		// Quotas round-trip; null means no limit.
		q := h.want(h.req("PUT", "/api/tenants/"+t1, admin, map[string]any{"quotas": map[string]any{"vms": 10, "vcpus": 32, "memory_mb": 65536, "disk_gb": 500, "images_gb": nil}}), 200)
		qs := q.body["quotas"].(map[string]any)
		if qs["vms"] != 10.0 || qs["memory_mb"] != 65536.0 || qs["images_gb"] != nil {
			t.Fatalf("quotas %v", qs)
		}
		if g := h.want(h.req("GET", "/api/tenants/"+t1, op1, nil), 200); g.body["quotas"].(map[string]any)["vcpus"] != 32.0 {
			t.Fatalf("stored quotas %s", g.raw)
		}
		h.want(h.req("PUT", "/api/tenants/"+t1, admin, map[string]any{"quotas": map[string]any{"vms": -1}}), 400, "invalid_request")
		h.want(h.req("POST", "/api/tenants", admin, map[string]any{"name": "acme"}), 409, "conflict")
		h.want(h.req("DELETE", "/api/tenants/"+t2, admin, nil), 409, "conflict")

		// Audit: operators see their own tenant only.
		h.req("POST", "/api/tokens", op2, map[string]any{"name": "t2-token"})
		h.req("POST", "/api/tokens", u1, map[string]any{"name": "t1-token"})
		for _, e := range h.want(h.req("GET", "/api/audit?limit=500", op1, nil), 200).items() {
			if e["tenant_id"] != t1 {
				t.Fatalf("op1 sees an audit entry of tenant %v: %v", e["tenant_id"], e)
			}
		}
		all := h.want(h.req("GET", "/api/audit?action=token.create&limit=500", admin, nil), 200).items()
		if len(all) != 2 {
			t.Fatalf("admin sees %d token.create entries, want 2", len(all))
		}
		// Moving a user moves what it sees.
		h.want(h.req("PUT", "/api/users/"+op2id, admin, map[string]any{"tenant_id": t1}), 200)
		h.want(h.req("GET", "/api/tenants/"+t1, op2, nil), 200)
		h.want(h.req("GET", "/api/tenants/"+t2, op2, nil), 404)
		h.want(h.req("DELETE", "/api/tenants/"+t2, admin, nil), 204)
	})
}

func TestBadInputNeverFiveHundred(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), nil)
		admin := h.admin()
		t1 := h.mkTenant(admin, "acme")
		huge := `{"name":"` + strings.Repeat("a", 2<<20) + `"}`
		for _, tc := range []struct {
			name, method, path, body string
			status                   int
			code                     string
		}{
			{"malformed json", "POST", "/api/tenants", `{"name":`, 400, "invalid_request"},
			{"not json", "POST", "/api/tenants", `name=x`, 400, "invalid_request"},
			{"unknown field", "POST", "/api/tenants", `{"name":"x","color":"red"}`, 400, "invalid_request"},
			{"unknown nested field", "POST", "/api/tenants", `{"name":"x","quotas":{"gpus":1}}`, 400, "invalid_request"},
			{"wrong type", "POST", "/api/tenants", `{"name":42}`, 400, "invalid_request"},
			{"wrong nested type", "PUT", "/api/tenants/" + t1, `{"quotas":{"vms":"ten"}}`, 400, "invalid_request"},
			{"array body", "POST", "/api/tenants", `[1,2]`, 400, "invalid_request"},
			{"two objects", "POST", "/api/tenants", `{"name":"a"}{"name":"b"}`, 400, "invalid_request"},
			{"empty body", "POST", "/api/tenants", ``, 400, "invalid_request"},
			{"bad name", "POST", "/api/tenants", `{"name":"../etc"}`, 400, "invalid_request"},
			{"out of range quota", "POST", "/api/tenants", `{"name":"q","quotas":{"vcpus":1e30}}`, 400, "invalid_request"},
			{"huge body", "POST", "/api/tenants", huge, 413, "too_large"},
			{"bad role", "POST", "/api/users", `{"username":"zed","email":"z@example.com","password":"long-enough-pw","role":"root"}`, 400, "invalid_request"},
			{"unknown tenant", "POST", "/api/users", `{"username":"zed","email":"z@example.com","password":"long-enough-pw","tenant_id":"0190a0a0-0000-7000-8000-000000000000"}`, 400, "invalid_request"},
			{"malformed tenant id in body", "POST", "/api/users", `{"username":"zed","email":"z@example.com","password":"long-enough-pw","tenant_id":"'; drop table users; --"}`, 400, "invalid_request"},
			{"malformed id", "GET", "/api/users/not-a-uuid", "", 404, "not_found"},
			{"injection id", "GET", "/api/tenants/1%27%20OR%201=1", "", 404, "not_found"},
			{"absent id", "GET", "/api/users/0190a0a0-0000-7000-8000-000000000000", "", 404, "not_found"},
			{"malformed id delete", "DELETE", "/api/tenants/zzz", "", 404, "not_found"},
			{"malformed id put", "PUT", "/api/users/123", `{"email":"a@b.co"}`, 404, "not_found"},
			{"bad limit", "GET", "/api/users?limit=0", "", 400, "invalid_request"},
			{"big limit", "GET", "/api/users?limit=100000", "", 400, "invalid_request"},
			{"bad cursor", "GET", "/api/users?cursor=bm90LWFuLWlk%21%21", "", 400, "invalid_request"},
			{"bad time", "GET", "/api/audit?from=yesterday", "", 400, "invalid_request"},
			{"unknown route", "GET", "/api/nothing", "", 404, "not_found"},
			{"wrong method", "PATCH", "/api/users", "", 405, "invalid_request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := h.on(t)
				var body any
				if tc.body != "" {
					body = tc.body
				}
				r := h.want(h.req(tc.method, tc.path, admin, body), tc.status, tc.code)
				for _, leak := range []string{"sql", "SQL", "goroutine", "/work/", ".go:", "pq:", "SQLSTATE"} {
					if bytes.Contains(r.raw, []byte(leak)) {
						t.Errorf("error body leaks %q: %s", leak, r.raw)
					}
				}
			})
		}
		// Content-Type is required for JSON bodies.
		r := h.req("POST", "/api/tenants", admin, nil)
		h.want(r, 400)
		req, _ := http.NewRequest("POST", h.url+"/api/tenants", strings.NewReader(`{"name":"ct"}`))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("text/plain body: status %d", resp.StatusCode)
		}
	})
}

func TestLoginStormIsSlowedNotFailed(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), nil)
		var mu sync.Mutex
		counts := map[int]int{}
		var wg sync.WaitGroup
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				user := "admin"
				if i%2 == 0 {
					user = fmt.Sprintf("ghost%d", i%7)
				}
				r := h.req("POST", "/auth/login", "", map[string]string{"username": user, "password": "guess-number-" + fmt.Sprint(i)})
				mu.Lock()
				counts[r.status]++
				mu.Unlock()
				if r.status == 429 && r.header.Get("Retry-After") == "" {
					t.Errorf("429 without Retry-After")
				}
			}(i)
		}
		wg.Wait()
		for s := range counts {
			if s != 401 && s != 429 {
				t.Errorf("storm answered %d (%d times)", s, counts[s])
			}
		}
		if counts[429] == 0 {
			t.Errorf("a storm of 200 bad logins was never answered 429: %v", counts)
		}
		// Guessing goes on until the back-off answers at once; then even the
		// right password is held back. (How many guesses of the storm
		// reached a password check depends on the machine's speed.)
		held := false
		for i := 0; i < 15 && !held; i++ {
			r := h.req("POST", "/auth/login", "", map[string]string{"username": "admin", "password": "one-more-guess"})
			if r.status != 401 && r.status != 429 {
				t.Fatalf("guess answered %d", r.status)
			}
			held = r.status == 429
		}
		if !held {
			t.Fatal("15 more wrong passwords were never held back")
		}
		h.want(h.req("POST", "/auth/login", "", map[string]string{"username": "admin", "password": adminPassword}), 429, "rate_limited")
		// Every attempt is in the audit log with its username.
		entries, _, err := h.srv.Store().ListAudit(t.Context(), novacron.AllTenants, novacron.AuditFilter{Action: "auth.login", Page: novacron.Page{Limit: 500}})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) < 200 {
			t.Errorf("%d login attempts audited, want at least 200", len(entries))
		}
		for _, e := range entries {
			if e.Success || e.Username == "" || e.IP != "127.0.0.1" {
				t.Fatalf("audit entry of a failed login: %+v", e)
			}
		}
	})
}

func TestRateLimitPerIPAndUser(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), func(c *server.Config) { c.RateLimitIP = 5 })
		limited := 0
		for i := 0; i < 40; i++ {
			r := h.req("GET", "/api/info", "", nil)
			if r.status == 429 {
				limited++
				h.want(r, 429, "rate_limited")
				if r.header.Get("Retry-After") == "" {
					t.Fatal("429 without Retry-After")
				}
			}
		}
		if limited == 0 {
			t.Fatal("40 quick requests at 5/s were never limited")
		}

		u := start(t, db(t), func(c *server.Config) { c.RateLimitUser = 3 })
		admin := u.admin()
		limited = 0
		for i := 0; i < 30; i++ {
			if u.req("GET", "/auth/me", admin, nil).status == 429 {
				limited++
			}
		}
		if limited == 0 {
			t.Fatal("per-user limit never applied")
		}
		// Another user is not limited by the first.
		u.want(u.req("GET", "/api/info", "", nil), 200)
	})
}

func TestAuditRecordsEveryMutation(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), func(c *server.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		})
		admin := h.admin()
		_, u := h.mkUser(admin, "mallory", "user", "")
		h.req("POST", "/api/tenants", u, map[string]any{"name": "denied"})                            // denied
		h.req("POST", "/api/tenants", admin, map[string]any{"name": "Bad Name"})                      // failed
		h.req("POST", "/api/tenants", admin, map[string]any{"name": "good"}, "User-Agent", "probe/1") // allowed
		h.req("POST", "/auth/login", "", map[string]string{"username": "mallory", "password": "nope-nope-nope"}, "X-Forwarded-For", "203.0.113.7")

		entries := h.want(h.req("GET", "/api/audit?resource=tenant&limit=500", admin, nil), 200).items()
		var denied, failed, ok bool
		for _, e := range entries {
			switch {
			case e["username"] == "mallory" && e["success"] == false && strings.HasPrefix(e["error"].(string), "forbidden"):
				denied = true
			case e["username"] == "admin" && e["success"] == false && strings.HasPrefix(e["error"].(string), "invalid_request"):
				failed = true
			case e["username"] == "admin" && e["success"] == true && e["user_agent"] == "probe/1" && e["resource_id"] != "" && e["action"] == "tenant.create":
				ok = true
			}
		}
		if !denied || !failed || !ok {
			t.Fatalf("audit denied=%v failed=%v allowed=%v: %v", denied, failed, ok, entries)
		}
		logins := h.want(h.req("GET", "/api/audit?action=auth.login", admin, nil), 200).items()
		var sawFailed bool
		for _, e := range logins {
			if e["username"] == "mallory" && e["success"] == false {
				sawFailed = true
				if e["ip"] != "203.0.113.7" {
					t.Errorf("login from behind a trusted proxy recorded IP %v", e["ip"])
				}
			}
		}
		if !sawFailed || len(logins) < 3 {
			t.Fatalf("login attempts in audit: %v", logins)
		}
		// Without trusted proxies, X-Forwarded-For is ignored.
		plain := start(t, db(t), nil)
		plain.req("POST", "/auth/login", "", map[string]string{"username": "admin", "password": "wrong-password"}, "X-Forwarded-For", "203.0.113.7")
		pa := plain.admin()
		for _, e := range plain.want(plain.req("GET", "/api/audit?action=auth.login", pa, nil), 200).items() {
			if e["ip"] != "127.0.0.1" {
				t.Errorf("untrusted X-Forwarded-For recorded as IP %v", e["ip"])
			}
		}
		// Reads are not audited.
		h.req("GET", "/api/tenants", admin, nil)
		if got := h.want(h.req("GET", "/api/audit?action=tenant.list", admin, nil), 200).items(); len(got) != 0 {
			t.Errorf("reads audited: %v", got)
		}
		// Time filters.
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		if got := h.want(h.req("GET", "/api/audit?from="+future, admin, nil), 200).items(); len(got) != 0 {
			t.Errorf("from=future gives %d entries", len(got))
		}
		if got := h.want(h.req("GET", "/api/audit?from=-1h", admin, nil), 200).items(); len(got) == 0 {
			t.Error("from=-1h gives nothing")
		}
	})
}

func TestHTTPHygiene(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		h := start(t, db(t), func(c *server.Config) { c.CORSOrigins = []string{"https://ui.example.com"} })
		r := h.want(h.req("GET", "/health", "", nil), 200)
		if r.str("status") != "ok" {
			t.Fatalf("health %s", r.raw)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
			if r.header.Get(k) != v {
				t.Errorf("%s = %q, want %q", k, r.header.Get(k), v)
			}
		}
		r = h.req("GET", "/health", "", nil, "X-Request-ID", "my-trace-1")
		if r.header.Get("X-Request-ID") != "my-trace-1" {
			t.Error("client request id not kept")
		}
		r = h.req("GET", "/health", "", nil, "X-Request-ID", "bad id\u00e9")
		if r.header.Get("X-Request-ID") == "bad id\u00e9" {
			t.Error("malformed request id echoed")
		}
		info := h.want(h.req("GET", "/api/info", "", nil), 200)
		if info.str("name") != "novacron" || info.str("api_version") != "1" {
			t.Fatalf("info %s", info.raw)
		}
		doc := h.want(h.req("GET", "/api/openapi.json", "", nil), 200)
		if !strings.HasPrefix(doc.str("openapi"), "3.") {
			t.Fatalf("openapi.json: %.200s", doc.raw)
		}

		// CORS: the allowed origin gets its headers, another gets none.
		pre := h.req("OPTIONS", "/api/tenants", "", nil, "Origin", "https://ui.example.com", "Access-Control-Request-Method", "POST")
		if pre.status != 204 || pre.header.Get("Access-Control-Allow-Origin") != "https://ui.example.com" {
			t.Fatalf("preflight: %d %v", pre.status, pre.header)
		}
		bad := h.req("OPTIONS", "/api/tenants", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
		if bad.status != 403 || bad.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight from another origin: %d %v", bad.status, bad.header)
		}

		// /metrics needs an admin.
		h.want(h.req("GET", "/metrics", "", nil), 401)
		admin := h.admin()
		_, u := h.mkUser(admin, "plain", "user", "")
		h.want(h.req("GET", "/metrics", u, nil), 403)
		m := h.req("GET", "/metrics", admin, nil)
		if m.status != 200 || !bytes.Contains(m.raw, []byte("novacron_http_requests_total")) {
			t.Fatalf("metrics: %d %.300s", m.status, m.raw)
		}

		// The database going away is a 503 on /health, never a hang or a 500.
		h.srv.Store().Close()
		d := h.req("GET", "/health", "", nil)
		if d.status != 503 || d.str("status") != "degraded" {
			t.Fatalf("health without a database: %d %s", d.status, d.raw)
		}
	})
}

func TestMetricsToken(t *testing.T) {
	h := start(t, "", func(c *server.Config) { c.MetricsToken = "scrape-secret-0123456789" })
	h.want(h.req("GET", "/metrics", "wrong", nil), 401)
	if r := h.req("GET", "/metrics", "scrape-secret-0123456789", nil); r.status != 200 {
		t.Fatalf("metrics with the metrics token: %d", r.status)
	}
	p := start(t, "", func(c *server.Config) { c.MetricsPublic = true })
	if r := p.req("GET", "/metrics", "", nil); r.status != 200 {
		t.Fatalf("public metrics: %d", r.status)
	}
}

func TestAuthSecretMustMatchDatabase(t *testing.T) {
	stores(t, func(t *testing.T, db func(*testing.T) string) {
		url := db(t)
		if url == "" {
			url = "sqlite:" + filepath.Join(t.TempDir(), "shared.db")
		}
		a := start(t, url, func(c *server.Config) { c.AuthSecret = strings.Repeat("a", 40) })
		tok := a.admin()
		// A second replica with the same secret accepts the first one's token.
		b := start(t, url, func(c *server.Config) { c.AuthSecret = strings.Repeat("a", 40) })
		b.want(b.req("GET", "/auth/me", tok, nil), 200)
		_, err := server.Open(t.Context(), server.Config{DataDir: t.TempDir(), DB: url, Listen: "127.0.0.1:0",
			AuthSecret: strings.Repeat("b", 40)})
		if err == nil || !strings.Contains(err.Error(), "secret") {
			t.Fatalf("a replica with another secret started: %v", err)
		}
	})
}
