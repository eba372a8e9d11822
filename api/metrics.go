package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/novacron/novacron"
)

// MetricsRange is a range of time and a step for a metrics query. From and
// To are RFC 3339 times or durations relative to now ("-24h"); Step is a
// duration ("5m"). Empty fields take the server's defaults: the last hour,
// raw points or the smallest step giving at most 1000.
type MetricsRange struct {
	From, To, Step string
}

func (r MetricsRange) query(filters ...string) url.Values {
	return pageQuery(0, "", append(filters, "from", r.From, "to", r.To, "step", r.Step)...)
}

// VMMetrics is the answer of GET /api/vm/vms/{id}/metrics.
type VMMetrics struct {
	VMID   string             `json:"vm_id"`
	Points []novacron.VMPoint `json:"points"`
}

// HostSeries is the points of one node.
type HostSeries struct {
	NodeID string               `json:"node_id"`
	Points []novacron.HostPoint `json:"points"`
}

// HostMetrics is the answer of GET /api/monitoring/metrics.
type HostMetrics struct {
	Series []HostSeries `json:"series"`
}

// VMMetrics returns a VM's usage over a range.
func (c *Client) VMMetrics(ctx context.Context, id string, r MetricsRange) (*VMMetrics, error) {
	if err := requireID("vm", id); err != nil {
		return nil, err
	}
	var out VMMetrics
	if err := c.Do(ctx, http.MethodGet, "/api/vm/vms/"+url.PathEscape(id)+"/metrics", r.query(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// HostMetrics returns the usage of one node (every node when nodeID is
// empty) over a range; operators and admins.
func (c *Client) HostMetrics(ctx context.Context, nodeID string, r MetricsRange) (*HostMetrics, error) {
	var out HostMetrics
	if err := c.Do(ctx, http.MethodGet, "/api/monitoring/metrics", r.query("node_id", nodeID), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// LatestVMMetrics returns the latest sample of every VM the caller sees.
func (c *Client) LatestVMMetrics(ctx context.Context) ([]novacron.VMSample, error) {
	var out List[novacron.VMSample]
	if err := c.Do(ctx, http.MethodGet, "/api/monitoring/vms", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}
