package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ferrymq/ferry/storage/log"
	"github.com/ferrymq/ferry/storage/record"
)

// Batches is what a consumer takes from one partition as it is stored:
// whole record batches (Data, byte for byte as in the log), of which the
// records with offsets in [From, Until) are delivered; records of Data
// outside that range are not. Offsets are dense, so Until-From records are
// delivered. A front door that sends these on (the native API's
// record_batches, Kafka's Fetch) spends no time decoding and encoding
// messages. Data holds only uncompressed batches.
type Batches struct {
	Topic     string
	Partition int
	From      int64
	Until     int64
	Data      []byte
}

// Count is how many records b delivers.
func (b *Batches) Count() int { return int(b.Until - b.From) }

// collector takes what a consumer wants from one read of a partition: data
// holds whole batches, starting with the one that holds from. It appends to
// out at most limit records at or after from and returns out, how many
// records it took and the offset after the last one taken.
type collector[T any] func(out []T, topic string, p int, from int64, data []byte, limit int) ([]T, int, int64, error)

// collectMessages decodes the records into messages.
func collectMessages(out []Message, topic string, p int, from int64, data []byte, limit int) ([]Message, int, int64, error) {
	out = slices.Grow(out, min(countRecords(data), limit))
	n, next := 0, from
	err := record.Split(data, func(h record.Header, batch []byte) error {
		return record.Records(batch, record.Limits{}, func(r record.Record) error {
			if n >= limit {
				// The read may bring up to 1 MiB; decoding stops at the
				// limit rather than at the end of it.
				return errFetchFull
			}
			if r.Offset >= from {
				out = append(out, messageFromRecord(topic, p, r))
				n++
				next = r.Offset + 1
			}
			return nil
		})
	})
	if err != nil && !errors.Is(err, errFetchFull) {
		return out, n, next, err
	}
	return out, n, next, nil
}

// errFetchFull stops decoding a read once a take has its fill.
var errFetchFull = errors.New("fetch full")

// collectBatches keeps the stored batches as they are: it only reads their
// headers to find where the take ends, at exactly limit records when the
// data has them (what Read promises).
func collectBatches(out []Batches, topic string, p int, from int64, data []byte, limit int) ([]Batches, int, int64, error) {
	return gatherBatches(false, out, topic, p, from, data, limit)
}

// collectWholeBatches is collectBatches for consumers, whose next take
// starts where this one ends: past the take's first batch (out holds the
// batches of the partitions taken before) it takes only whole batches. A take that ended inside a batch would send that batch again
// with the next take (takes of 2,000 records over batches of 1,000 that
// drifted off the boundaries sent half as much again as they delivered).
func collectWholeBatches(out []Batches, topic string, p int, from int64, data []byte, limit int) ([]Batches, int, int64, error) {
	return gatherBatches(true, out, topic, p, from, data, limit)
}

func gatherBatches(whole bool, out []Batches, topic string, p int, from int64, data []byte, limit int) ([]Batches, int, int64, error) {
	start, end, until := 0, 0, from
	err := record.Split(data, func(h record.Header, batch []byte) error {
		if until-from >= int64(limit) || (whole && (until > from || len(out) > 0) && h.NextOffset()-from > int64(limit)) {
			return errFetchFull
		}
		if h.NextOffset() <= from {
			start += len(batch)
			end = start
			return nil
		}
		if h.Compression() != record.CompressionNone {
			// Nothing stores compressed batches yet. When the Kafka front
			// door does, they are to be decoded into messages here.
			return fmt.Errorf("batch at offset %d is compressed (%v): batches are served uncompressed only", h.BaseOffset, h.Compression())
		}
		until = min(h.NextOffset(), from+int64(limit))
		end += len(batch)
		return nil
	})
	if err != nil && !errors.Is(err, errFetchFull) {
		return out, 0, from, err
	}
	if until == from {
		return out, 0, from, nil
	}
	out = append(out, Batches{Topic: topic, Partition: p, From: from, Until: until, Data: data[start:end:end]})
	return out, int(until - from), until, nil
}

// ReceiveBatches is Receive with the messages as stored record batches:
// up to max records, waiting until there is one or ctx ends. With a
// Scratch the batches are read into it (see Scratch).
func (e *Ephemeral) ReceiveBatches(ctx context.Context, max int, scratch *Scratch) ([]Batches, error) {
	return waitFor(ctx, func() ([]Batches, <-chan struct{}, error) {
		defer scratch.settle()
		return pollEphemeral(e, max, collectWholeBatches, scratch.reset())
	})
}

// FetchBatches is Fetch with the messages as stored record batches: up to
// max records, waiting until there is one or ctx ends. With a Scratch the
// batches are read into it (see Scratch).
func (m *StreamMember) FetchBatches(ctx context.Context, max int, scratch *Scratch) ([]Batches, error) {
	return waitFor(ctx, func() ([]Batches, <-chan struct{}, error) {
		defer scratch.settle()
		return fetchStream(m, max, collectWholeBatches, scratch.reset())
	})
}

// Scratch is memory a consumer lends to its takes of batches, which read
// the log into it instead of into new memory: a consumer that sends each
// take on before the next spares an allocation of up to a MiB per take,
// and the garbage collector the work. The Batches of a take that used a
// Scratch are valid only until the next take with it. The zero value is
// ready to use; a nil *Scratch lends nothing. It grows to what the takes
// read, up to 4 MiB, and lets go of its memory when a poll finds nothing
// to take: a consumer that keeps up, or waits, holds none.
type Scratch struct {
	buf   []byte
	short int // bytes the last poll read elsewhere, for lack of room
}

const maxScratch = 4 << 20

// reset readies s for a poll: it forgets what the last poll read, and
// grows when that did not fit.
func (s *Scratch) reset() *Scratch {
	if s == nil {
		return nil
	}
	if s.short > 0 && cap(s.buf) < maxScratch {
		s.buf = make([]byte, 0, min(cap(s.buf)+s.short, maxScratch))
	}
	s.buf, s.short = s.buf[:0], 0
	return s
}

// settle lets the memory go after a poll that read nothing: the consumer
// is about to wait.
func (s *Scratch) settle() {
	if s != nil && len(s.buf) == 0 && s.short == 0 {
		s.buf = nil
	}
}

// read reads l at offset into s's free room when it fits there (see
// log.ReadInto), or into new memory.
func (s *Scratch) read(l *log.Log, offset int64, maxBytes int) (log.ReadResult, error) {
	if s == nil {
		return l.Read(offset, maxBytes)
	}
	res, err := l.ReadInto(s.buf, offset, maxBytes)
	if n := len(res.Data); n > 0 {
		if free := s.buf[len(s.buf):cap(s.buf)]; len(free) >= n && &free[0] == &res.Data[0] {
			s.buf = s.buf[:len(s.buf)+n]
		} else {
			s.short += n
		}
	}
	return res, err
}

// Wasteful reports whether Data holds far more than b delivers: over 64
// KiB and more than 8 times the records (a take cut short by a small
// credit or message bound, inside a large stored batch). A front door had
// better send such a take decoded (Messages) than send the whole batch for
// a few of its records, again with every take. Below that the batches go
// as they are: decoding costs the broker more CPU than the extra bytes
// cost (a fan-out over loopback, whose takes of 2,000 records fall inside
// batches of several thousand, lost 10-20% when takes of half a batch went
// decoded).
func (b *Batches) Wasteful() bool {
	return len(b.Data) > 64<<10 && countRecords(b.Data) > 8*b.Count()
}

// Messages decodes the records b delivers.
func (b *Batches) Messages() ([]Message, error) {
	out, _, _, err := collectMessages(make([]Message, 0, b.Count()), b.Topic, b.Partition, b.From, b.Data, b.Count())
	return out, err
}
