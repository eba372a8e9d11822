// Package transfer is the transfer engine: it moves a file (a disk image, a
// memory state) or a directory tree from a sender to a receiver over one
// connection, sending as little as it can and verifying what arrives.
//
// The file is cut into fixed-size blocks (BlockSize, the unit of reading and
// compression) made of sub-blocks (SubBlockSize, the unit of matching). The
// receiver first advertises (the low 64 bits of) the xxh3-128 hash of every
// non-zero sub-block it already holds: a partial file left by an interrupted
// run (matched in place, which makes a transfer resumable), an older copy at
// the output path and any basis files (matched anywhere: delta and
// deduplication). The sender finds holes with SEEK_DATA/SEEK_HOLE without
// reading them, skips all-zero sub-blocks, refers to sub-blocks the receiver
// holds, and sends each block as one frame: its operations, then its
// literal bytes zstd-compressed at a level adapted to the link and CPU (raw
// when they do not compress), compressing on all cores with a bounded number
// of blocks in flight. The receiver recreates holes by truncation, copies
// referenced sub-blocks locally, and checks a digest of the whole file (the
// xxh3-128 of the sequence of sub-block hashes) before it renames the result
// into place: a mismatch is an error, never a silent success.
//
// Both sides prove knowledge of a shared token with HMAC-SHA256 over fresh
// nonces; confidentiality (TLS) is the caller's business.
package transfer

import (
	"errors"
	"log/slog"
	"time"
)

// Sizes. The block size is the unit of compression and of work for one
// core. The sub-block size is the granularity of delta matching, so that
// scattered small changes cost one sub-block each: by default it is the
// file system's block, MinSubBlockSize, doubled for large files until the
// file's data holds at most MaxSubBlocks of them (which bounds the
// receiver's hash list to 8 bytes a sub-block, under 0.2 % of the data).
// A false match of those 64 bits cannot go unnoticed: the digest that
// verifies the result is made of the full 128-bit hashes.
const (
	DefaultBlockSize = 1 << 20
	MinSubBlockSize  = 4 << 10
	MaxSubBlocks     = 1 << 20
)

// Errors a caller may test with errors.Is.
var (
	// ErrAuth means the peer did not prove knowledge of the token.
	ErrAuth = errors.New("transfer: authentication failed")
	// ErrVerify means the received content does not match the sender's digest.
	ErrVerify = errors.New("transfer: verification failed")
	// ErrProtocol means the peer sent something this side does not understand.
	ErrProtocol = errors.New("transfer: protocol error")
	// ErrUnsafePath means a tree entry would land outside the receiver's directory.
	ErrUnsafePath = errors.New("transfer: unsafe path")
)

// Progress is a snapshot of a running transfer, handed to Options.Progress.
type Progress struct {
	Total   int64         // bytes of the source (apparent size)
	Scanned int64         // bytes of the source processed so far
	Wire    int64         // bytes sent and received on the connection so far
	Rate    float64       // scanned bytes per second since the start
	ETA     time.Duration // estimated time left, 0 when unknown
	Done    bool          // the last call
}

// Options tune a transfer. The zero value is usable: a nil token is refused.
type Options struct {
	// Token is the shared secret both sides must hold.
	Token []byte
	// BlockSize and SubBlockSize (sender side; the receiver follows the
	// sender). SubBlockSize must divide BlockSize; 0 chooses it per file.
	BlockSize    int
	SubBlockSize int
	// Workers is the number of compressing goroutines (default GOMAXPROCS).
	Workers int
	// Level fixes the zstd level (1 fastest … 4 best); 0 adapts it to the
	// link and CPU, -1 disables compression.
	Level int
	// BandwidthLimit caps the bytes per second the sender writes (0: none).
	BandwidthLimit float64
	// Progress, when set, is called at most every ProgressInterval and once
	// at the end, from one goroutine.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Basis lists receiver-side files whose content may be reused.
	Basis []string
	// Logger receives debug messages (default: discard).
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.BlockSize <= 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.SubBlockSize < 0 {
		c.SubBlockSize = 0
	}
	if c.SubBlockSize > c.BlockSize {
		c.SubBlockSize = c.BlockSize
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 200 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Stats summarise a finished (or failed) transfer from one side.
type Stats struct {
	BytesTotal   int64         // apparent size of what was transferred
	BytesData    int64         // bytes of the source that were not holes
	WireSent     int64         // bytes this side wrote to the connection
	WireReceived int64         // bytes this side read from the connection
	Duration     time.Duration // from the handshake to the verdict
	Literal      int64         // source bytes sent as data (before compression)
	Matched      int64         // source bytes the receiver already held in place
	Copied       int64         // source bytes the receiver copied from a basis
	Zero         int64         // source bytes sent as holes
	Files        int           // files moved (1 in file mode)
}

// Wire returns the bytes on the wire in both directions.
func (s Stats) Wire() int64 { return s.WireSent + s.WireReceived }

// Speedup is rsync's figure: the total size divided by the bytes on the wire.
func (s Stats) Speedup() float64 {
	if s.Wire() == 0 {
		return 0
	}
	return float64(s.BytesTotal) / float64(s.Wire())
}
