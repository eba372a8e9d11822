package auth

import "github.com/novacron/novacron"

// Policy says who may call a route. Every route of the API declares one
// beside its path.
type Policy int

// The policies, from the most open to the most closed.
const (
	// Public routes need no credential (login, health, info).
	Public Policy = iota
	// Self routes act on the caller's own account (me, logout, own tokens).
	Self
	// Member routes are open to every role; non-admins see their own tenant only.
	Member
	// Operator routes are open to operators, within their tenant, and to admins.
	Operator
	// Admin routes are open to admins only.
	Admin
)

var policyNames = [...]string{"public", "self", "member", "operator", "admin"}

func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return "unknown"
}

// Target is what a request acts on, once known. The zero Target stands for a
// collection or a resource not loaded yet: only the role is checked.
type Target struct {
	// TenantID is the tenant owning the resource ("" when none or unknown).
	TenantID string
}

// Allowed decides whether actor may act under policy p on target. It returns
// nil, or an error coded EUnauthorized (no caller), EForbidden (role too low)
// or ENotFound (a resource of another tenant, which must look absent). It is
// a pure function.
func Allowed(a *novacron.Actor, p Policy, t Target) error {
	if p == Public {
		return nil
	}
	if a == nil {
		return novacron.Errorf(novacron.EUnauthorized, "authentication required")
	}
	switch p {
	case Self, Member:
	case Operator:
		if a.Role != novacron.RoleOperator && a.Role != novacron.RoleAdmin {
			return novacron.Errorf(novacron.EForbidden, "this action needs the operator or admin role")
		}
	case Admin:
		if a.Role != novacron.RoleAdmin {
			return novacron.Errorf(novacron.EForbidden, "this action needs the admin role")
		}
	default:
		return novacron.Errorf(novacron.EForbidden, "unknown policy")
	}
	if t.TenantID != "" && a.Role != novacron.RoleAdmin && t.TenantID != a.TenantID {
		return novacron.Errorf(novacron.ENotFound, "not found")
	}
	return nil
}

// ScopeOf returns the store scope of an actor: every tenant for admins, the
// actor's own tenant for anyone else.
func ScopeOf(a *novacron.Actor) novacron.Scope {
	if a != nil && a.Role == novacron.RoleAdmin {
		return novacron.AllTenants
	}
	if a == nil {
		// A scope no row matches.
		return novacron.TenantScope("00000000-0000-0000-0000-000000000000")
	}
	return novacron.TenantScope(a.TenantID)
}
