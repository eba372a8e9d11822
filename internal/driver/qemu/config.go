package qemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/novacron/novacron"
)

// Limits of a guest's driver config.
const (
	maxCmdline      = 4096
	maxUserData     = 64 << 10
	maxSSHKeys      = 64
	maxSSHKeyBytes  = 16 << 10
	maxPortForwards = 32
)

// Accelerators.
const (
	AccelAuto = "auto" // KVM when QEMU can use it, else TCG
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// Host ports never forwarded, whatever the range: SSH and the API.
var reservedPorts = []int{22, 8090}

var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// guestConfig is a qemu VM's driver config:
//
//	{"accel": "tcg", "cmdline": "console=ttyS0",
//	 "kernel_image_id": "…", "initrd_image_id": "…",
//	 "port_forwards": [{"host_port": 20022, "guest_port": 22, "proto": "tcp"}],
//	 "cloud_init": {"user_data": "#cloud-config\n…", "ssh_authorized_keys": ["ssh-ed25519 …"], "hostname": "web1"}}
type guestConfig struct {
	// Accel overrides the node's accelerator: auto, kvm or tcg.
	Accel string `json:"accel,omitempty"`
	// Cmdline is the kernel command line of a guest booted from a kernel.
	Cmdline string `json:"cmdline,omitempty"`
	// KernelImageID and InitrdImageID name images the agent resolves into
	// Spec.Kernel and Spec.Initrd; the driver only checks their shape.
	KernelImageID string        `json:"kernel_image_id,omitempty"`
	InitrdImageID string        `json:"initrd_image_id,omitempty"`
	PortForwards  []PortForward `json:"port_forwards,omitempty"`
	CloudInit     *CloudInit    `json:"cloud_init,omitempty"`
}

// PortForward forwards a host port to a guest port over user-mode
// networking.
type PortForward struct {
	HostPort  int    `json:"host_port"`
	GuestPort int    `json:"guest_port"`
	Proto     string `json:"proto"`
}

// CloudInit is what a NoCloud seed gives a cloud image.
type CloudInit struct {
	UserData          string   `json:"user_data,omitempty"`
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys,omitempty"`
	Hostname          string   `json:"hostname,omitempty"`
}

// parseConfig strictly decodes and checks a driver config against the
// driver's port range. Errors are invalid_request errors naming the field
// ("config.port_forwards[0].host_port").
func parseConfig(raw json.RawMessage, portMin, portMax int) (guestConfig, error) {
	var c guestConfig
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return c, nil
	}
	fields, err := object(raw, "config")
	if err != nil {
		return c, err
	}
	if err := knownFields(fields, "config", "accel", "cmdline", "kernel_image_id", "initrd_image_id", "port_forwards", "cloud_init"); err != nil {
		return c, err
	}
	if err := str(fields, "config.accel", "accel", &c.Accel); err != nil {
		return c, err
	}
	switch c.Accel {
	case "", AccelAuto, AccelKVM, AccelTCG:
	default:
		return c, novacron.FieldError("config.accel", "must be auto, kvm or tcg")
	}
	if err := str(fields, "config.cmdline", "cmdline", &c.Cmdline); err != nil {
		return c, err
	}
	if len(c.Cmdline) > maxCmdline {
		return c, novacron.FieldError("config.cmdline", "must be at most %d bytes", maxCmdline)
	}
	if strings.ContainsAny(c.Cmdline, "\x00\n\r") {
		return c, novacron.FieldError("config.cmdline", "must be one line without NUL bytes")
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"kernel_image_id", &c.KernelImageID}, {"initrd_image_id", &c.InitrdImageID}} {
		if err := str(fields, "config."+f.key, f.key, f.dst); err != nil {
			return c, err
		}
		if *f.dst != "" {
			if u, err := uuid.Parse(*f.dst); err != nil || u.String() != strings.ToLower(*f.dst) {
				return c, novacron.FieldError("config."+f.key, "must be an image id (a UUID)")
			}
		}
	}
	if c.InitrdImageID != "" && c.KernelImageID == "" {
		return c, novacron.FieldError("config.initrd_image_id", "needs a kernel_image_id")
	}
	if pf, ok := fields["port_forwards"]; ok && !isNull(pf) {
		if c.PortForwards, err = parsePortForwards(pf, portMin, portMax); err != nil {
			return c, err
		}
	}
	if ci, ok := fields["cloud_init"]; ok && !isNull(ci) {
		if c.CloudInit, err = parseCloudInit(ci); err != nil {
			return c, err
		}
	}
	return c, nil
}

func parsePortForwards(raw json.RawMessage, portMin, portMax int) ([]PortForward, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, novacron.FieldError("config.port_forwards", "must be an array of {host_port, guest_port, proto}")
	}
	if len(items) > maxPortForwards {
		return nil, novacron.FieldError("config.port_forwards", "must have at most %d entries", maxPortForwards)
	}
	out := make([]PortForward, 0, len(items))
	seen := map[string]bool{}
	for i, item := range items {
		field := fmt.Sprintf("config.port_forwards[%d]", i)
		fields, err := object(item, field)
		if err != nil {
			return nil, err
		}
		if err := knownFields(fields, field, "host_port", "guest_port", "proto"); err != nil {
			return nil, err
		}
		var pf PortForward
		for _, p := range []struct {
			key string
			dst *int
		}{{"host_port", &pf.HostPort}, {"guest_port", &pf.GuestPort}} {
			v, ok := fields[p.key]
			if !ok || isNull(v) || json.Unmarshal(v, p.dst) != nil {
				return nil, novacron.FieldError(field+"."+p.key, "required: a port number")
			}
		}
		if err := str(fields, field+".proto", "proto", &pf.Proto); err != nil {
			return nil, err
		}
		switch pf.Proto {
		case "":
			pf.Proto = "tcp"
		case "tcp", "udp":
		default:
			return nil, novacron.FieldError(field+".proto", "must be tcp or udp")
		}
		if slices.Contains(reservedPorts, pf.HostPort) || pf.HostPort < portMin || pf.HostPort > portMax {
			return nil, novacron.FieldError(field+".host_port", "must be in this node's range %d-%d (never 22 or 8090)", portMin, portMax)
		}
		if pf.GuestPort < 1 || pf.GuestPort > 65535 {
			return nil, novacron.FieldError(field+".guest_port", "must be between 1 and 65535")
		}
		key := fmt.Sprintf("%s/%d", pf.Proto, pf.HostPort)
		if seen[key] {
			return nil, novacron.FieldError(field+".host_port", "%s is forwarded twice", key)
		}
		seen[key] = true
		out = append(out, pf)
	}
	return out, nil
}

func parseCloudInit(raw json.RawMessage) (*CloudInit, error) {
	const field = "config.cloud_init"
	fields, err := object(raw, field)
	if err != nil {
		return nil, err
	}
	if err := knownFields(fields, field, "user_data", "ssh_authorized_keys", "hostname"); err != nil {
		return nil, err
	}
	ci := &CloudInit{}
	if err := str(fields, field+".user_data", "user_data", &ci.UserData); err != nil {
		return nil, err
	}
	if len(ci.UserData) > maxUserData {
		return nil, novacron.FieldError(field+".user_data", "must be at most %d bytes", maxUserData)
	}
	if keys, ok := fields["ssh_authorized_keys"]; ok && !isNull(keys) {
		if err := json.Unmarshal(keys, &ci.SSHAuthorizedKeys); err != nil {
			return nil, novacron.FieldError(field+".ssh_authorized_keys", "must be an array of strings")
		}
		if len(ci.SSHAuthorizedKeys) > maxSSHKeys {
			return nil, novacron.FieldError(field+".ssh_authorized_keys", "must have at most %d keys", maxSSHKeys)
		}
		for i, k := range ci.SSHAuthorizedKeys {
			if k == "" || len(k) > maxSSHKeyBytes || strings.ContainsAny(k, "\x00\n\r") {
				return nil, novacron.FieldError(fmt.Sprintf("%s.ssh_authorized_keys[%d]", field, i), "must be one non-empty line of at most %d bytes", maxSSHKeyBytes)
			}
		}
	}
	if err := str(fields, field+".hostname", "hostname", &ci.Hostname); err != nil {
		return nil, err
	}
	if ci.Hostname != "" && !hostnameRE.MatchString(ci.Hostname) {
		return nil, novacron.FieldError(field+".hostname", "must be a DNS label: 1 to 63 lower-case letters, digits and inner hyphens")
	}
	return ci, nil
}

// object decodes a JSON object into its fields.
func object(raw json.RawMessage, field string) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &fields) != nil {
		return nil, novacron.FieldError(field, "must be a JSON object")
	}
	return fields, nil
}

// knownFields rejects the first unknown key, in sorted order.
func knownFields(fields map[string]json.RawMessage, field string, known ...string) error {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return novacron.FieldError(field+"."+fieldName(k), "unknown field (known: %s)", strings.Join(known, ", "))
		}
	}
	return nil
}

// str decodes the optional string fields[key] into dst.
func str(fields map[string]json.RawMessage, field, key string, dst *string) error {
	v, ok := fields[key]
	if !ok || isNull(v) {
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return novacron.FieldError(field, "must be a string")
	}
	return nil
}

// fieldName shortens an unknown key for an error message.
func fieldName(k string) string {
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	return strings.ToValidUTF8(k, "?")
}

func isNull(r json.RawMessage) bool { return string(bytes.TrimSpace(r)) == "null" }
