package httpapi

import (
	"net/http"
	"sort"
	"strings"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
)

// handlerFunc is a route's handler: it returns the body of a 200 answer, a
// *response for any other success, or an error.
type handlerFunc func(r *http.Request) (any, error)

// route is one entry of the route table: a method and path, who may call it,
// the action name the audit log records and the kind of resource it acts on.
type route struct {
	method   string
	path     string
	policy   auth.Policy
	action   string
	resource string
	h        handlerFunc
	// raw routes write their own answer (metrics, openapi) and are not JSON.
	raw http.HandlerFunc
	// ws, when set, makes the route a WebSocket (see websocket.go).
	ws wsHandler
	// audit records every call in the audit log, as for a mutating
	// request, whatever the method (opening a console is an action).
	audit bool
	// upload, when above 0, makes the request body a raw stream of at most
	// this many bytes, read within Config.UploadTimeout, instead of a JSON
	// document of at most MaxBodyBytes.
	upload int64
	// long routes may run longer than the server's read timeout (a
	// command, a followed log): their body is read first, then the read
	// deadline lifted.
	long bool
}

// routeTable is every route of the API with its permission beside it.
func (a *API) routeTable() []route {
	return []route{
		{method: "GET", path: "/health", policy: auth.Public, action: "system.health", h: a.health},
		{method: "GET", path: "/metrics", policy: auth.Public, action: "system.metrics", raw: a.serveMetrics},
		{method: "GET", path: "/api/info", policy: auth.Public, action: "system.info", h: a.info},
		{method: "GET", path: "/api/openapi.json", policy: auth.Public, action: "system.openapi", raw: a.serveOpenAPI},

		{method: "POST", path: "/auth/register", policy: auth.Public, action: "auth.register", resource: "user", h: a.register},
		{method: "POST", path: "/auth/login", policy: auth.Public, action: "auth.login", resource: "session", h: a.login},
		{method: "POST", path: "/auth/logout", policy: auth.Self, action: "auth.logout", resource: "session", h: a.logout},
		{method: "GET", path: "/auth/me", policy: auth.Self, action: "auth.me", resource: "user", h: a.me},

		{method: "GET", path: "/api/tokens", policy: auth.Self, action: "token.list", resource: "token", h: a.listTokens},
		{method: "POST", path: "/api/tokens", policy: auth.Self, action: "token.create", resource: "token", h: a.createToken},
		{method: "DELETE", path: "/api/tokens/{id}", policy: auth.Self, action: "token.delete", resource: "token", h: a.deleteToken},

		{method: "GET", path: "/api/users", policy: auth.Admin, action: "user.list", resource: "user", h: a.listUsers},
		{method: "POST", path: "/api/users", policy: auth.Admin, action: "user.create", resource: "user", h: a.createUser},
		{method: "GET", path: "/api/users/{id}", policy: auth.Admin, action: "user.get", resource: "user", h: a.getUser},
		{method: "PUT", path: "/api/users/{id}", policy: auth.Admin, action: "user.update", resource: "user", h: a.updateUser},
		{method: "DELETE", path: "/api/users/{id}", policy: auth.Admin, action: "user.delete", resource: "user", h: a.deleteUser},
		{method: "DELETE", path: "/api/users/{id}/sessions", policy: auth.Admin, action: "user.revoke_sessions", resource: "user", h: a.revokeUserSessions},

		{method: "GET", path: "/api/tenants", policy: auth.Member, action: "tenant.list", resource: "tenant", h: a.listTenants},
		{method: "POST", path: "/api/tenants", policy: auth.Admin, action: "tenant.create", resource: "tenant", h: a.createTenant},
		{method: "GET", path: "/api/tenants/{id}", policy: auth.Member, action: "tenant.get", resource: "tenant", h: a.getTenant},
		{method: "PUT", path: "/api/tenants/{id}", policy: auth.Admin, action: "tenant.update", resource: "tenant", h: a.updateTenant},
		{method: "DELETE", path: "/api/tenants/{id}", policy: auth.Admin, action: "tenant.delete", resource: "tenant", h: a.deleteTenant},

		{method: "GET", path: "/api/audit", policy: auth.Operator, action: "audit.list", resource: "audit", h: a.listAudit},

		{method: "GET", path: "/api/vm/vms", policy: auth.Member, action: "vm.list", resource: "vm", h: a.listVMs},
		{method: "POST", path: "/api/vm/vms", policy: auth.Member, action: "vm.create", resource: "vm", h: a.createVM},
		{method: "GET", path: "/api/vm/vms/{id}", policy: auth.Member, action: "vm.get", resource: "vm", h: a.getVM},
		{method: "PUT", path: "/api/vm/vms/{id}", policy: auth.Member, action: "vm.update", resource: "vm", h: a.updateVM},
		{method: "DELETE", path: "/api/vm/vms/{id}", policy: auth.Member, action: "vm.delete", resource: "vm", h: a.deleteVM},
		{method: "POST", path: "/api/vm/vms/{id}/start", policy: auth.Member, action: "vm.start", resource: "vm", h: a.vmAction(novacron.ActionStart)},
		{method: "POST", path: "/api/vm/vms/{id}/stop", policy: auth.Member, action: "vm.stop", resource: "vm", h: a.vmAction(novacron.ActionStop)},
		{method: "POST", path: "/api/vm/vms/{id}/restart", policy: auth.Member, action: "vm.restart", resource: "vm", h: a.vmAction(novacron.ActionRestart)},
		{method: "POST", path: "/api/vm/vms/{id}/pause", policy: auth.Member, action: "vm.pause", resource: "vm", h: a.vmAction(novacron.ActionPause)},
		{method: "POST", path: "/api/vm/vms/{id}/resume", policy: auth.Member, action: "vm.resume", resource: "vm", h: a.vmAction(novacron.ActionResume)},
		{method: "GET", path: "/api/vm/vms/{id}/logs", policy: auth.Member, action: "vm.logs", resource: "vm", h: a.vmLogs, long: true},
		// Commands are interactive: the VM service lets in only the VM's
		// owner and its tenant's operators and admins (auth.Interactive).
		{method: "POST", path: "/api/vm/vms/{id}/exec", policy: auth.Member, action: "vm.exec", resource: "vm", h: a.vmExec, long: true},
		{method: "GET", path: "/api/vm/vms/{id}/exec", policy: auth.Member, action: "vm.exec_interactive", resource: "vm", ws: a.vmExecInteractive, audit: true},
		// The console is interactive: the handler lets in only the VM's
		// owner and its tenant's operators and admins (auth.Interactive).
		{method: "GET", path: "/api/vm/vms/{id}/console", policy: auth.Member, action: "vm.console", resource: "vm", ws: a.vmConsole, audit: true},
		{method: "GET", path: "/api/vm/vms/{id}/console/log", policy: auth.Member, action: "vm.console_log", resource: "vm", h: a.vmConsoleLog},
		{method: "GET", path: "/api/vm/vms/{id}/stats", policy: auth.Member, action: "vm.stats", resource: "vm", h: a.vmStats},
		{method: "GET", path: "/api/vm/vms/{id}/metrics", policy: auth.Member, action: "vm.metrics", resource: "vm", h: a.vmMetrics},

		{method: "GET", path: "/api/operations", policy: auth.Member, action: "operation.list", resource: "operation", h: a.listOperations},
		{method: "GET", path: "/api/operations/{id}", policy: auth.Member, action: "operation.get", resource: "operation", h: a.getOperation},

		{method: "GET", path: "/api/images", policy: auth.Member, action: "image.list", resource: "image", h: a.listImages},
		{method: "POST", path: "/api/images", policy: auth.Member, action: "image.upload", resource: "image", h: a.uploadImage, upload: a.uploadLimit()},
		{method: "GET", path: "/api/images/{id}", policy: auth.Member, action: "image.get", resource: "image", h: a.getImage},
		{method: "DELETE", path: "/api/images/{id}", policy: auth.Member, action: "image.delete", resource: "image", h: a.deleteImage},

		// Events of the caller's tenant (admins: all; nodes: operators
		// and admins, as GET /api/nodes), filtered by ?types= and ?vm_id=.
		{method: "GET", path: "/ws/monitoring", policy: auth.Member, action: "monitoring.stream", resource: "monitoring", ws: a.monitoringStream, audit: true},

		{method: "GET", path: "/api/nodes", policy: auth.Operator, action: "node.list", resource: "node", h: a.listNodes},
		{method: "GET", path: "/api/nodes/{id}", policy: auth.Operator, action: "node.get", resource: "node", h: a.getNode},

		// Alerts are seen by every member of their tenant (those on hosts
		// and other cluster-wide ones by admins); rules are managed by
		// operators (their tenant's VMs) and admins (anything).
		{method: "GET", path: "/api/monitoring/alerts", policy: auth.Member, action: "alert.list", resource: "alert", h: a.listAlerts},
		{method: "POST", path: "/api/monitoring/alerts/{id}/acknowledge", policy: auth.Operator, action: "alert.acknowledge", resource: "alert", h: a.acknowledgeAlert},
		{method: "GET", path: "/api/monitoring/alert-rules", policy: auth.Operator, action: "alert_rule.list", resource: "alert_rule", h: a.listAlertRules},
		{method: "POST", path: "/api/monitoring/alert-rules", policy: auth.Operator, action: "alert_rule.create", resource: "alert_rule", h: a.createAlertRule},
		{method: "GET", path: "/api/monitoring/alert-rules/{id}", policy: auth.Operator, action: "alert_rule.get", resource: "alert_rule", h: a.getAlertRule},
		{method: "PUT", path: "/api/monitoring/alert-rules/{id}", policy: auth.Operator, action: "alert_rule.update", resource: "alert_rule", h: a.updateAlertRule},
		{method: "DELETE", path: "/api/monitoring/alert-rules/{id}", policy: auth.Operator, action: "alert_rule.delete", resource: "alert_rule", h: a.deleteAlertRule},
		// Host metrics are the nodes': who sees nodes sees them.
		{method: "GET", path: "/api/monitoring/metrics", policy: auth.Operator, action: "monitoring.host_metrics", resource: "node", h: a.hostMetrics},
		{method: "GET", path: "/api/monitoring/vms", policy: auth.Member, action: "monitoring.vms", resource: "vm", h: a.latestVMMetrics},
	}
}

// buildMux registers every path once, with a dispatcher on the method, so
// that a wrong method and an unknown path answer in the API's error shape.
func (a *API) buildMux() *http.ServeMux {
	mux := http.NewServeMux()
	byPath := map[string]map[string]http.Handler{}
	var paths []string
	for i := range a.routes {
		rt := &a.routes[i]
		if byPath[rt.path] == nil {
			byPath[rt.path] = map[string]http.Handler{}
			paths = append(paths, rt.path)
		}
		byPath[rt.path][rt.method] = a.wrap(rt)
	}
	for _, p := range paths {
		methods := byPath[p]
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		if _, ok := methods["GET"]; ok {
			allow = append(allow, "HEAD")
		}
		sort.Strings(allow)
		allowHeader := strings.Join(allow, ", ")
		mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m := r.Method
			if m == http.MethodHead {
				m = http.MethodGet
			}
			h := methods[m]
			if h == nil {
				w.Header().Set("Allow", allowHeader)
				writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errorDetail{
					Code: novacron.EInvalid, Message: "method " + r.Method + " not allowed; allowed: " + allowHeader,
					RequestID: w.Header().Get("X-Request-ID")}})
				return
			}
			h.ServeHTTP(w, r)
		}))
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, novacron.Errorf(novacron.ENotFound, "no such endpoint"))
	}))
	return mux
}
