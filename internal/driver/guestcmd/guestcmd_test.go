package guestcmd

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/novacron/novacron"
)

func TestCleanDirs(t *testing.T) {
	for _, tc := range []struct {
		in    string
		rel   string
		relOK bool
		abs   string
		absOK bool
	}{
		{".", "", true, "", false},
		{"a//b/", "a/b", true, "", false},
		{"./a/./b", "a/b", true, "", false},
		{"a/../b", "", false, "", false},
		{"..", "", false, "", false},
		{"/", "", false, "/", true},
		{"/srv//app/", "", false, "/srv/app", true},
		{"/srv/./app", "", false, "/srv/app", true},
		{"/srv/../etc", "", false, "", false},
		{"/a\x00b", "", false, "", false},
		{"/a..b/c..", "", false, "/a..b/c..", true},
	} {
		rel, relOK := CleanRelative(tc.in)
		abs, absOK := CleanAbsolute(tc.in)
		if rel != tc.rel || relOK != tc.relOK || abs != tc.abs || absOK != tc.absOK {
			t.Errorf("%q: CleanRelative = %q, %v; CleanAbsolute = %q, %v; want %q, %v; %q, %v",
				tc.in, rel, relOK, abs, absOK, tc.rel, tc.relOK, tc.abs, tc.absOK)
		}
	}
}

func TestObject(t *testing.T) {
	f, err := Object("config", json.RawMessage(` {"a": 1, "b": null} `), "a", "b", "c")
	if err != nil || len(f) != 2 || !IsNull(f["b"]) || IsNull(f["a"]) {
		t.Fatalf("Object = %v, %v", f, err)
	}
	for raw, field := range map[string]string{``: "config", `[]`: "config", `{"a":1,"zz":2,"y":3}`: "config.y", `{"a":`: "config"} {
		_, err := Object("config", json.RawMessage(raw), "a")
		var e *novacron.Error
		if !errors.As(err, &e) || e.Code != novacron.EInvalid || e.Details["field"] != field {
			t.Errorf("Object(%q) = %v, want an invalid_request error on %s", raw, err, field)
		}
	}
}

func TestCommandFieldNames(t *testing.T) {
	for raw, field := range map[string]string{
		`["/bin/sh", "a\u0000"]`: "x.command[1]",
		`["sh"]`:                 "x.command[0]",
		`[]`:                     "x.command",
		`"/bin/sh"`:              "x.command",
	} {
		_, err := Command("x.command", json.RawMessage(raw))
		var e *novacron.Error
		if !errors.As(err, &e) || e.Details["field"] != field {
			t.Errorf("Command(%s) = %v, want an error on %s", raw, err, field)
		}
	}
	cmd, err := Command("x", json.RawMessage(`["/bin/echo", "hi"]`))
	if err != nil || !slices.Equal(cmd, []string{"/bin/echo", "hi"}) {
		t.Fatalf("Command = %q, %v", cmd, err)
	}
}

func TestEnviron(t *testing.T) {
	got := Environ(map[string]string{"B": "2", "PATH": "/opt/bin", "A": "1"}, "/home/g")
	want := []string{"A=1", "B=2", "HOME=/home/g", "PATH=/opt/bin"}
	if !slices.Equal(got, want) {
		t.Fatalf("Environ = %q, want %q", got, want)
	}
}
