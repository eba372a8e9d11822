package images

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/novacron/novacron"
)

// InspectLimits bound a qemu-img run on an untrusted file.
type InspectLimits struct {
	// QemuImg is the program (default "qemu-img" on the PATH).
	QemuImg string
	// Timeout ends the run (default 30s).
	Timeout time.Duration
	// AddressSpace is RLIMIT_AS in bytes (default 1 GiB).
	AddressSpace int64
	// CPUSeconds is RLIMIT_CPU (default 10).
	CPUSeconds int
}

// DefaultInspect are the limits of the zero InspectLimits.
var DefaultInspect = InspectLimits{QemuImg: "qemu-img", Timeout: 30 * time.Second, AddressSpace: 1 << 30, CPUSeconds: 10}

func (l InspectLimits) withDefaults() InspectLimits {
	if l.QemuImg == "" {
		l.QemuImg = DefaultInspect.QemuImg
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultInspect.Timeout
	}
	if l.AddressSpace <= 0 {
		l.AddressSpace = DefaultInspect.AddressSpace
	}
	if l.CPUSeconds <= 0 {
		l.CPUSeconds = DefaultInspect.CPUSeconds
	}
	return l
}

// invalid is the EInvalid error of a file that is not what its format says.
func invalid(format, why string, args ...any) error {
	return &novacron.Error{Code: novacron.EInvalid, Message: "not a valid " + format + " image: " + fmt.Sprintf(why, args...),
		Details: map[string]any{"field": "format"}}
}

// Validate checks that the file at path is an image of the format: qcow2
// by its header and then qemu-img (no backing file, no external data file,
// no encryption), raw by qemu-img told it is raw, a kernel by the bzImage
// header, an initrd by the magic of a compressor or of cpio, a root file
// system by every entry of the tarball (CheckRootfs with the default
// limits; Upload checks rootfs tarballs as they stream, with its own). It
// returns EInvalid naming the reason, or the error that kept it from
// deciding.
func Validate(ctx context.Context, path, format string, lim InspectLimits) error {
	if format == novacron.ImageRootfs {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("images: %w", err)
		}
		defer f.Close()
		return CheckRootfs(ctx, f, RootfsLimits{})
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	head := make([]byte, 1024)
	n, err := io.ReadFull(f, head)
	f.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("images: read %s: %w", path, err)
	}
	head = head[:n]
	switch format {
	case novacron.ImageQCOW2:
		if err := checkQCOW2Header(head); err != nil {
			return err
		}
		return inspect(ctx, path, format, lim)
	case novacron.ImageRaw:
		return inspect(ctx, path, format, lim)
	case novacron.ImageKernel:
		return checkKernel(head)
	case novacron.ImageInitrd:
		return checkInitrd(head)
	}
	return novacron.FieldError("format", "unknown format %q", format)
}

// qcow2IncompatDataFile is the incompatible feature bit of an external
// data file.
const qcow2IncompatDataFile = 1 << 2

// checkQCOW2Header reads the qcow2 header: the magic, a version qemu
// knows, no backing file and (version 3) no external data file. qemu-img
// checks again; this does not depend on its version.
func checkQCOW2Header(h []byte) error {
	if len(h) < 72 || !bytes.Equal(h[:4], []byte{'Q', 'F', 'I', 0xfb}) {
		return invalid(novacron.ImageQCOW2, "no qcow2 header")
	}
	version := binary.BigEndian.Uint32(h[4:8])
	if version != 2 && version != 3 {
		return invalid(novacron.ImageQCOW2, "unsupported version %d", version)
	}
	if off := binary.BigEndian.Uint64(h[8:16]); off != 0 {
		return invalid(novacron.ImageQCOW2, "it has a backing file")
	}
	if version == 3 {
		if len(h) < 80 {
			return invalid(novacron.ImageQCOW2, "truncated header")
		}
		if binary.BigEndian.Uint64(h[72:80])&qcow2IncompatDataFile != 0 {
			return invalid(novacron.ImageQCOW2, "it has an external data file")
		}
	}
	return nil
}

func checkKernel(h []byte) error {
	if len(h) < 0x206 || string(h[0x202:0x206]) != "HdrS" {
		return invalid(novacron.ImageKernel, "no bzImage header (HdrS at 0x202)")
	}
	return nil
}

// initrdMagic are the starts of the initrd archives the Linux kernel
// unpacks: compressed (gzip, xz, zstd, bzip2, lz4) or plain cpio.
var initrdMagic = [][]byte{
	{0x1f, 0x8b}, {0xfd, '7', 'z', 'X', 'Z', 0}, {0x28, 0xb5, 0x2f, 0xfd}, []byte("BZh"), {0x02, 0x21, 0x4c, 0x18},
	[]byte("070701"), []byte("070702"), []byte("070707"),
}

func checkInitrd(h []byte) error {
	for _, m := range initrdMagic {
		if bytes.HasPrefix(h, m) {
			return nil
		}
	}
	return invalid(novacron.ImageInitrd, "not a gzip, xz, zstd, bzip2, lz4 or cpio archive")
}

// qemuInfo is the part of `qemu-img info --output=json` that is checked.
type qemuInfo struct {
	Format              string `json:"format"`
	VirtualSize         int64  `json:"virtual-size"`
	BackingFilename     string `json:"backing-filename"`
	FullBackingFilename string `json:"full-backing-filename"`
	Encrypted           bool   `json:"encrypted"`
	FormatSpecific      struct {
		Type string `json:"type"`
		Data struct {
			DataFile string          `json:"data-file"`
			Encrypt  json.RawMessage `json:"encrypt"`
		} `json:"data"`
	} `json:"format-specific"`
}

// InspectCommand returns the command line that inspects the file at path
// as format: qemu-img under prlimit (RLIMIT_AS and RLIMIT_CPU), or under
// the shell's ulimit where prlimit is missing. The format is stated, so
// qemu never probes it.
func InspectCommand(path, format string, lim InspectLimits) []string {
	lim = lim.withDefaults()
	qemu := []string{lim.QemuImg, "info", "-f", format, "--output=json", "--", path}
	if p, err := exec.LookPath("prlimit"); err == nil {
		return append([]string{p, "--as=" + strconv.FormatInt(lim.AddressSpace, 10),
			"--cpu=" + strconv.Itoa(lim.CPUSeconds), "--"}, qemu...)
	}
	script := "ulimit -v " + strconv.FormatInt(lim.AddressSpace/1024, 10) + " && ulimit -t " +
		strconv.Itoa(lim.CPUSeconds) + ` && exec "$@"`
	return append([]string{"/bin/sh", "-c", script, "sh"}, qemu...)
}

// inspect runs qemu-img info on the file with its format stated, under
// the limits, and checks what it reports.
func inspect(ctx context.Context, path, format string, lim InspectLimits) error {
	lim = lim.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	argv := InspectCommand(path, format, lim)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C"}
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedBuffer{b: &stdout, n: 1 << 20}
	cmd.Stderr = &limitedBuffer{b: &stderr, n: 64 << 10}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return invalid(format, "inspecting it took longer than %s", lim.Timeout)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &novacron.Error{Code: novacron.EInvalid, Message: "not a valid " + format + " image: qemu-img cannot read it",
				Details: map[string]any{"field": "format"}, Err: fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))}
		}
		return fmt.Errorf("images: run qemu-img: %w", err)
	}
	var info qemuInfo
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		return fmt.Errorf("images: qemu-img output: %w", err)
	}
	switch {
	case info.Format != format:
		return invalid(format, "qemu-img reads it as %q", info.Format)
	case info.BackingFilename != "" || info.FullBackingFilename != "":
		return invalid(format, "it has a backing file")
	case info.FormatSpecific.Data.DataFile != "":
		return invalid(format, "it has an external data file")
	case info.Encrypted || len(info.FormatSpecific.Data.Encrypt) > 0:
		return invalid(format, "it is encrypted")
	case info.VirtualSize <= 0:
		return invalid(format, "it has no virtual size")
	}
	return nil
}

// limitedBuffer keeps the first n bytes written to it and drops the rest.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if room := w.n - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
