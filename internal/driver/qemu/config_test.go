package qemu

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/novacron/novacron"
)

func TestParseConfig(t *testing.T) {
	long := strings.Repeat("a", maxCmdline+1)
	bigUserData, _ := json.Marshal(strings.Repeat("x", maxUserData+1))
	ok := []string{
		``,
		`null`,
		`{}`,
		`{"accel": "auto"}`,
		`{"accel": "kvm", "cmdline": "console=ttyS0"}`,
		`{"accel": "tcg", "kernel_image_id": "0b6c3e8e-5a3b-4b8e-9d55-7f0f6b1c2d3e", "initrd_image_id": "1b6c3e8e-5a3b-4b8e-9d55-7f0f6b1c2d3e"}`,
		`{"port_forwards": [{"host_port": 20000, "guest_port": 22, "proto": "tcp"}, {"host_port": 29999, "guest_port": 53, "proto": "udp"}]}`,
		`{"port_forwards": [{"host_port": 20080, "guest_port": 80}]}`,
		`{"port_forwards": [{"host_port": 20053, "guest_port": 53, "proto": "tcp"}, {"host_port": 20053, "guest_port": 53, "proto": "udp"}]}`,
		`{"cloud_init": {"user_data": "#cloud-config\n", "ssh_authorized_keys": ["ssh-ed25519 AAAA a@b"], "hostname": "web-1"}}`,
		`{"cloud_init": {}}`,
	}
	for _, c := range ok {
		if _, err := parseConfig(json.RawMessage(c), 20000, 29999); err != nil {
			t.Errorf("parseConfig(%s): %v", c, err)
		}
	}
	bad := []struct{ config, field string }{
		{`[1]`, "config"},
		{`"x"`, "config"},
		{`{"`, "config"},
		{`{"bogus": 1}`, "config.bogus"},
		{`{"accel": "xen"}`, "config.accel"},
		{`{"accel": 1}`, "config.accel"},
		{`{"cmdline": "` + long + `"}`, "config.cmdline"},
		{`{"cmdline": "a\nb"}`, "config.cmdline"},
		{`{"kernel_image_id": "../../etc/passwd"}`, "config.kernel_image_id"},
		{`{"kernel_image_id": "/boot/vmlinuz"}`, "config.kernel_image_id"},
		{`{"initrd_image_id": "0b6c3e8e-5a3b-4b8e-9d55-7f0f6b1c2d3e"}`, "config.initrd_image_id"},
		{`{"port_forwards": {}}`, "config.port_forwards"},
		{`{"port_forwards": [{"host_port": 22, "guest_port": 22}]}`, "config.port_forwards[0].host_port"},
		{`{"port_forwards": [{"host_port": 20001, "guest_port": 1}, {"host_port": 8090, "guest_port": 80}]}`, "config.port_forwards[1].host_port"},
		{`{"port_forwards": [{"host_port": 19999, "guest_port": 22}]}`, "config.port_forwards[0].host_port"},
		{`{"port_forwards": [{"host_port": 30000, "guest_port": 22}]}`, "config.port_forwards[0].host_port"},
		{`{"port_forwards": [{"guest_port": 22}]}`, "config.port_forwards[0].host_port"},
		{`{"port_forwards": [{"host_port": 20000, "guest_port": 0}]}`, "config.port_forwards[0].guest_port"},
		{`{"port_forwards": [{"host_port": 20000, "guest_port": 70000}]}`, "config.port_forwards[0].guest_port"},
		{`{"port_forwards": [{"host_port": 20000, "guest_port": 22, "proto": "sctp"}]}`, "config.port_forwards[0].proto"},
		{`{"port_forwards": [{"host_port": 20000, "guest_port": 22, "bind": "0.0.0.0"}]}`, "config.port_forwards[0].bind"},
		{`{"port_forwards": [{"host_port": 20000, "guest_port": 22}, {"host_port": 20000, "guest_port": 23}]}`, "config.port_forwards[1].host_port"},
		{`{"cloud_init": []}`, "config.cloud_init"},
		{`{"cloud_init": {"userdata": ""}}`, "config.cloud_init.userdata"},
		{`{"cloud_init": {"user_data": ` + string(bigUserData) + `}}`, "config.cloud_init.user_data"},
		{`{"cloud_init": {"ssh_authorized_keys": "ssh-rsa x"}}`, "config.cloud_init.ssh_authorized_keys"},
		{`{"cloud_init": {"ssh_authorized_keys": ["ok", "two\nlines"]}}`, "config.cloud_init.ssh_authorized_keys[1]"},
		{`{"cloud_init": {"hostname": "Web_1"}}`, "config.cloud_init.hostname"},
		{`{"cloud_init": {"hostname": "` + strings.Repeat("a", 64) + `"}}`, "config.cloud_init.hostname"},
		{`{"cloud_init": {"hostname": "-a"}}`, "config.cloud_init.hostname"},
	}
	for _, c := range bad {
		_, err := parseConfig(json.RawMessage(c.config), 20000, 29999)
		var e *novacron.Error
		if !novacron.IsCode(err, novacron.EInvalid) || !errors.As(err, &e) || e.Details["field"] != c.field {
			t.Errorf("parseConfig(%.80s) = %v, want invalid_request naming %s", c.config, err, c.field)
		}
	}
	// A range that holds 22 and 8090 still refuses them.
	for _, port := range []string{"22", "8090"} {
		_, err := parseConfig(json.RawMessage(`{"port_forwards": [{"host_port": `+port+`, "guest_port": 22}]}`), 1, 65535)
		if !novacron.IsCode(err, novacron.EInvalid) {
			t.Errorf("host port %s in range 1-65535: %v, want invalid_request", port, err)
		}
	}
}
