// Package nodeclient is the control plane's view of a node: one interface
// that the VM service calls, satisfied in-process by the agent in the
// all-in-one server and, in a cluster, by a client over mutual TLS. The
// control plane never calls a driver directly.
package nodeclient

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/novacron/novacron/internal/driver"
)

// NodeInfo describes a node and what it can run.
type NodeInfo struct {
	Name    string                         `json:"name"`
	Drivers map[string]driver.Capabilities `json:"drivers"`
	CPUs    int                            `json:"cpus"`
	// MemoryMB is the host's memory.
	MemoryMB int64 `json:"memory_mb"`
	// FreshBoot is true when the host booted since the agent last ran:
	// autostart VMs start then.
	FreshBoot bool `json:"fresh_boot"`
}

// Guest is a guest a node holds, as its driver sees it.
type Guest struct {
	ID     string        `json:"id"`
	Driver string        `json:"driver"`
	Status driver.Status `json:"status"`
	// Err is set when the driver could not report the guest's status this
	// time; Status is then unknown and must not be acted on.
	Err string `json:"error,omitempty"`
}

// GuestSpec is what the control plane asks a node to create. The Spec's
// file fields are the node's to fill from Images.
type GuestSpec struct {
	Driver string `json:"driver"`
	driver.Spec
	Images GuestImages `json:"images"`
}

// ImageRef names an image a guest needs; the node fetches it by ID from the
// control plane on first use and checks it against SHA256.
type ImageRef struct {
	ID     string `json:"id"`
	Format string `json:"format"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Command is a rootfs image's default command.
	Command []string `json:"command,omitempty"`
}

// GuestImages are the images of a guest: its disk's base, or the kernel and
// initrd it boots.
type GuestImages struct {
	Base   *ImageRef `json:"base,omitempty"`
	Kernel *ImageRef `json:"kernel,omitempty"`
	Initrd *ImageRef `json:"initrd,omitempty"`
}

// Client is a node. Errors carry the novacron error codes: ENotFound for a
// guest the node does not hold, EInvalid for a config the driver rejects,
// EInvalidState for an action the guest's state forbids; anything else is
// a failure of the node.
type Client interface {
	Info(ctx context.Context) (NodeInfo, error)
	// ValidateConfig checks a VM's driver config with the node's driver.
	ValidateConfig(ctx context.Context, driverName string, config json.RawMessage) error
	// CreateGuest prepares a guest; idempotent for the same spec. The node
	// assigns the guest's unprivileged uid.
	CreateGuest(ctx context.Context, spec GuestSpec) error
	// StartGuest starts a guest and returns once it runs.
	StartGuest(ctx context.Context, id string) error
	// StopGuest stops a guest: gracefully, then forcibly after timeout.
	StopGuest(ctx context.Context, id string, timeout time.Duration, force bool) error
	PauseGuest(ctx context.Context, id string) error
	ResumeGuest(ctx context.Context, id string) error
	// DeleteGuest removes a stopped guest and all it left; an unknown id is
	// a no-op.
	DeleteGuest(ctx context.Context, id string) error
	GuestStatus(ctx context.Context, id string) (driver.Status, error)
	// ListGuests lists every guest the node holds, known to the control
	// plane or not.
	ListGuests(ctx context.Context) ([]Guest, error)
	GuestLogs(ctx context.Context, id string, tail int) ([]byte, error)
	// RestartGuest resets a running guest in place, for drivers that can
	// (Capabilities.Restart).
	RestartGuest(ctx context.Context, id string) error
	// GuestConsole connects to a running guest's interactive console
	// (Capabilities.Console); one connection at a time per guest.
	GuestConsole(ctx context.Context, id string) (io.ReadWriteCloser, error)
	// GuestStats samples a running guest's resource use
	// (Capabilities.Stats).
	GuestStats(ctx context.Context, id string) (driver.Stats, error)
	// WatchGuests calls changed with a guest's id whenever the node sees
	// its state change, until ctx ends; it returns then. changed must not
	// block. Guests of drivers that cannot watch are only seen by
	// ListGuests.
	WatchGuests(ctx context.Context, changed func(id string))
	// FollowGuestLogs writes the last tail lines of a guest's output, then
	// its output as it is written, until the guest's run ends or ctx ends
	// (Capabilities.FollowLogs).
	FollowGuestLogs(ctx context.Context, id string, tail int, w io.Writer) error
	// ExecGuest runs a command in a running guest to its end
	// (Capabilities.Exec).
	ExecGuest(ctx context.Context, id string, req driver.ExecRequest) (driver.ExecResult, error)
	// ExecGuestInteractive starts a command in a running guest and returns
	// it running; ctx bounds it, the caller closes it.
	ExecGuestInteractive(ctx context.Context, id string, req driver.ExecRequest) (driver.ExecSession, error)
}
