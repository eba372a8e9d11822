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

// Interactive decides whether actor may use vm interactively: attach to its
// console, run commands in it. That is the VM's owner, and the operators
// and admins of its tenant (admins: of every tenant); any other member of
// the tenant may only look at it. It returns nil, or an error coded
// EUnauthorized (no caller), ENotFound (a VM of another tenant, which must
// look absent) or EForbidden (a user who is not the owner). It is a pure
// function; the API checks it before it opens a console, and the VM
// service again for every console and command.
func Interactive(a *novacron.Actor, vm *novacron.VM) error {
	if err := Allowed(a, Member, Target{TenantID: vm.TenantID}); err != nil {
		return err
	}
	switch {
	case a.Role == novacron.RoleAdmin, a.Role == novacron.RoleOperator:
		return nil
	case vm.OwnerID != "" && vm.OwnerID == a.UserID:
		return nil
	}
	return novacron.Errorf(novacron.EForbidden, "only the VM's owner and the operators and admins of its tenant may use its console or run commands in it")
}
