package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ferrymq/ferry/storage/log"
	"github.com/ferrymq/ferry/storage/record"
)

// ReadOptions bound a read.
type ReadOptions struct {
	// MaxBytes bounds the stored bytes read (at least one message is
	// returned when there is one). Default 1 MiB.
	MaxBytes int
	// MaxMessages bounds the messages returned; 0 means no bound.
	MaxMessages int
	// Wait is how long to wait for a message when there is none at the
	// offset yet (the long poll); 0 returns at once.
	Wait time.Duration
	// Reuse, when set, is a slice whose storage the result's Messages may
	// use (a previous result's Messages, once done with): a replay loop then
	// allocates no result slice per call, which spares the garbage collector.
	Reuse []Message
	// AsBatches returns the messages as stored (ReadResult.Batches) instead
	// of decoded (Messages): for a front door that sends them on as they
	// are.
	AsBatches bool
}

// ReadResult is what Read returns.
type ReadResult struct {
	Messages []Message
	// Batches holds the messages as stored, with ReadOptions.AsBatches
	// (its Data is empty when there are none).
	Batches Batches
	// NextOffset is the offset to read next.
	NextOffset int64
	// HighWatermark is the partition's end: the offset the next message
	// published will get.
	HighWatermark int64
	// StartOffset is the first offset still stored.
	StartOffset int64
}

// Read returns the messages of one partition from offset on, without any
// subscription: the reader of the brief, for replay. It waits up to
// opts.Wait (or until ctx ends) when there is nothing at offset yet.
func (b *Broker) Read(ctx context.Context, topicName string, partition int, offset int64, opts ReadOptions) (ReadResult, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 20
	}
	for attempt := 0; ; attempt++ {
		res, err := b.read(ctx, topicName, partition, offset, opts)
		// AlterTopic reopens a topic's logs: a read that met the closed log
		// tries once more on the new one.
		if errors.Is(err, errLogClosed) && attempt == 0 {
			continue
		}
		if errors.Is(err, errLogClosed) {
			err = ErrClosed
		}
		return res, err
	}
}

// errLogClosed marks a read that met a closed partition log.
var errLogClosed = errors.New("partition log closed")

func (b *Broker) read(ctx context.Context, topicName string, partition int, offset int64, opts ReadOptions) (ReadResult, error) {
	l, err := b.partitionLog(topicName, partition)
	if err != nil {
		return ReadResult{}, err
	}
	if opts.Wait > 0 && offset >= l.VisibleOffset() {
		wctx, cancel := context.WithTimeout(ctx, opts.Wait)
		err := l.Wait(wctx, offset)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			if errors.Is(err, log.ErrClosed) {
				return ReadResult{}, errLogClosed
			}
			if ctx.Err() != nil {
				return ReadResult{}, ctx.Err()
			}
		}
	}
	res, err := l.Read(offset, opts.MaxBytes)
	out := ReadResult{NextOffset: offset, HighWatermark: res.HighWatermark, StartOffset: res.StartOffset}
	if err != nil {
		if errors.Is(err, log.ErrOffsetOutOfRange) {
			return out, fmt.Errorf("%w: %s/%d offset %d, stored %d..%d", ErrOffsetOutOfRange, topicName, partition, offset, res.StartOffset, res.HighWatermark)
		}
		if errors.Is(err, log.ErrClosed) {
			return out, errLogClosed
		}
		return out, err
	}
	if opts.AsBatches {
		limit := opts.MaxMessages
		if limit <= 0 {
			limit = math.MaxInt32 // more than a read holds; from+limit cannot overflow
		}
		bs, _, next, err := collectBatches(nil, topicName, partition, offset, res.Data, limit)
		if err != nil {
			return out, fmt.Errorf("read %s/%d at %d: %w", topicName, partition, offset, err)
		}
		if len(bs) > 0 {
			out.Batches, out.NextOffset = bs[0], next
		}
		return out, nil
	}
	// Size the result once: messages are large values, and growing the slice
	// copies them.
	n := countRecords(res.Data)
	if opts.MaxMessages > 0 {
		n = min(n, opts.MaxMessages)
	}
	if cap(opts.Reuse) >= n {
		clear(opts.Reuse[:cap(opts.Reuse)]) // drop references to old buffers
		out.Messages = opts.Reuse[:0]
	} else {
		out.Messages = make([]Message, 0, n)
	}
	full := errors.New("full")
	err = record.Split(res.Data, func(h record.Header, batch []byte) error {
		return record.Records(batch, record.Limits{}, func(r record.Record) error {
			if r.Offset < offset {
				return nil
			}
			if opts.MaxMessages > 0 && len(out.Messages) >= opts.MaxMessages {
				return full
			}
			out.Messages = append(out.Messages, messageFromRecord(topicName, partition, r))
			out.NextOffset = r.Offset + 1
			return nil
		})
	})
	if err != nil && !errors.Is(err, full) {
		return out, fmt.Errorf("read %s/%d at %d: %w", topicName, partition, offset, err)
	}
	if err == nil && len(out.Messages) > 0 {
		out.NextOffset = res.NextOffset
	}
	return out, nil
}

// countRecords sums the record counts of the batch headers in data.
// readSizer sizes the reads of a consumer that wants some number of
// records: it remembers the record size it has seen, so that a read for
// 2,000 small records does not fetch (and zero) a whole MiB. Reading a MiB
// for every poll of an ephemeral subscription was 10% of a fan-out's CPU.
type readSizer struct{ avg int }

// size is the bytes to read for n records.
func (r *readSizer) size(n int) int {
	if r.avg <= 0 {
		return 1 << 20
	}
	return min(max(n*r.avg*5/4+4096, 16<<10), 1<<20)
}

// saw records what a read brought back.
func (r *readSizer) saw(data []byte) {
	if n := countRecords(data); n > 0 {
		r.avg = max(len(data)/n, 1)
	}
}

func countRecords(data []byte) int {
	n := 0
	for len(data) > 0 {
		h, err := record.ParseHeader(data)
		if err != nil || h.Size() > len(data) {
			break
		}
		n += int(h.NumRecords)
		data = data[h.Size():]
	}
	return n
}

// OffsetForTime returns the first offset of a partition whose message is at
// or after t, or the partition's end when none is.
func (b *Broker) OffsetForTime(topicName string, partition int, t time.Time) (int64, error) {
	l, err := b.partitionLog(topicName, partition)
	if err != nil {
		return 0, err
	}
	off, _, err := l.OffsetForTime(t.UnixMilli())
	return off, err
}

// WaitForOffset waits until a partition has a record at offset (the
// visible end is beyond it), or ctx ends: the long poll of a reader that
// watches several partitions at once.
func (b *Broker) WaitForOffset(ctx context.Context, topicName string, partition int, offset int64) error {
	l, err := b.partitionLog(topicName, partition)
	if err != nil {
		return err
	}
	return l.Wait(ctx, offset)
}

// StartOffset is a partition's first stored offset: what DescribeTopic
// gives for one partition, without describing the whole topic.
func (b *Broker) StartOffset(topicName string, partition int) (int64, error) {
	l, err := b.partitionLog(topicName, partition)
	if err != nil {
		return 0, err
	}
	return l.StartOffset(), nil
}

// partitionLog returns a partition's log. The log stays usable after the
// broker's lock is released; if the topic is deleted meanwhile, its calls
// fail with the log's ErrClosed.
func (b *Broker) partitionLog(topicName string, partition int) (*log.Log, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	if partition < 0 || partition >= len(t.parts) {
		return nil, fmt.Errorf("%w: topic %q has partitions 0..%d, not %d", ErrUnknownPartition, topicName, len(t.parts)-1, partition)
	}
	return t.parts[partition], nil
}
