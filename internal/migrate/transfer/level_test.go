package transfer

import (
	"testing"
	"time"
)

// feed runs windows of the controller in which the writer waited in for
// blocks and out for the link, in that proportion of each window, and
// returns the levels after each window.
func feed(c *levelCtl, windows int, in, out float64) []int {
	t := time.Unix(0, 0)
	c.now = func() time.Time { return t }
	c.winStart = t
	var levels []int
	for range windows {
		for range 10 {
			step := levelWindow / 10
			c.observe(time.Duration(in*float64(step)), time.Duration(out*float64(step)))
			t = t.Add(step)
		}
		c.observe(0, 0) // closes the window
		levels = append(levels, c.level())
	}
	return levels
}

func TestLevelController(t *testing.T) {
	// Waiting for the link: compress harder, a step at a time, up to 3.
	c := newLevelCtl(0)
	if got := feed(c, 12, 0.05, 0.8); got[len(got)-1] != 3 || got[0] != 2 {
		t.Errorf("link-bound levels %v, want up from 2 to 3", got)
	}
	// Waiting for the compressors: back down to 1, and not to raw while
	// the link is busy too.
	if got := feed(c, 12, 0.6, 0.2); got[len(got)-1] != 1 {
		t.Errorf("CPU-bound levels %v, want down to 1", got)
	}
	// Only compression holds it back: raw blocks.
	if got := feed(c, 4, 0.7, 0.02); got[len(got)-1] != 0 {
		t.Errorf("compression-bound levels %v, want 0", got)
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
