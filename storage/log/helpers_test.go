package log

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/storage/record"
)

// fakeClock is a settable clock for segment age and retention tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// batchOf builds a batch of n records whose values are "<tag>-<i>".
func batchOf(tag string, n int, ts int64) []byte {
	var b record.Builder
	for i := range n {
		b.Add(record.Record{Timestamp: ts, Key: []byte(tag), Value: fmt.Appendf(nil, "%s-%d", tag, i)})
	}
	return b.Build()
}

func openT(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, batch []byte) AppendResult {
	t.Helper()
	res, err := l.Append(batch)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return res
}

// readAll reads every visible record from offset from.
func readAll(t testing.TB, l *Log, from int64) []record.Record {
	t.Helper()
	var out []record.Record
	off := from
	for {
		res, err := l.Read(off, 64<<10)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if len(res.Data) == 0 {
			return out
		}
		err = record.Split(res.Data, func(h record.Header, b []byte) error {
			return record.Records(b, record.Limits{}, func(r record.Record) error {
				if r.Offset >= off {
					r.Key, r.Value = append([]byte(nil), r.Key...), append([]byte(nil), r.Value...)
					out = append(out, r)
				}
				return nil
			})
		})
		if err != nil && !errors.Is(err, record.ErrShort) {
			t.Fatalf("decode at %d: %v", off, err)
		}
		off = res.NextOffset
	}
}
