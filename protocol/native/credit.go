package native

import (
	"context"
	"sync"
	"time"
)

// credit is a consumer's flow-control window: how many more messages its
// stream may send. Grants raise it, sends spend it.
type credit struct {
	mu   sync.Mutex
	n    int
	max  int
	more chan struct{} // closed when credit is added
}

func newCredit(n, max int) *credit {
	return &credit{n: n, max: max, more: make(chan struct{})}
}

// add grants n more, up to the limit, and returns the credit now.
func (c *credit) add(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = min(c.n+n, c.max)
	if n > 0 {
		close(c.more)
		c.more = make(chan struct{})
	}
	return c.n
}

// spend takes n sent messages off the credit.
func (c *credit) spend(n int) {
	c.mu.Lock()
	c.n -= n
	c.mu.Unlock()
}

// wait returns the credit once it is above zero, or 0 when timeout (if
// positive) passes first; it fails when ctx ends.
func (c *credit) wait(ctx context.Context, timeout time.Duration) (int, error) {
	var timer <-chan time.Time
	for {
		c.mu.Lock()
		n, more := c.n, c.more
		c.mu.Unlock()
		if n > 0 {
			return n, nil
		}
		if timer == nil && timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-more:
		case <-timer:
			return 0, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
