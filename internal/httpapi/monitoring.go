package httpapi

import (
	"net/http"

	"github.com/novacron/novacron"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/monitor"
)

// vmMetricsBody is the answer of GET /api/vm/vms/{id}/metrics.
type vmMetricsBody struct {
	VMID   string             `json:"vm_id"`
	Points []novacron.VMPoint `json:"points"`
}

// hostMetricsBody is the answer of GET /api/monitoring/metrics.
type hostMetricsBody struct {
	Series []monitor.HostSeries `json:"series"`
}

func (a *API) monitor() (*monitor.Service, error) {
	if a.cfg.Metrics == nil {
		return nil, novacron.Errorf(novacron.EUnavailable, "metrics are not kept by this server")
	}
	return a.cfg.Metrics, nil
}

// metricsQuery reads ?from=, ?to= and ?step= and resolves them.
func (a *API) metricsQuery(r *http.Request, m *monitor.Service) (monitor.Query, error) {
	var q monitor.Query
	now := a.now()
	var err error
	if q.From, err = timeParam(r, "from", now); err != nil {
		return q, err
	}
	if q.To, err = timeParam(r, "to", now); err != nil {
		return q, err
	}
	if q.Step, err = durationParam("step", r.URL.Query().Get("step")); err != nil {
		return q, err
	}
	return m.Resolve(q)
}

func (a *API) vmMetrics(r *http.Request) (any, error) {
	m, err := a.monitor()
	if err != nil {
		return nil, err
	}
	actor := stateOf(r).actor
	// The VM service decides who sees the VM: another tenant's is 404.
	vm, err := a.vms.Get(r.Context(), actor, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	q, err := a.metricsQuery(r, m)
	if err != nil {
		return nil, err
	}
	ps, err := m.QueryVM(r.Context(), auth.ScopeOf(actor), vm.ID, q)
	if err != nil {
		return nil, err
	}
	if ps == nil {
		ps = []novacron.VMPoint{}
	}
	return vmMetricsBody{VMID: vm.ID, Points: ps}, nil
}

func (a *API) hostMetrics(r *http.Request) (any, error) {
	m, err := a.monitor()
	if err != nil {
		return nil, err
	}
	node := r.URL.Query().Get("node_id")
	if node != "" {
		n, err := a.store.GetNode(r.Context(), node)
		if novacron.IsCode(err, novacron.ENotFound) {
			return nil, novacron.FieldError("node_id", "no such node")
		}
		if err != nil {
			return nil, err
		}
		node = n.ID
	}
	q, err := a.metricsQuery(r, m)
	if err != nil {
		return nil, err
	}
	ss, err := m.QueryHosts(r.Context(), node, q)
	if err != nil {
		return nil, err
	}
	return hostMetricsBody{Series: ss}, nil
}

func (a *API) latestVMMetrics(r *http.Request) (any, error) {
	m, err := a.monitor()
	if err != nil {
		return nil, err
	}
	ls, err := m.LatestVMs(r.Context(), auth.ScopeOf(stateOf(r).actor))
	if err != nil {
		return nil, err
	}
	return newList(ls, ""), nil
}
