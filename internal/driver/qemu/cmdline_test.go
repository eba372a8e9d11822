package qemu

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdomanski/iso9660"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const goldenID = "0b6c3e8e-5a3b-4b8e-9d55-7f0f6b1c2d3e"

func goldenLaunch() launch {
	dir := "/var/lib/novacron/guests/qemu/" + goldenID
	return launch{ID: goldenID, Dir: dir, CPUs: 2, MemoryMB: 512, UID: 201234, GID: 201234,
		Accel: AccelTCG, ForwardAddress: "127.0.0.1"}
}

func TestBuildArgsGolden(t *testing.T) {
	kernel := goldenLaunch()
	kernel.Kernel = "/var/lib/novacron/images/9f1c/file"
	kernel.Initrd = "/var/lib/novacron/images/77aa/file"
	kernel.Cmdline = "console=ttyS0 quiet"

	disk := goldenLaunch()
	disk.Disk = disk.Dir + "/disk.qcow2"
	disk.Seed = disk.Dir + "/seed.iso"

	ports := goldenLaunch()
	ports.Disk = ports.Dir + "/disk.qcow2"
	ports.PortForwards = []PortForward{{HostPort: 20022, GuestPort: 22, Proto: "tcp"}, {HostPort: 20053, GuestPort: 53, Proto: "udp"}}
	ports.ForwardAddress = "10.0.0.5"

	kvm := goldenLaunch()
	kvm.Disk = kvm.Dir + "/disk.qcow2"
	kvm.Accel = AccelKVM

	commas := goldenLaunch()
	commas.Dir = "/srv/a,b/" + goldenID
	commas.Disk = commas.Dir + "/disk.qcow2"

	for name, l := range map[string]launch{"kernel": kernel, "disk-cloud-init": disk, "port-forwards": ports,
		"kvm": kvm, "tcg": goldenLaunch(), "commas": commas} {
		t.Run(name, func(t *testing.T) {
			if name == "tcg" {
				l.Disk = l.Dir + "/disk.qcow2"
			}
			got := []byte(strings.Join(buildArgs(l), "\n") + "\n")
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("buildArgs(%s) differs from %s (go test -update rewrites it):\n%s", name, path, got)
			}
		})
	}
}

func TestMACAddress(t *testing.T) {
	a, b := macAddress(goldenID), macAddress("1"+goldenID[1:])
	if a == b || !strings.HasPrefix(a, "52:54:00:") || len(a) != 17 || a != macAddress(goldenID) {
		t.Fatalf("macAddress: %s, %s", a, b)
	}
}

func TestSeedISO(t *testing.T) {
	var buf bytes.Buffer
	ci := CloudInit{UserData: "#cloud-config\npackages: [htop]\n", SSHAuthorizedKeys: []string{"ssh-ed25519 AAAA test@x"}, Hostname: "web1"}
	if err := writeSeed(&buf, goldenID, ci); err != nil {
		t.Fatal(err)
	}
	files := readISO(t, buf.Bytes())
	if files["user-data"] != ci.UserData {
		t.Errorf("user-data = %q, want %q", files["user-data"], ci.UserData)
	}
	md := files["meta-data"]
	for _, want := range []string{`"instance-id": "` + goldenID + `"`, `"local-hostname": "web1"`, `"ssh-ed25519 AAAA test@x"`} {
		if !strings.Contains(md, want) {
			t.Errorf("meta-data %q lacks %s", md, want)
		}
	}
}

// readISO returns the files of an ISO image's root directory and checks
// its volume label.
func readISO(t *testing.T, b []byte) map[string]string {
	t.Helper()
	img, err := iso9660.OpenImage(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if label, err := img.Label(); err != nil || label != "cidata" {
		t.Fatalf("volume label %q, %v; want cidata", label, err)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	children, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, c := range children {
		data := new(bytes.Buffer)
		if _, err := data.ReadFrom(c.Reader()); err != nil {
			t.Fatal(err)
		}
		files[c.Name()] = data.String()
	}
	return files
}

func TestTailLines(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 0, "a\nb\nc\n"},
		{"a\nb\nc\n", 5, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"", 3, ""},
	} {
		if got := string(tailLines([]byte(c.in), c.n)); got != c.want {
			t.Errorf("tailLines(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
