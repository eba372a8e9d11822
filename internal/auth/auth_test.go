package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/novacron/novacron"
)

var secret = []byte(strings.Repeat("s", MinSecretLen))

func TestSignerRoundTripAndRejections(t *testing.T) {
	s, err := NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok, err := s.Sign("sid-1", "uid-1", now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sid, uid, err := s.Verify(tok, now.Add(time.Minute))
	if err != nil || sid != "sid-1" || uid != "uid-1" {
		t.Fatalf("Verify = %q %q %v", sid, uid, err)
	}
	if _, _, err := s.Verify(tok, now.Add(2*time.Hour)); err == nil {
		t.Error("expired token accepted")
	}
	other, _ := NewSigner([]byte(strings.Repeat("x", MinSecretLen)))
	if _, _, err := other.Verify(tok, now); err == nil {
		t.Error("token of another secret accepted")
	}
	// alg=none and a tampered payload must fail.
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sid": "x", "sub": "y",
		"exp": now.Add(time.Hour).Unix(), "iss": "novacron"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if _, _, err := s.Verify(none, now); err == nil {
		t.Error("alg=none token accepted")
	}
	parts := strings.Split(tok, ".")
	if _, _, err := s.Verify(parts[0]+"."+parts[1]+"x."+parts[2], now); err == nil {
		t.Error("tampered token accepted")
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Error("short secret accepted")
	}
}

func TestAPITokens(t *testing.T) {
	a, ha := NewAPIToken()
	b, hb := NewAPIToken()
	if a == b || ha == hb {
		t.Fatal("tokens repeat")
	}
	if !IsAPIToken(a) || IsAPIToken("eyJhbGciOi.x.y") {
		t.Error("IsAPIToken misclassifies")
	}
	if HashAPIToken(a) != ha || strings.Contains(ha, a) {
		t.Error("hash is not the stored form")
	}
}

func TestPasswords(t *testing.T) {
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"short", false},
		{"exactly10c", true},
		{strings.Repeat("a", 72), true},
		{strings.Repeat("a", 73), false},
	} {
		if err := ValidatePassword(tc.pw); (err == nil) != tc.ok {
			t.Errorf("ValidatePassword(len %d) = %v, want ok=%v", len(tc.pw), err, tc.ok)
		}
	}
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$2a$12$") {
		t.Errorf("hash %q is not bcrypt cost 12", h[:7])
	}
	if !CheckPassword(h, "correct horse battery") || CheckPassword(h, "wrong horse battery") {
		t.Error("CheckPassword wrong")
	}
	if p := GeneratePassword(); len(p) < 20 || ValidatePassword(p) != nil {
		t.Errorf("generated password %d chars", len(p))
	}
}

func TestBackoff(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBackoff()
	b.Now = func() time.Time { return now }
	for i := 0; i < 5; i++ {
		if w := b.Wait("u"); w != 0 {
			t.Fatalf("attempt %d: wait %v within free failures", i, w)
		}
		b.Fail("u")
	}
	if w := b.Wait("u"); w != 0 {
		t.Fatalf("after 5 failures wait %v, want 0", w)
	}
	b.Fail("u") // 6th: 1s
	if w := b.Wait("u"); w != time.Second {
		t.Fatalf("after 6 failures wait %v, want 1s", w)
	}
	b.Fail("u") // 7th: 2s
	b.Fail("u") // 8th: 4s
	if w := b.Wait("u"); w != 4*time.Second {
		t.Fatalf("after 8 failures wait %v, want 4s", w)
	}
	for i := 0; i < 30; i++ {
		b.Fail("u")
	}
	if w := b.Wait("u"); w != 5*time.Minute {
		t.Fatalf("capped wait %v, want 5m", w)
	}
	if w := b.Wait("other"); w != 0 {
		t.Fatalf("other key waits %v", w)
	}
	now = now.Add(16 * time.Minute)
	if w := b.Wait("u"); w != 0 {
		t.Fatalf("after the window wait %v", w)
	}
	b.Fail("v")
	b.Succeed("v")
	if len(b.entries) != 0 {
		t.Fatalf("entries left: %d", len(b.entries))
	}
	b.MaxKeys = 10
	for i := 0; i < 100; i++ {
		b.Fail(string(rune('a' + i)))
	}
	if len(b.entries) > 10 {
		t.Fatalf("backoff holds %d keys, max 10", len(b.entries))
	}
}

func TestAllowed(t *testing.T) {
	admin := &novacron.Actor{UserID: "a", TenantID: "t1", Role: novacron.RoleAdmin}
	op := &novacron.Actor{UserID: "o", TenantID: "t1", Role: novacron.RoleOperator}
	user := &novacron.Actor{UserID: "u", TenantID: "t1", Role: novacron.RoleUser}
	own, other := Target{TenantID: "t1"}, Target{TenantID: "t2"}
	tests := []struct {
		actor *novacron.Actor
		p     Policy
		t     Target
		want  string
	}{
		{nil, Public, Target{}, ""},
		{nil, Self, Target{}, novacron.EUnauthorized},
		{nil, Admin, other, novacron.EUnauthorized},
		{user, Self, Target{}, ""},
		{user, Member, own, ""},
		{user, Member, other, novacron.ENotFound},
		{user, Operator, own, novacron.EForbidden},
		{user, Admin, Target{}, novacron.EForbidden},
		{op, Operator, own, ""},
		{op, Operator, other, novacron.ENotFound},
		{op, Admin, own, novacron.EForbidden},
		{admin, Admin, other, ""},
		{admin, Member, other, ""},
		{admin, Operator, other, ""},
	}
	for _, tc := range tests {
		got := novacron.ErrorCode(Allowed(tc.actor, tc.p, tc.t))
		if got != tc.want {
			role := "anonymous"
			if tc.actor != nil {
				role = string(tc.actor.Role)
			}
			t.Errorf("Allowed(%s, %s, %q) = %q, want %q", role, tc.p, tc.t.TenantID, got, tc.want)
		}
	}
	if ScopeOf(admin) != novacron.AllTenants || ScopeOf(op).TenantID != "t1" || ScopeOf(nil).TenantID == "" {
		t.Error("ScopeOf wrong")
	}
}

// TestInteractive checks who may use a VM interactively (its console, exec):
// its owner, and the operators and admins of its tenant.
func TestInteractive(t *testing.T) {
	vm := &novacron.VM{ID: "v", TenantID: "own", OwnerID: "owner"}
	orphan := &novacron.VM{ID: "o", TenantID: "own"}
	for _, tc := range []struct {
		name  string
		actor *novacron.Actor
		vm    *novacron.VM
		want  string
	}{
		{"nobody", nil, vm, novacron.EUnauthorized},
		{"the owner", &novacron.Actor{UserID: "owner", TenantID: "own", Role: novacron.RoleUser}, vm, ""},
		{"another user of the tenant", &novacron.Actor{UserID: "u2", TenantID: "own", Role: novacron.RoleUser}, vm, novacron.EForbidden},
		{"a user, of a VM without owner", &novacron.Actor{UserID: "u2", TenantID: "own", Role: novacron.RoleUser}, orphan, novacron.EForbidden},
		{"nobody's id, of a VM without owner", &novacron.Actor{UserID: "", TenantID: "own", Role: novacron.RoleUser}, orphan, novacron.EForbidden},
		{"an operator of the tenant", &novacron.Actor{UserID: "op", TenantID: "own", Role: novacron.RoleOperator}, vm, ""},
		{"an admin of the tenant", &novacron.Actor{UserID: "ad", TenantID: "own", Role: novacron.RoleAdmin}, vm, ""},
		{"a user of another tenant", &novacron.Actor{UserID: "u3", TenantID: "other", Role: novacron.RoleUser}, vm, novacron.ENotFound},
		{"the owner, moved to another tenant", &novacron.Actor{UserID: "owner", TenantID: "other", Role: novacron.RoleUser}, vm, novacron.ENotFound},
		{"an operator of another tenant", &novacron.Actor{UserID: "op2", TenantID: "other", Role: novacron.RoleOperator}, vm, novacron.ENotFound},
		{"an admin of another tenant", &novacron.Actor{UserID: "ad2", TenantID: "other", Role: novacron.RoleAdmin}, vm, ""},
	} {
		if got := novacron.ErrorCode(Interactive(tc.actor, tc.vm)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
