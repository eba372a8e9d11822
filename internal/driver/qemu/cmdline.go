package qemu

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// launch is everything QEMU's command line is made of, resolved: no
// decision about the host is left to buildArgs.
type launch struct {
	ID       string
	Dir      string // the guest's directory: sockets, pid file, logs
	CPUs     int
	MemoryMB int
	UID, GID int
	// Accel is kvm or tcg (auto resolved).
	Accel string
	// Disk is the guest's qcow2 disk, "" for none.
	Disk string
	// Seed is the cloud-init NoCloud ISO, "" for none.
	Seed string
	// Kernel, Initrd and Cmdline boot the guest directly; Kernel "" boots
	// from the disk.
	Kernel, Initrd, Cmdline string
	// PortForwards are forwarded from ForwardAddress on the host.
	PortForwards   []PortForward
	ForwardAddress string
}

// The files QEMU uses in a guest's directory.
const (
	qmpSock     = "qmp.sock"
	eventsSock  = "events.sock"
	consoleSock = "console.sock"
	consoleLog  = "console.log"
	pidFile     = "qemu.pid"
)

// buildArgs returns QEMU's arguments (without the binary) for l. It is a
// pure function: the golden tests pin its output.
func buildArgs(l launch) []string {
	path := func(name string) string { return escapeOpt(filepath.Join(l.Dir, name)) }
	machine := "q35,accel=" + l.Accel
	args := []string{
		"-name", "guest=" + escapeOpt(l.ID) + ",debug-threads=on",
		"-uuid", l.ID,
		"-nodefaults", "-no-user-config",
		// elevateprivileges stays allowed: -runas needs setuid; spawn too:
		// -daemonize forks.
		"-sandbox", "on,obsolete=deny,resourcecontrol=deny",
		"-machine", machine,
	}
	if l.Accel == AccelKVM {
		args = append(args, "-cpu", "host")
	}
	args = append(args,
		"-smp", strconv.Itoa(max(l.CPUs, 1)),
		"-m", strconv.Itoa(max(l.MemoryMB, 16)),
		"-display", "none",
		// A guest that powers off leaves QEMU in the "shutdown" state, so
		// the driver sees a clean power-off even when no agent was there
		// to hear it (it quits QEMU then).
		"-no-shutdown",
		// A guest that panics (and says so through pvpanic) is stopped,
		// in the "guest-panicked" state, for the driver to record.
		"-action", "panic=pause",
		"-device", "pvpanic",
		// QMP for commands, and a second monitor the driver keeps open to
		// hear events (QEMU serves one client per monitor).
		"-chardev", "socket,id=qmp,path="+path(qmpSock)+",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
		"-chardev", "socket,id=qmpev,path="+path(eventsSock)+",server=on,wait=off",
		"-mon", "chardev=qmpev,mode=control",
		// The log is opened O_APPEND, so that the driver can cap it by
		// copying and truncating it under a running QEMU.
		"-chardev", "socket,id=ser0,path="+path(consoleSock)+",server=on,wait=off,logfile="+path(consoleLog)+",logappend=on",
		"-serial", "chardev:ser0",
	)
	if l.Disk != "" {
		args = append(args,
			"-blockdev", "driver=file,node-name=disk0-file,filename="+escapeOpt(l.Disk)+",discard=unmap",
			"-blockdev", "driver=qcow2,node-name=disk0,file=disk0-file,discard=unmap",
			"-device", "virtio-blk-pci,drive=disk0,id=vda,bootindex=1",
		)
	}
	if l.Seed != "" {
		args = append(args,
			"-blockdev", "driver=file,node-name=seed-file,filename="+escapeOpt(l.Seed)+",read-only=on",
			"-blockdev", "driver=raw,node-name=seed,file=seed-file,read-only=on",
			"-device", "ide-cd,drive=seed,id=cidata",
		)
	}
	if l.Kernel != "" {
		args = append(args, "-kernel", l.Kernel)
		if l.Initrd != "" {
			args = append(args, "-initrd", l.Initrd)
		}
		if l.Cmdline != "" {
			args = append(args, "-append", l.Cmdline)
		}
	}
	netdev := "user,id=net0"
	for _, pf := range l.PortForwards {
		netdev += fmt.Sprintf(",hostfwd=%s:%s:%d-:%d", pf.Proto, l.ForwardAddress, pf.HostPort, pf.GuestPort)
	}
	args = append(args,
		"-netdev", netdev,
		"-device", "virtio-net-pci,netdev=net0,id=net0dev,mac="+macAddress(l.ID),
		"-pidfile", path(pidFile),
		"-runas", strconv.Itoa(l.UID)+":"+strconv.Itoa(l.GID),
		"-daemonize",
	)
	return args
}

// escapeOpt escapes a value inside a QEMU option list: commas double.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// macAddress derives a stable, locally administered MAC address from the
// guest's id (QEMU's 52:54:00 prefix).
func macAddress(id string) string {
	h := sha256.Sum256([]byte(id))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", h[0], h[1], h[2])
}
