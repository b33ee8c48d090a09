package clock

import (
	"testing"
	"time"
)

func TestFakeRunsTimersInOrder(t *testing.T) {
	start := time.Unix(1000, 0)
	c := NewFake(start)
	var got []int
	var at []time.Duration
	c.AfterFunc(3*time.Second, func() { got = append(got, 3); at = append(at, c.Now().Sub(start)) })
	c.AfterFunc(time.Second, func() {
		got = append(got, 1)
		at = append(at, c.Now().Sub(start))
		// A timer set from a timer runs in the same Advance when due.
		c.AfterFunc(time.Second, func() { got = append(got, 2); at = append(at, c.Now().Sub(start)) })
	})
	stop := c.AfterFunc(2*time.Second, func() { got = append(got, 99) })
	if !stop.Stop() || stop.Stop() {
		t.Fatal("Stop should report true once")
	}
	c.Advance(2500 * time.Millisecond)
	if len(got) != 2 || got[0] != 1 || got[1] != 2 || at[0] != time.Second || at[1] != 2*time.Second {
		t.Fatalf("ran %v at %v", got, at)
	}
	if c.Now().Sub(start) != 2500*time.Millisecond || c.Pending() != 1 {
		t.Fatalf("now %v pending %d", c.Now().Sub(start), c.Pending())
	}
	c.Advance(time.Second)
	if len(got) != 3 || got[2] != 3 {
		t.Fatalf("ran %v", got)
	}
}
