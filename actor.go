package novacron

import "context"

// Actor is the authenticated caller of a request: a user acting through a
// login session or a personal API token.
type Actor struct {
	UserID    string
	Username  string
	TenantID  string
	Role      Role
	SessionID string
	Kind      SessionKind
}

type actorKey struct{}

// WithActor returns a context that carries the caller's identity.
func WithActor(ctx context.Context, a *Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the caller carried by ctx, or nil.
func ActorFrom(ctx context.Context) *Actor {
	a, _ := ctx.Value(actorKey{}).(*Actor)
	return a
}
