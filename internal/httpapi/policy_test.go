package httpapi

import (
	"log/slog"
	"testing"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
)

// who may call each action, written out by hand: changing a route's policy
// without changing this table fails the test.
var expectedAccess = map[string]string{
	"system.health":        "anyone",
	"system.metrics":       "anyone", // the handler checks admin or metrics token itself
	"system.info":          "anyone",
	"system.openapi":       "anyone",
	"auth.register":        "anyone",
	"auth.login":           "anyone",
	"auth.logout":          "signed-in",
	"auth.me":              "signed-in",
	"token.list":           "signed-in",
	"token.create":         "signed-in",
	"token.delete":         "signed-in",
	"user.list":            "admin",
	"user.create":          "admin",
	"user.get":             "admin",
	"user.update":          "admin",
	"user.delete":          "admin",
	"user.revoke_sessions": "admin",
	"tenant.list":          "members",
	"tenant.create":        "admin",
	"tenant.get":           "members",
	"tenant.update":        "admin",
	"tenant.delete":        "admin",
	"audit.list":           "operators",
	"vm.list":              "members",
	"vm.create":            "members",
	"vm.get":               "members",
	"vm.update":            "members",
	"vm.delete":            "members",
	"vm.start":             "members",
	"vm.stop":              "members",
	"vm.restart":           "members",
	"vm.pause":             "members",
	"vm.resume":            "members",
	"vm.logs":              "members",
	"vm.console":           "members", // interactive: auth.Interactive narrows it to the owner, operators and admins
	"vm.console_log":       "members",
	"vm.exec":              "members", // interactive: the VM service narrows it to the owner, operators and admins
	"vm.exec_interactive":  "members", // likewise
	"vm.stats":             "members",
	"vm.metrics":           "members",
	"operation.list":       "members",
	"operation.get":        "members",
	"image.list":           "members",
	"image.upload":         "members", // ?public=true: the handler asks for admin
	"image.get":            "members",
	"image.delete":         "members", // a public image: the store asks for admin
	"monitoring.stream":    "members", // each event is checked by events.Event.VisibleTo
	"node.list":            "operators",
	"node.get":             "operators",
	"alert.list":           "members", // the store's scope: their tenant's alerts (admins: all)
	"alert.acknowledge":    "operators",
	"alert_rule.list":      "operators",
	"alert_rule.create":    "operators", // operators: their tenant's VMs only (alert.Engine.CreateRule)
	"alert_rule.get":       "operators",
	"alert_rule.update":    "operators",
	"alert_rule.delete":    "operators",

	"monitoring.host_metrics": "operators", // the nodes' metrics: as the nodes
	"monitoring.vms":          "members",   // scoped to the caller's tenant in the store query
}

// TestRouteMatrix checks the decision over every route, every role and a
// resource of the caller's own tenant and of another one.
func TestRouteMatrix(t *testing.T) {
	a := New(Config{}, nil, nil, nil, slog.New(slog.DiscardHandler))
	roles := []novacron.Role{"", novacron.RoleUser, novacron.RoleOperator, novacron.RoleAdmin}
	seen := map[string]bool{}
	for _, rt := range a.Routes() {
		access, ok := expectedAccess[rt.Action]
		if !ok {
			t.Errorf("route %s %s (%s) has no row in the access table", rt.Method, rt.Path, rt.Action)
			continue
		}
		seen[rt.Action] = true
		for _, role := range roles {
			var actor *novacron.Actor
			if role != "" {
				actor = &novacron.Actor{UserID: "u", TenantID: "own", Role: role}
			}
			for _, tenant := range []string{"", "own", "other"} {
				if (access == "anyone" || access == "signed-in") && tenant != "" {
					continue // these routes act on no tenant's resource
				}
				got := novacron.ErrorCode(auth.Allowed(actor, rt.Policy, auth.Target{TenantID: tenant}))
				want := expect(access, role, tenant)
				if got != want {
					t.Errorf("%s %s as %q on tenant %q: %q, want %q", rt.Method, rt.Path, role, tenant, got, want)
				}
			}
		}
	}
	for action := range expectedAccess {
		if !seen[action] {
			t.Errorf("access table names %s, which no route has", action)
		}
	}
}

func expect(access string, role novacron.Role, tenant string) string {
	if access == "anyone" {
		return ""
	}
	if role == "" {
		return novacron.EUnauthorized
	}
	var allowed bool
	switch access {
	case "signed-in", "members":
		allowed = true
	case "operators":
		allowed = role == novacron.RoleOperator || role == novacron.RoleAdmin
	case "admin":
		allowed = role == novacron.RoleAdmin
	}
	if !allowed {
		return novacron.EForbidden
	}
	if tenant == "other" && role != novacron.RoleAdmin {
		return novacron.ENotFound
	}
	return ""
}
