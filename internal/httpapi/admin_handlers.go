package httpapi

import (
	"net/http"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
)

type createUserRequest struct {
	Username string        `json:"username"`
	Email    string        `json:"email"`
	Password string        `json:"password"`
	Role     novacron.Role `json:"role"`
	TenantID string        `json:"tenant_id"`
}

type updateUserRequest struct {
	Email    *string        `json:"email"`
	Role     *novacron.Role `json:"role"`
	TenantID *string        `json:"tenant_id"`
	Password *string        `json:"password"`
}

func validRole(r novacron.Role) error {
	if !r.Valid() {
		return novacron.FieldError("role", "must be admin, operator or user")
	}
	return nil
}

// tenantFor checks that a tenant named in a request exists.
func (a *API) tenantFor(r *http.Request, id string) error {
	_, err := a.store.GetTenant(r.Context(), novacron.AllTenants, id)
	if novacron.IsCode(err, novacron.ENotFound) {
		return novacron.FieldError("tenant_id", "no such tenant")
	}
	return err
}

func (a *API) listUsers(r *http.Request) (any, error) {
	page, err := pageOf(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := novacron.UserFilter{Page: page, Role: novacron.Role(q.Get("role")), Username: q.Get("username")}
	if f.Role != "" {
		if err := validRole(f.Role); err != nil {
			return nil, err
		}
	}
	scope := auth.ScopeOf(stateOf(r).actor)
	if tid := q.Get("tenant_id"); tid != "" {
		scope = novacron.TenantScope(tid)
		if err := a.tenantFor(r, tid); err != nil {
			return nil, err
		}
	}
	users, next, err := a.store.ListUsers(r.Context(), scope, f)
	if err != nil {
		return nil, err
	}
	return newList(users, next), nil
}

func (a *API) createUser(r *http.Request) (any, error) {
	var req createUserRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Role == "" {
		req.Role = novacron.RoleUser
	}
	if err := firstErr(novacron.ValidateUsername(req.Username), novacron.ValidateEmail(req.Email),
		validRole(req.Role), auth.ValidatePassword(req.Password)); err != nil {
		return nil, err
	}
	if req.TenantID == "" {
		t, err := a.store.GetTenantByName(r.Context(), novacron.DefaultTenantName)
		if err != nil {
			return nil, err
		}
		req.TenantID = t.ID
	} else if err := a.tenantFor(r, req.TenantID); err != nil {
		return nil, err
	}
	u := &novacron.User{Username: req.Username, Email: req.Email, Role: req.Role, TenantID: req.TenantID}
	if err := a.passwordWork(r.Context(), func() error {
		var err error
		u.PasswordHash, err = auth.HashPassword(req.Password)
		return err
	}); err != nil {
		return nil, err
	}
	if err := a.store.CreateUser(r.Context(), u); err != nil {
		return nil, err
	}
	stateOf(r).resourceID = u.ID
	return created(u), nil
}

func (a *API) getUser(r *http.Request) (any, error) {
	return a.store.GetUser(r.Context(), auth.ScopeOf(stateOf(r).actor), r.PathValue("id"))
}

func (a *API) updateUser(r *http.Request) (any, error) {
	var req updateUserRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	scope := auth.ScopeOf(stateOf(r).actor)
	u, err := a.store.GetUser(r.Context(), scope, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if req.Email != nil {
		if err := novacron.ValidateEmail(*req.Email); err != nil {
			return nil, err
		}
		u.Email = *req.Email
	}
	if req.Role != nil {
		if err := validRole(*req.Role); err != nil {
			return nil, err
		}
		u.Role = *req.Role
	}
	if req.TenantID != nil {
		if err := a.tenantFor(r, *req.TenantID); err != nil {
			return nil, err
		}
		u.TenantID = *req.TenantID
	}
	if req.Password != nil {
		err = a.passwordWork(r.Context(), func() error {
			_, err := auth.SetPassword(r.Context(), a.store, scope, u, *req.Password)
			return err
		})
	} else {
		err = a.store.UpdateUser(r.Context(), scope, u)
	}
	if err != nil {
		return nil, err
	}
	return u, nil
}

func (a *API) deleteUser(r *http.Request) (any, error) {
	actor := stateOf(r).actor
	id := r.PathValue("id")
	if id == actor.UserID {
		return nil, novacron.Errorf(novacron.EConflict, "you cannot delete your own account")
	}
	if err := a.store.DeleteUser(r.Context(), auth.ScopeOf(actor), id); err != nil {
		return nil, err
	}
	return noContent(), nil
}

func (a *API) revokeUserSessions(r *http.Request) (any, error) {
	u, err := a.store.GetUser(r.Context(), auth.ScopeOf(stateOf(r).actor), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if _, err := a.store.RevokeUserSessions(r.Context(), u.ID); err != nil {
		return nil, err
	}
	return noContent(), nil
}

type tenantRequest struct {
	Name   *string          `json:"name"`
	Quotas *novacron.Quotas `json:"quotas"`
}

func (a *API) listTenants(r *http.Request) (any, error) {
	page, err := pageOf(r)
	if err != nil {
		return nil, err
	}
	ts, next, err := a.store.ListTenants(r.Context(), auth.ScopeOf(stateOf(r).actor), page)
	if err != nil {
		return nil, err
	}
	return newList(ts, next), nil
}

func (a *API) createTenant(r *http.Request) (any, error) {
	var req tenantRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Name == nil {
		return nil, novacron.FieldError("name", "is required")
	}
	t := &novacron.Tenant{Name: *req.Name}
	if req.Quotas != nil {
		t.Quotas = *req.Quotas
	}
	if err := firstErr(novacron.ValidateName("name", t.Name), t.Quotas.Validate()); err != nil {
		return nil, err
	}
	if err := a.store.CreateTenant(r.Context(), t); err != nil {
		return nil, err
	}
	stateOf(r).resourceID = t.ID
	return created(t), nil
}

func (a *API) getTenant(r *http.Request) (any, error) {
	return a.store.GetTenant(r.Context(), auth.ScopeOf(stateOf(r).actor), r.PathValue("id"))
}

func (a *API) updateTenant(r *http.Request) (any, error) {
	var req tenantRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	t, err := a.store.GetTenant(r.Context(), auth.ScopeOf(stateOf(r).actor), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if req.Name != nil && *req.Name != t.Name {
		if t.Name == novacron.DefaultTenantName {
			return nil, novacron.Errorf(novacron.EConflict, "the default tenant cannot be renamed")
		}
		if err := novacron.ValidateName("name", *req.Name); err != nil {
			return nil, err
		}
		t.Name = *req.Name
	}
	if req.Quotas != nil {
		if err := req.Quotas.Validate(); err != nil {
			return nil, err
		}
		t.Quotas = *req.Quotas
	}
	if err := a.store.UpdateTenant(r.Context(), t); err != nil {
		return nil, err
	}
	return t, nil
}

func (a *API) deleteTenant(r *http.Request) (any, error) {
	if err := a.store.DeleteTenant(r.Context(), r.PathValue("id")); err != nil {
		return nil, err
	}
	return noContent(), nil
}

func (a *API) listAudit(r *http.Request) (any, error) {
	page, err := pageOf(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	f := novacron.AuditFilter{Page: page, UserID: q.Get("user_id"), Action: q.Get("action"), Resource: q.Get("resource")}
	now := a.now()
	if f.From, err = timeParam(r, "from", now); err != nil {
		return nil, err
	}
	if f.To, err = timeParam(r, "to", now); err != nil {
		return nil, err
	}
	entries, next, err := a.store.ListAudit(r.Context(), auth.ScopeOf(stateOf(r).actor), f)
	if err != nil {
		return nil, err
	}
	return newList(entries, next), nil
}
