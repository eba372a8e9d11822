package novacron

import "time"

// Metric values are in the units of the API: usages are percentages 0–100
// (of the VM's allocation; for a host, of the host), network rates are
// bytes per second, iops operations per second, host totals and
// availability bytes. A value that could not be measured is nil, never 0.

// VMPoint is one sample, or the average of several, of a VM's usage.
type VMPoint struct {
	TS          time.Time `json:"ts"`
	CPUUsage    *float64  `json:"cpu_usage"`
	MemoryUsage *float64  `json:"memory_usage"`
	DiskUsage   *float64  `json:"disk_usage"`
	NetworkSent *float64  `json:"network_sent"`
	NetworkRecv *float64  `json:"network_recv"`
	IOPS        *float64  `json:"iops"`
}

// VMSample is a VMPoint of one VM.
type VMSample struct {
	VMID     string `json:"vm_id"`
	TenantID string `json:"-"`
	NodeID   string `json:"node_id,omitempty"`
	VMPoint
}

// HostPoint is one sample, or the average of several, of a host's usage.
type HostPoint struct {
	TS              time.Time `json:"ts"`
	CPUUsage        *float64  `json:"cpu_usage"`
	MemoryUsage     *float64  `json:"memory_usage"`
	MemoryTotal     *float64  `json:"memory_total"`
	MemoryAvailable *float64  `json:"memory_available"`
	DiskUsage       *float64  `json:"disk_usage"`
	DiskTotal       *float64  `json:"disk_total"`
	DiskAvailable   *float64  `json:"disk_available"`
	NetworkSent     *float64  `json:"network_sent"`
	NetworkRecv     *float64  `json:"network_recv"`
	LoadAverage1    *float64  `json:"load_average_1"`
	LoadAverage5    *float64  `json:"load_average_5"`
	LoadAverage15   *float64  `json:"load_average_15"`
}

// HostSample is a HostPoint of one node.
type HostSample struct {
	NodeID string `json:"node_id"`
	HostPoint
}
