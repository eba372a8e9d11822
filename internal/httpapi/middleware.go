package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
)

// reqState is what the middleware learns about a request, shared with the
// handler through the context and read back by the audit record.
type reqState struct {
	id    string
	ip    string
	actor *novacron.Actor
	// Set by handlers for the audit record.
	resourceID string
	username   string
}

type stateKey struct{}

func stateOf(r *http.Request) *reqState {
	if s, ok := r.Context().Value(stateKey{}).(*reqState); ok {
		return s
	}
	return &reqState{}
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
	w.ResponseWriter.WriteHeader(s)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// outer wraps every request: request id, security headers, CORS, panic
// recovery and the access log.
func (a *API) outer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{id: requestID(r), ip: a.clientIP(r)}
		h := rw.Header()
		h.Set("X-Request-ID", st.id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
		if a.cfg.TLS {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		w := &statusWriter{ResponseWriter: rw}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.Error("panic", "request_id", st.id, "panic", p, "path", r.URL.Path)
				if w.status == 0 {
					writeError(w, r, errors.New("panic"))
				}
			}
			d := time.Since(start)
			lvl := slog.LevelInfo
			if w.status >= 500 {
				lvl = slog.LevelError
			}
			a.log.LogAttrs(r.Context(), lvl, "request",
				slog.String("request_id", st.id), slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", w.status),
				slog.Duration("duration", d), slog.String("ip", st.ip),
				slog.String("user", actorName(st.actor)))
		}()
		if !a.cors(w, r) {
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	})
}

func actorName(a *novacron.Actor) string {
	if a == nil {
		return ""
	}
	return a.Username
}

// requestID keeps a client's well-formed X-Request-ID or makes a new one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-ID"); id != "" && len(id) <= 64 && isToken(id) {
		return id
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isToken(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// cors applies the origin allow-list. It answers preflight requests itself
// and returns false when the request is finished.
func (a *API) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	w.Header().Add("Vary", "Origin")
	allowed := slices.Contains(a.cfg.CORSOrigins, origin)
	if allowed {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "X-Request-ID, Location, Retry-After")
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		if !allowed {
			writeError(w, r, novacron.Errorf(novacron.EForbidden, "origin not allowed"))
			return false
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	return true
}

// clientIP is the peer address, or the right-most X-Forwarded-For address
// not itself a trusted proxy when the peer is one.
func (a *API) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !a.trusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		ip = ip.Unmap()
		if !a.trusted(ip) {
			return ip.String()
		}
		peer = ip
	}
	return peer.String()
}

func (a *API) trusted(ip netip.Addr) bool {
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func isMutating(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch || method == http.MethodDelete
}

// wrap turns a route into a handler: rate limits, authentication, the
// route's policy, the body limit, the handler, the answer and the audit
// record, in that order.
func (a *API) wrap(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r)
		start := time.Now()
		status := 0
		observed := false
		var err error
		defer func() {
			if rt.ws == nil && !observed {
				a.metrics.observe(rt.path, r.Method, status, time.Since(start))
			}
		}()
		if rt.raw != nil {
			// Raw routes do their own authentication and authorization.
			if ok, wait := a.ipLimit.allow("ip:"+st.ip, a.now()); !ok {
				err = rateLimited("too many requests", wait)
				writeError(w, r, err)
				status = statusOf(novacron.ErrorCode(err))
				return
			}
			sw := &statusWriter{ResponseWriter: w}
			rt.raw(sw, r)
			status = sw.status
			return
		}
		if rt.ws != nil {
			a.serveWebSocket(rt, w, r, st, func(s int) {
				// A WebSocket is measured up to its upgrade, not
				// for as long as it stays open.
				a.metrics.observe(rt.path, r.Method, s, time.Since(start))
			})
			return
		}
		var body any
		body, err = a.serve(rt, w, r, st)
		if isMutating(r.Method) || rt.audit {
			defer a.audit(r, rt, st, err)
		}
		if err != nil {
			a.logFailure(rt, st, err)
			writeError(w, r, err)
			status = statusOf(novacron.ErrorCode(err))
			return
		}
		status = http.StatusOK
		if resp, ok := body.(*response); ok {
			for k, v := range resp.header {
				w.Header()[k] = v
			}
			status = resp.status
			body = resp.body
			if resp.raw != nil {
				w.WriteHeader(status)
				_, _ = w.Write(resp.raw)
				return
			}
			if resp.stream != nil {
				w.WriteHeader(status)
				// A stream is measured up to its header, not for as
				// long as it goes on.
				a.metrics.observe(rt.path, r.Method, status, time.Since(start))
				observed = true
				a.serveStream(w, r, st, rt, resp.stream)
				return
			}
		}
		writeJSON(w, status, body)
	})
}

// logFailure logs the errors that are the server's fault.
func (a *API) logFailure(rt *route, st *reqState, err error) {
	if code := novacron.ErrorCode(err); code == novacron.EInternal || code == novacron.EUnavailable || code == novacron.EOperationFailed {
		a.log.Error("request failed", "request_id", st.id, "action", rt.action, "err", err)
	}
}

// admit applies the rate limits, authenticates the caller and checks the
// route's policy. ws lets the caller of a WebSocket route authenticate the
// ways browsers can.
func (a *API) admit(rt *route, r *http.Request, st *reqState, ws bool) error {
	now := a.now()
	if ok, wait := a.ipLimit.allow("ip:"+st.ip, now); !ok {
		return rateLimited("too many requests from this address", wait)
	}
	if err := a.authenticate(r, st, ws); err != nil && rt.policy != auth.Public {
		return err
	}
	if st.actor != nil {
		if ok, wait := a.userLimit.allow("user:"+st.actor.UserID, now); !ok {
			return rateLimited("too many requests for this user", wait)
		}
	}
	return auth.Allowed(st.actor, rt.policy, auth.Target{})
}

func (a *API) serve(rt *route, w http.ResponseWriter, r *http.Request, st *reqState) (any, error) {
	now := a.now()
	if err := a.admit(rt, r, st, false); err != nil {
		return nil, err
	}
	if rt.upload > 0 {
		// A raw upload: its own limit, and the connection is closed when
		// it is exceeded rather than drained. Only now, once the caller
		// is known, may the body take longer than the server's read
		// timeout.
		r.Body = http.MaxBytesReader(w, r.Body, rt.upload)
		_ = http.NewResponseController(w).SetReadDeadline(now.Add(a.cfg.UploadTimeout))
	} else {
		r.Body = http.MaxBytesReader(nil, r.Body, MaxBodyBytes)
		if rt.long {
			// The body is read within the server's read timeout, which
			// is then lifted: when it passes, net/http cancels the
			// request's context, and the handler may run for longer.
			b, err := io.ReadAll(r.Body)
			if err != nil {
				return nil, decodeError(err)
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		}
	}
	return rt.h(r)
}

// authenticate resolves the bearer credential, if any. On public routes an
// invalid credential is ignored; everywhere else it is a 401.
func (a *API) authenticate(r *http.Request, st *reqState, ws bool) error {
	tok, err := credential(r, ws)
	if err != nil || tok == "" {
		return err
	}
	actor, err := a.auth.Authenticate(r.Context(), tok)
	if err != nil {
		return err
	}
	st.actor = actor
	return nil
}

// maxTokenLen bounds a bearer token.
const maxTokenLen = 4096

// credential returns the request's bearer token, or "" when it has none:
// the Authorization header or, on an upgrade to a WebSocket route (ws),
// ?token= or a bearer.<token> subprotocol. More than one is a 401: which
// one counts would be a guess.
func credential(r *http.Request, ws bool) (string, error) {
	var toks []string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > maxTokenLen {
			return "", novacron.Errorf(novacron.EUnauthorized, "Authorization must be \"Bearer <token>\"")
		}
		toks = append(toks, strings.TrimSpace(tok))
	}
	if ws && isWebSocketUpgrade(r) {
		for _, tok := range wsCredentials(r) {
			if tok == "" || len(tok) > maxTokenLen {
				return "", novacron.Errorf(novacron.EUnauthorized, "the token of a WebSocket is ?token=<token> or the subprotocol bearer.<token>")
			}
			toks = append(toks, tok)
		}
	}
	switch len(toks) {
	case 0:
		return "", nil
	case 1:
		return toks[0], nil
	}
	return "", novacron.Errorf(novacron.EUnauthorized, "more than one credential: send the token one way only")
}

// audit records a mutating request (or a call of a route marked audit),
// whatever its outcome.
func (a *API) audit(r *http.Request, rt *route, st *reqState, err error) {
	e := &novacron.AuditEntry{
		TS:         a.now().UTC(),
		Action:     rt.action,
		Resource:   rt.resource,
		ResourceID: st.resourceID,
		IP:         st.ip,
		UserAgent:  truncate(r.UserAgent(), 256),
		Success:    err == nil,
		RequestID:  st.id,
		Username:   st.username,
	}
	if e.ResourceID == "" {
		e.ResourceID = truncate(r.PathValue("id"), 64)
	}
	if st.actor != nil {
		e.UserID, e.Username, e.TenantID = st.actor.UserID, st.actor.Username, st.actor.TenantID
	}
	if err != nil {
		e.Error = novacron.ErrorCode(err) + ": " + novacron.ErrorMessage(err)
	}
	ctx, cancel := a.withTimeout(r.Context())
	defer cancel()
	if err := a.store.InsertAudit(ctx, e); err != nil {
		a.log.Error("audit record lost", "request_id", st.id, "action", rt.action, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
