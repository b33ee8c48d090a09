package kafkadriver

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
)

// assigned is a client consuming the given partitions of topic from the
// given offsets, without a consumer group.
func (b *bench) assigned(from map[int32]int64) (*kgo.Client, error) {
	parts := map[int32]kgo.Offset{}
	for p, off := range from {
		parts[p] = kgo.NewOffset().At(off)
	}
	return b.newClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{b.topic: parts}))
}

// fetchError is the first error of a poll, nil when none; errors of ctx
// ending are the caller's to judge.
func fetchError(fs kgo.Fetches) error {
	var first error
	fs.EachError(func(topic string, p int32, err error) {
		if first == nil {
			first = fmt.Errorf("fetch %s/%d: %w", topic, p, err)
		}
	})
	return first
}

// Subscribe implements driver.Bench for pub/sub: member takes its share of
// the partitions from their end offsets as of now.
func (b *bench) Subscribe(ctx context.Context, sub, member int, h driver.Handler) (driver.Consumer, error) {
	if b.spec.Pattern != workload.PubSub {
		return nil, fmt.Errorf("%w: subscribe on a %s workload", driver.ErrUnsupported, b.spec.Pattern)
	}
	mine := share(b.spec.Partitions, member, b.spec.Consumers)
	c := &consumer{done: make(chan error, 1)}
	if len(mine) == 0 {
		c.done <- nil // more members than partitions: nothing to read
		c.cancel = func() {}
		return c, nil
	}
	ends, err := b.offsets(ctx, mine, latest)
	if err != nil {
		return nil, err
	}
	kc, err := b.assigned(ends)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	c.kc, c.cancel = kc, cancel
	go func() {
		for {
			fs := kc.PollFetches(cctx)
			if cctx.Err() != nil {
				c.done <- nil
				return
			}
			if err := fetchError(fs); err != nil {
				c.done <- err
				return
			}
			fs.EachRecord(func(r *kgo.Record) { h(r.Value) })
		}
	}()
	return c, nil
}

// consumer is one subscriber's poll loop.
type consumer struct {
	kc     *kgo.Client // nil when it has no partition
	cancel context.CancelFunc
	done   chan error
	close  sync.Once
	err    error
}

// Close implements driver.Consumer: the poll loop ends (so the handler is
// not called again) before the client closes.
func (c *consumer) Close() error {
	c.close.Do(func() {
		c.cancel()
		c.err = <-c.done
		if c.kc != nil {
			c.kc.Close()
		}
	})
	return c.err
}

// Replay implements driver.Bench: reader r assigns partitions r,
// r+readers, … from their first offsets and reads each up to its end
// offset as of the call.
func (b *bench) Replay(ctx context.Context, readers int, handler func(int) driver.Handler) error {
	all := share(b.spec.Partitions, 0, 1)
	starts, err := b.offsets(ctx, all, earliest)
	if err != nil {
		return err
	}
	ends, err := b.offsets(ctx, all, latest)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, readers)
	for r := range min(readers, b.spec.Partitions) {
		wg.Go(func() {
			// next: where each of the reader's partitions is, for those
			// with something left to read.
			next := map[int32]int64{}
			for _, p := range share(b.spec.Partitions, r, readers) {
				if starts[p] < ends[p] {
					next[p] = starts[p]
				}
			}
			if len(next) == 0 {
				return
			}
			kc, err := b.assigned(next)
			if err != nil {
				errs[r] = err
				return
			}
			defer kc.Close()
			h := handler(r)
			for left := len(next); left > 0; {
				fs := kc.PollFetches(ctx)
				if err := ctx.Err(); err != nil {
					errs[r] = fmt.Errorf("reader %d, %d partitions left: %w", r, left, err)
					return
				}
				if err := fetchError(fs); err != nil {
					errs[r] = err
					return
				}
				fs.EachRecord(func(rec *kgo.Record) {
					n, ok := next[rec.Partition]
					if !ok || rec.Offset < n || rec.Offset >= ends[rec.Partition] {
						return // done, or past the end as of the call
					}
					h(rec.Value)
					next[rec.Partition] = rec.Offset + 1
					if rec.Offset+1 >= ends[rec.Partition] {
						delete(next, rec.Partition)
						left--
					}
				})
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
