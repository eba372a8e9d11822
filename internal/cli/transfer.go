package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/novacron/novacron/internal/migrate/transfer"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// transferTokenEnv names the environment variable that holds the transfer
// token, so it need not appear in a process listing.
const transferTokenEnv = "NOVACRON_TRANSFER_TOKEN"

func newTransferCmd(e *env) *cobra.Command {
	return newGroupCmd("transfer", "Move a disk image, a memory state or a directory tree between hosts",
		newTransferReceiveCmd(e), newTransferSendCmd(e))
}

// transferSummary is the --json output of both sides.
type transferSummary struct {
	BytesTotal   int64   `json:"bytes_total"`
	BytesOnWire  int64   `json:"bytes_on_wire"`
	Seconds      float64 `json:"seconds"`
	Speedup      float64 `json:"speedup"`
	BytesData    int64   `json:"bytes_data,omitempty"`
	BytesLiteral int64   `json:"bytes_literal"`
	BytesMatched int64   `json:"bytes_matched"`
	BytesCopied  int64   `json:"bytes_copied"`
	BytesZero    int64   `json:"bytes_zero"`
	Files        int     `json:"files"`
}

func summarize(st transfer.Stats) transferSummary {
	return transferSummary{
		BytesTotal: st.BytesTotal, BytesOnWire: st.Wire(), Seconds: st.Duration.Seconds(), Speedup: st.Speedup(),
		BytesData: st.BytesData, BytesLiteral: st.Literal, BytesMatched: st.Matched, BytesCopied: st.Copied,
		BytesZero: st.Zero, Files: st.Files,
	}
}

func (e *env) transferToken(flag string) string {
	if flag != "" {
		return flag
	}
	return e.getenv(transferTokenEnv)
}

func printSummary(w io.Writer, asJSON bool, st transfer.Stats) error {
	s := summarize(st)
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(s)
	}
	_, err := fmt.Fprintf(w, "%s in %.2fs, %s on the wire, speedup %.2f\n",
		humanBytes(s.BytesTotal), s.Seconds, humanBytes(s.BytesOnWire), s.Speedup)
	return err
}

func newTransferReceiveCmd(e *env) *cobra.Command {
	var (
		listen, out, token string
		basis              []string
		asJSON             bool
	)
	cmd := &cobra.Command{
		Use:   "receive --listen ADDR --out PATH",
		Short: "Receive one file or directory tree, then exit",
		Long: `Receive one file or directory tree from "novacron transfer send", then exit.

The token (--token, or ` + transferTokenEnv + `) authenticates both sides; without
one, a random token is generated and printed. A file already at --out and
every --basis file serve as sources of blocks that need not travel; an
interrupted transfer leaves PATH` + transfer.PartialSuffix + `, from which the next one resumes.
The connection is not encrypted: use it on a trusted network or a tunnel.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" || out == "" {
				return usagef("--listen and --out are required")
			}
			tok := e.transferToken(token)
			if tok == "" {
				b := make([]byte, 16)
				_, _ = rand.Read(b)
				tok = hex.EncodeToString(b)
				fmt.Fprintf(e.stderr, "token: %s\n", tok)
			}
			ctx := cmd.Context()
			ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", listen)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "listening on %s\n", ln.Addr())
			stop := context.AfterFunc(ctx, func() { ln.Close() })
			conn, err := ln.Accept()
			stop()
			ln.Close()
			if err != nil {
				return err
			}
			defer conn.Close()
			st, err := transfer.Receive(ctx, conn, out, transfer.Options{Token: []byte(tok), Basis: basis})
			if err != nil {
				return err
			}
			return printSummary(e.stdout, asJSON, st)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "accept the sender on this `address` (host:port)")
	f.StringVar(&out, "out", "", "store the file at, or the tree in, this `path`")
	f.StringArrayVar(&basis, "basis", nil, "a `file` whose blocks may be reused (repeatable)")
	f.StringVar(&token, "token", "", "shared secret (default $"+transferTokenEnv+", else generated)")
	f.BoolVar(&asJSON, "json", false, "print one JSON summary object at the end")
	return cmd
}

func newTransferSendCmd(e *env) *cobra.Command {
	var (
		to, token       string
		bwlimit         float64
		asJSON          bool
		level, blockKiB int
	)
	cmd := &cobra.Command{
		Use:   "send --to ADDR PATH",
		Short: "Send a file or directory tree to a waiting receiver",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef("--to is required")
			}
			tok := e.transferToken(token)
			if tok == "" {
				return usagef("a token is required: --token or $%s", transferTokenEnv)
			}
			if bwlimit < 0 || level < -1 || level > 4 || blockKiB < 0 || blockKiB%64 != 0 {
				return usagef("--bwlimit must be positive, --level between -1 and 4, --block-size-kib a multiple of 64")
			}
			fi, err := os.Stat(args[0])
			if err != nil {
				return err
			}
			o := transfer.Options{Token: []byte(tok), BandwidthLimit: bwlimit * 1e6 / 8, Level: level, BlockSize: blockKiB << 10}
			if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				o.Progress = func(p transfer.Progress) { fmt.Fprint(e.stderr, progressLine(p)) }
			}
			ctx := cmd.Context()
			conn, err := (&net.Dialer{Timeout: 30 * time.Second}).DialContext(ctx, "tcp", to)
			if err != nil {
				return err
			}
			defer conn.Close()
			var st transfer.Stats
			if fi.IsDir() {
				st, err = transfer.SendTree(ctx, conn, args[0], o)
			} else {
				st, err = transfer.Send(ctx, conn, args[0], o)
			}
			if err != nil {
				return err
			}
			return printSummary(e.stdout, asJSON, st)
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the receiver's `address` (host:port)")
	f.StringVar(&token, "token", "", "shared secret (default $"+transferTokenEnv+")")
	f.Float64Var(&bwlimit, "bwlimit", 0, "limit the sending rate to this many `Mbit/s` (0: none)")
	f.BoolVar(&asJSON, "json", false, "print one JSON summary object at the end")
	f.IntVar(&level, "level", 0, "zstd level 1-4, 0 adapts to the link, -1 sends uncompressed")
	f.IntVar(&blockKiB, "block-size-kib", 0, "block size in KiB (default 1024)")
	return cmd
}

// progressLine renders one progress bar line for a terminal.
func progressLine(p transfer.Progress) string {
	const width = 30
	frac := 1.0
	if p.Total > 0 {
		frac = float64(p.Scanned) / float64(p.Total)
	}
	filled := int(frac * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	line := fmt.Sprintf("\r[%s] %3.0f%% %s/%s %s/s wire %s", bar, frac*100,
		humanBytes(p.Scanned), humanBytes(p.Total), humanBytes(int64(p.Rate)), humanBytes(p.Wire))
	if p.ETA > 0 {
		line += " ETA " + p.ETA.Round(time.Second).String()
	}
	line += "\033[K"
	if p.Done {
		line += "\n"
	}
	return line
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
