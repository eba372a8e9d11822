package process_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"

	"github.com/novacron/novacron/internal/driver"
	"github.com/novacron/novacron/internal/driver/process"
)

// TestMain lets the test binary be the shim, as the novacron binary is in
// production: the driver runs `<test binary> shim run …`, and the shim runs
// `<test binary> shim init` as the guest's init stage.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := process.RunShim(ctx, os.Args[2:])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		os.Exit(runAgent(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// runAgent plays an agent for TestAgentKilled: it starts guest ID of
// config in DIR, prints the guest's pid and waits to be killed.
func runAgent(args []string) int {
	if len(args) != 4 {
		fmt.Fprintln(os.Stderr, "agent: want DIR ID UID CONFIG")
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	d, err := process.New(process.Config{Dir: args[0], ShimCommand: []string{exe, "shim"}, CgroupParent: cgroupParent})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	uid, _ := strconv.Atoi(args[2])
	spec := driver.Spec{ID: args[1], UID: uid, GID: uid, Config: json.RawMessage(args[3])}
	ctx := context.Background()
	if err := d.Create(ctx, spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := d.Start(ctx, spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, err := d.Status(ctx, spec.ID)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(st.PID)
	select {}
}
