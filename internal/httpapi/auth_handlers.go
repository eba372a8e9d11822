package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type loginResponse struct {
	Token     string         `json:"token"`
	ExpiresAt time.Time      `json:"expires_at"`
	User      *novacron.User `json:"user"`
}

// maxPasswordWait bounds how long a request waits for a password slot.
const maxPasswordWait = 5 * time.Second

// passwordWork runs f, which hashes or checks a password, on one of a
// bounded number of slots. When too many are already waiting it answers
// rate_limited at once: a login storm is slowed, never queued without end.
func (a *API) passwordWork(ctx context.Context, f func() error) error {
	select {
	case a.loginQueue <- struct{}{}:
	default:
		return rateLimited("too many logins in progress; retry shortly", 1)
	}
	defer func() { <-a.loginQueue }()
	wait := time.NewTimer(maxPasswordWait)
	defer wait.Stop()
	select {
	case a.loginSlots <- struct{}{}:
	case <-ctx.Done():
		return rateLimited("too many logins in progress; retry shortly", 1)
	case <-wait.C:
		return rateLimited("too many logins in progress; retry shortly", 1)
	}
	defer func() { <-a.loginSlots }()
	return f()
}

func (a *API) login(r *http.Request) (any, error) {
	var req loginRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	st := stateOf(r)
	st.username = truncate(req.Username, 64)
	if req.Username == "" || req.Password == "" {
		return nil, novacron.Errorf(novacron.EInvalid, "username and password are required")
	}
	if len(req.Username) > 64 || len(req.Password) > 1024 {
		return nil, novacron.Errorf(novacron.EUnauthorized, "invalid username or password")
	}
	userKey, ipKey := "user:"+req.Username, "ip:"+st.ip
	if wait := max(a.loginBackoff.Wait(userKey), a.loginBackoff.Wait(ipKey)); wait > 0 {
		return nil, rateLimited("too many failed logins; retry later", int((wait+time.Second-1)/time.Second))
	}
	var res *auth.LoginResult
	err := a.passwordWork(r.Context(), func() error {
		var err error
		res, err = a.auth.Login(r.Context(), req.Username, req.Password, auth.Client{IP: st.ip, UserAgent: r.UserAgent()})
		return err
	})
	if err != nil {
		if novacron.IsCode(err, novacron.EUnauthorized) {
			a.loginBackoff.Fail(userKey)
			a.loginBackoff.Fail(ipKey)
		}
		return nil, err
	}
	a.loginBackoff.Succeed(userKey)
	st.actor = &novacron.Actor{UserID: res.User.ID, Username: res.User.Username, TenantID: res.User.TenantID, Role: res.User.Role}
	st.resourceID = res.User.ID
	return loginResponse{Token: res.Token, ExpiresAt: res.ExpiresAt, User: res.User}, nil
}

func (a *API) logout(r *http.Request) (any, error) {
	st := stateOf(r)
	st.resourceID = st.actor.SessionID
	if err := a.auth.Logout(r.Context(), st.actor); err != nil {
		return nil, err
	}
	return noContent(), nil
}

func (a *API) me(r *http.Request) (any, error) {
	return a.store.GetUser(r.Context(), novacron.AllTenants, stateOf(r).actor.UserID)
}

type registerRequest struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (a *API) register(r *http.Request) (any, error) {
	if !a.cfg.AllowRegistration {
		return nil, novacron.Errorf(novacron.EForbidden, "registration is disabled on this server")
	}
	var req registerRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	stateOf(r).username = truncate(req.Username, 64)
	if err := firstErr(novacron.ValidateUsername(req.Username), novacron.ValidateEmail(req.Email), auth.ValidatePassword(req.Password)); err != nil {
		return nil, err
	}
	t, err := a.store.GetTenantByName(r.Context(), novacron.DefaultTenantName)
	if err != nil {
		return nil, err
	}
	u := &novacron.User{Username: req.Username, Email: req.Email, Role: novacron.RoleUser, TenantID: t.ID}
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
	return created(map[string]any{"user": u}), nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

type tokenRequest struct {
	Name      string `json:"name"`
	ExpiresIn string `json:"expires_in"`
}

type tokenView struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Token     string    `json:"token,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *API) createToken(r *http.Request) (any, error) {
	var req tokenRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Name == "" || len(req.Name) > 64 {
		return nil, novacron.FieldError("name", "must be 1-64 characters")
	}
	ttl, err := durationParam("expires_in", req.ExpiresIn)
	if err != nil {
		return nil, err
	}
	st := stateOf(r)
	sess, tok, err := a.auth.NewToken(r.Context(), st.actor, req.Name, ttl, auth.Client{IP: st.ip, UserAgent: r.UserAgent()})
	if err != nil {
		return nil, err
	}
	st.resourceID = sess.ID
	return created(tokenView{ID: sess.ID, Name: sess.Name, Token: tok, CreatedAt: sess.CreatedAt, ExpiresAt: sess.ExpiresAt}), nil
}

func (a *API) listTokens(r *http.Request) (any, error) {
	page, err := pageOf(r)
	if err != nil {
		return nil, err
	}
	sessions, next, err := a.store.ListSessions(r.Context(), stateOf(r).actor.UserID, novacron.SessionToken, page)
	if err != nil {
		return nil, err
	}
	out := make([]tokenView, len(sessions))
	for i, s := range sessions {
		out[i] = tokenView{ID: s.ID, Name: s.Name, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt}
	}
	return newList(out, next), nil
}

func (a *API) deleteToken(r *http.Request) (any, error) {
	actor := stateOf(r).actor
	id := r.PathValue("id")
	s, err := a.store.GetSession(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if s.UserID != actor.UserID || s.Kind != novacron.SessionToken || s.RevokedAt != nil {
		return nil, novacron.Errorf(novacron.ENotFound, "token not found")
	}
	if err := a.store.RevokeSession(r.Context(), actor.UserID, id); err != nil {
		return nil, err
	}
	return noContent(), nil
}
