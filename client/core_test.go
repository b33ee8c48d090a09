package client

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// newTestCore is a core with one attached session and no broker: what
// next and push do with the items, alone.
func newTestCore(keepOld bool) (*core[int], *session[int]) {
	s := &session[int]{attachment: &attachment{done: make(chan struct{})},
		items: make(chan []int, 16), ready: make(chan struct{}, 1)}
	return &core[int]{keepOld: keepOld, cur: s, changed: make(chan struct{})}, s
}

// TestCoreWaitersShareOneSlice: callers of next that wait when a slice
// arrives all get its items; none waits for a later slice with items at
// hand.
func TestCoreWaitersShareOneSlice(t *testing.T) {
	k, s := newTestCore(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			it, _, err := k.next(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got = append(got, *it)
			mu.Unlock()
		})
	}
	time.Sleep(50 * time.Millisecond) // let them wait
	if err := push(ctx, s, []int{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	slices.Sort(got)
	if !slices.Equal(got, []int{1, 2, 3, 4}) {
		t.Fatalf("waiters got %v of one slice [1 2 3 4]", got)
	}
}

// TestCoreEndedStream: what an ended stream received is dropped, unless
// the consumer keeps it (ephemeral): then all of it comes out, in order,
// the part of a slice already begun included, and pending sees it.
func TestCoreEndedStream(t *testing.T) {
	for _, keep := range []bool{false, true} {
		k, s := newTestCore(keep)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		push(ctx, s, []int{1, 2, 3})
		push(ctx, s, []int{4})
		if it, _, err := k.next(ctx); err != nil || *it != 1 {
			t.Fatalf("keep %v: first item %v, %v", keep, it, err)
		}
		close(s.done)
		if !s.pending() {
			t.Fatalf("keep %v: pending false with 2, 3 and 4 left", keep)
		}
		var rest []int
		for {
			it, _, err := k.next(ctx)
			if err != nil {
				break
			}
			rest = append(rest, *it)
		}
		cancel()
		want := []int{2, 3, 4}
		if !keep {
			want = nil
		}
		if !slices.Equal(rest, want) {
			t.Fatalf("keep %v: after the stream ended next gave %v, want %v", keep, rest, want)
		}
	}
}
