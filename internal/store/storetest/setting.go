package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/novacron/novacron"
)

func testSetting(t *testing.T, s Store) {
	c := ctx(t)
	_, err := s.GetSetting(c, "jwt.fingerprint")
	wantCode(t, err, novacron.ENotFound)

	v, err := s.SetSettingIfAbsent(c, "jwt.fingerprint", "first")
	noErr(t, err, "SetSettingIfAbsent")
	if v != "first" {
		t.Errorf("SetSettingIfAbsent = %q, want first", v)
	}
	v, err = s.SetSettingIfAbsent(c, "jwt.fingerprint", "second")
	noErr(t, err, "SetSettingIfAbsent again")
	if v != "first" {
		t.Errorf("SetSettingIfAbsent on a set key = %q, want the stored first", v)
	}
	v, err = s.GetSetting(c, "jwt.fingerprint")
	noErr(t, err, "GetSetting")
	if v != "first" {
		t.Errorf("GetSetting = %q, want first", v)
	}

	// An empty value is a value.
	v, err = s.SetSettingIfAbsent(c, "empty", "")
	noErr(t, err, "SetSettingIfAbsent empty")
	if v != "" {
		t.Errorf("SetSettingIfAbsent empty = %q", v)
	}
	v, err = s.SetSettingIfAbsent(c, "empty", "x")
	noErr(t, err, "SetSettingIfAbsent over empty")
	if v != "" {
		t.Errorf("SetSettingIfAbsent over an empty value = %q, want it kept", v)
	}
	_, err = s.GetSetting(c, "Jwt.fingerprint")
	wantCode(t, err, novacron.ENotFound)
}

// testSettingConcurrent races replicas starting at once: every one must see
// the value of the single winner.
func testSettingConcurrent(t *testing.T, s Store) {
	c := ctx(t)
	const n = 20
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = s.SetSettingIfAbsent(c, "ca.fingerprint", fmt.Sprintf("value-%d", i))
		}()
	}
	wg.Wait()
	for i := range n {
		noErr(t, errs[i], "SetSettingIfAbsent")
		if got[i] != got[0] {
			t.Fatalf("caller %d saw %q, caller 0 saw %q", i, got[i], got[0])
		}
	}
	v, err := s.GetSetting(c, "ca.fingerprint")
	noErr(t, err, "GetSetting")
	if v != got[0] {
		t.Errorf("GetSetting = %q, winners saw %q", v, got[0])
	}
}
