package engine

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestQueuePollSizedByDeliverable: a take's slice is sized by what it may
// find, and messages delayed to later are not that: with thousands
// scheduled for an hour from now and nothing due, a poll (each publish or
// ack wakes every waiting member to poll again) allocates no slice for
// them. It once allocated room for a whole take (2000 deliveries, over
// 400 KB) every time.
func TestQueuePollSizedByDeliverable(t *testing.T) {
	b, clk, _ := newQueueEnv(t, SubscriptionConfig{MaxInFlight: 5000}, 1)
	later := clk.Now().Add(time.Hour)
	var msgs []Message
	for i := range 3000 {
		msgs = append(msgs, Message{Value: fmt.Appendf(nil, "v%d", i), DeliverAt: later})
	}
	publish(t, b, "jobs", msgs...)
	w := join(t, b)
	if ds, err := w.Poll(2000); err != nil || len(ds) != 0 { // reads them all ahead: scheduled
		t.Fatalf("first poll: %d deliveries, %v", len(ds), err)
	}
	const polls = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range polls {
		if ds, err := w.Poll(2000); err != nil || len(ds) != 0 {
			t.Fatalf("poll: %d deliveries, %v", len(ds), err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / polls; per > 100<<10 {
		t.Fatalf("a poll with nothing due allocated %d bytes", per)
	}
	// Once due, they come.
	clk.Advance(time.Hour)
	if ds, err := w.Poll(10); err != nil || len(ds) != 10 {
		t.Fatalf("when due: %d deliveries, %v", len(ds), err)
	}
}
