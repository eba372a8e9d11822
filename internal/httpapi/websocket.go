package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/novacron/novacron"
)

// WebSocket routes. A route with a ws handler answers an upgrade request:
// everything up to the upgrade (rate limits, authentication, the policy,
// the handler's own checks) answers ordinary JSON errors; then the
// connection is upgraded and the handler's session runs on it.
//
// Browsers cannot set headers on a WebSocket, so on an upgrade to such a
// route the bearer token may also come as ?token= or as a subprotocol
// "bearer.<token>" offered beside WSProtocol, which the server selects
// (a browser fails the handshake when the server selects none).

// WSProtocol is the subprotocol NovaCron's WebSockets speak.
const WSProtocol = "novacron"

// wsBearerPrefix starts the subprotocol that carries a bearer token.
const wsBearerPrefix = "bearer."

// wsHandler opens a WebSocket route's session before the upgrade. Its error
// is answered like any handler's.
type wsHandler func(r *http.Request) (wsSession, error)

// wsSession is what a WebSocket route runs once the connection is upgraded.
type wsSession interface {
	// serve runs over c until the session ends, and closes c. A close of
	// stop (the server shuts down) ends it with StatusGoingAway.
	serve(ctx context.Context, c *websocket.Conn, stop <-chan struct{})
	// abort releases what the session holds when the upgrade fails.
	abort()
}

// isWebSocketUpgrade reports whether r asks for a WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// checkUpgrade checks what websocket.Accept would refuse with an answer of
// its own, so that the refusal is in the API's error shape and comes before
// the route's handler has opened anything.
func (a *API) checkUpgrade(r *http.Request) error {
	if r.Method != http.MethodGet || !r.ProtoAtLeast(1, 1) || !isWebSocketUpgrade(r) {
		return novacron.Errorf(novacron.EInvalid, "this route is a WebSocket: send a GET upgrade request (Connection: Upgrade, Upgrade: websocket)")
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return novacron.Errorf(novacron.EInvalid, "unsupported WebSocket version: only 13 is supported")
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return novacron.Errorf(novacron.EInvalid, "a WebSocket upgrade carries one Sec-WebSocket-Key")
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return novacron.Errorf(novacron.EInvalid, "Sec-WebSocket-Key must be 16 bytes in base64")
	}
	if !a.wsOriginAllowed(r) {
		return novacron.Errorf(novacron.EForbidden, "origin not allowed")
	}
	return nil
}

// wsOriginAllowed lets a WebSocket be opened by programs (no Origin), by
// pages of the server's own origin and by the CORS allow-list.
func (a *API) wsOriginAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if slices.Contains(a.cfg.CORSOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// headerTokens splits the comma-separated values of a header.
func headerTokens(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func headerHasToken(h http.Header, name, token string) bool {
	return slices.ContainsFunc(headerTokens(h, name), func(t string) bool { return strings.EqualFold(t, token) })
}

// wsCredentials returns the bearer tokens an upgrade request carries
// outside the Authorization header: ?token= (removed from the URL, so that
// nothing logs it) and "bearer.<token>" subprotocols.
func wsCredentials(r *http.Request) []string {
	var toks []string
	q := r.URL.Query()
	if q.Has("token") {
		toks = append(toks, q["token"]...)
		q.Del("token")
		r.URL.RawQuery = q.Encode()
		r.RequestURI = r.URL.RequestURI()
	}
	for _, p := range headerTokens(r.Header, "Sec-WebSocket-Protocol") {
		if t, ok := strings.CutPrefix(p, wsBearerPrefix); ok {
			toks = append(toks, t)
		}
	}
	return toks
}

// serveWebSocket serves a WebSocket route. answered is called with the
// status of the answer (101 once upgraded) as soon as there is one. Every
// call is audited, whatever its method: opening a console is an action.
func (a *API) serveWebSocket(rt *route, w http.ResponseWriter, r *http.Request, st *reqState, answered func(status int)) {
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
		a.streams.hook(srv)
	}
	sess, err := a.openWebSocket(rt, r, st)
	var c *websocket.Conn
	if err == nil {
		// The origin was checked by checkUpgrade, against the CORS
		// allow-list, which Accept does not know.
		c, err = websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{WSProtocol}, InsecureSkipVerify: true})
		if err != nil {
			sess.abort()
			a.log.Warn("websocket upgrade failed", "request_id", st.id, "action", rt.action, "err", err)
			err = novacron.Errorf(novacron.EInternal, "the WebSocket upgrade failed")
		}
	}
	a.audit(r, rt, st, err)
	if err != nil {
		if sess == nil {
			// (A failed Accept has answered already.)
			a.logFailure(rt, st, err)
			writeError(w, r, err)
		}
		answered(statusOf(novacron.ErrorCode(err)))
		return
	}
	answered(http.StatusSwitchingProtocols)
	stop, done, ok := a.streams.add()
	if !ok {
		sess.abort()
		_ = c.Close(websocket.StatusGoingAway, "the server is shutting down")
		return
	}
	defer done()
	clients := a.metrics.wsClients.WithLabelValues(rt.path)
	clients.Inc()
	defer clients.Dec()
	sess.serve(r.Context(), c, stop)
}

// openWebSocket runs everything before the upgrade.
func (a *API) openWebSocket(rt *route, r *http.Request, st *reqState) (wsSession, error) {
	if err := a.admit(rt, r, st, true); err != nil {
		return nil, err
	}
	if err := a.checkUpgrade(r); err != nil {
		return nil, err
	}
	if a.streams.closing() {
		return nil, novacron.Errorf(novacron.EUnavailable, "the server is shutting down")
	}
	return rt.ws(r)
}

// streams tracks the API's WebSocket sessions. Their connections are
// hijacked, so http.Server.Shutdown neither waits for them nor closes them:
// streams registers itself with the server's shutdown (on the first
// WebSocket request) to end them, and Shutdown ends them too.
type streams struct {
	mu      sync.Mutex
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
	servers map[*http.Server]bool
}

func newStreams() *streams {
	return &streams{stop: make(chan struct{}), servers: map[*http.Server]bool{}}
}

// hook makes srv's Shutdown end the sessions.
func (s *streams) hook(srv *http.Server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.servers[srv] {
		return
	}
	s.servers[srv] = true
	srv.RegisterOnShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = s.shutdown(ctx)
	})
}

// add registers a session: stop is closed when it must end, done is called
// when it has. ok is false once the API is shutting down.
func (s *streams) add() (stop <-chan struct{}, done func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, false
	}
	s.wg.Add(1)
	return s.stop, s.wg.Done, true
}

// closing reports whether the sessions are being ended.
func (s *streams) closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// shutdown ends every session, refuses new ones and waits until the
// sessions have ended or ctx ends.
func (s *streams) shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.mu.Unlock()
	ended := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(ended)
	}()
	select {
	case <-ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown ends every WebSocket session (close code 1001, going away),
// refuses new ones and waits until the sessions have ended or ctx ends.
// The http.Server serving the API calls it from its own Shutdown; a server
// that serves the API some other way calls it itself.
func (a *API) Shutdown(ctx context.Context) error { return a.streams.shutdown(ctx) }

// closeReason fits a close frame's reason into its 123 bytes.
func closeReason(s string) string {
	const max = 123
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
