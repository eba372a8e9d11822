package transfer

import (
	"testing"
	"time"
)

// feed runs windows of the controller in which the writer waited in for
// blocks and out for the link, in that proportion of each window, and
// returns the levels after each window.
func feed(c *levelCtl, windows int, in, out float64) []int {
	return feedRate(c, windows, in, out, 1<<20)
}

// feedRate is feed with n source bytes in each block, ten blocks a window.
func feedRate(c *levelCtl, windows int, in, out float64, n int64) []int {
	t := time.Unix(0, 0)
	c.now = func() time.Time { return t }
	c.winStart = t
	var levels []int
	for range windows {
		for range 10 {
			step := levelWindow / 10
			c.observe(n, n/2, time.Duration(in*float64(step)), time.Duration(out*float64(step)))
			t = t.Add(step)
		}
		c.observe(0, 0, 0, 0) // closes the window
		levels = append(levels, c.level())
	}
	return levels
}

func TestLevelController(t *testing.T) {
	// Waiting for the link: compress harder, a step at a time, up to 4.
	c := newLevelCtl(0)
	// The first window (the pipeline filling) is not judged.
	if got := feed(c, 12, 0.05, 0.8); got[len(got)-1] != 4 || got[0] != 1 || got[1] != 2 || got[3] != 3 {
		t.Errorf("link-bound levels %v, want 1, then up a step at a time from 2 to 4", got)
	}
	// Hardly using the CPU: two steps at a time.
	if got := feed(newLevelCtl(0), 4, 0.01, 0.95); got[1] != 3 || got[3] != 4 {
		t.Errorf("levels %v on an idle CPU, want 1, 3, 3, 4", got)
	}
	// Waiting for the compressors: back down to 1, and not to raw while
	// the link is busy too.
	if got := feed(c, 12, 0.6, 0.2); got[len(got)-1] != 1 {
		t.Errorf("CPU-bound levels %v, want down to 1", got)
	}
	// Only compression holds it back, but the link was seen saturated at
	// half the rate the source moves now: raw blocks would be slower.
	if got := feed(c, 4, 0.7, 0.02); got[len(got)-1] != 1 {
		t.Errorf("compression-bound levels %v on a known slow link, want 1", got)
	}
	// Only compression holds it back and the link was never the limit:
	// raw blocks, after two windows of it.
	if got := feed(newLevelCtl(0), 4, 0.7, 0.02); got[1] != 1 || got[2] != 0 {
		t.Errorf("compression-bound levels %v, want 1, 1, 0", got)
	}
	// Balanced: hold.
	c = newLevelCtl(0)
	if got := feed(c, 10, 0.2, 0.2); got[len(got)-1] != 1 {
		t.Errorf("balanced levels %v, want 1 throughout", got)
	}
	// A fixed level never moves.
	c = newLevelCtl(2)
	if got := feed(c, 10, 0, 0.9); got[len(got)-1] != 2 {
		t.Errorf("fixed level moved: %v", got)
	}
	if c := newLevelCtl(-1); c.level() != 0 {
		t.Errorf("level -1 compresses at %d", c.level())
	}
}

// A level that is left straight away for the one before is not tried
// again soon: on a machine where level 1 is short of CPU but raw blocks
// saturate the link, the controller settles on 1 most of the time.
func TestLevelControllerBacksOff(t *testing.T) {
	for _, tt := range []struct {
		name          string
		n1, n0        int64 // source bytes per block at level 1 and raw
		want, atLeast int
	}{
		{"compressed moves more", 2 << 20, 1 << 20, 1, 160},
		{"raw moves more", 1 << 20, 2 << 20, 0, 160},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newLevelCtl(0)
			tm := time.Unix(0, 0)
			c.now = func() time.Time { return tm }
			c.winStart = tm
			counts := map[int]int{}
			for range 200 {
				// Level 1: compression holds it back; raw: the link does.
				in, out, n, wire := 0.7, 0.02, tt.n1, tt.n1/3
				if c.level() == 0 {
					in, out, n, wire = 0.01, 0.9, tt.n0, tt.n0
				}
				for range 10 {
					c.observe(n, wire, time.Duration(in*float64(levelWindow/10)), time.Duration(out*float64(levelWindow/10)))
					tm = tm.Add(levelWindow / 10)
				}
				c.observe(0, 0, 0, 0)
				counts[c.level()]++
			}
			if counts[tt.want] < tt.atLeast {
				t.Errorf("windows per level %v: want mostly %d", counts, tt.want)
			}
		})
	}
}
