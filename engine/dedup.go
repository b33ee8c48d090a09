package engine

import (
	"errors"
	"sync"
	"time"

	"github.com/ferrymq/ferry/storage/record"
)

// dedup remembers the message ids published to a topic within its window,
// so a retried publish is acknowledged with the first offset instead of
// being stored again.
type dedup struct {
	mu     sync.Mutex
	window time.Duration // <= 0: off
	seen   map[string]*dedupEntry
	order  []*dedupEntry // by the time each was stored, oldest first
}

type dedupEntry struct {
	id        string
	partition int
	offset    int64
	at        time.Time
	done      chan struct{} // closed once stored or failed
	ok        bool
}

func newDedup(window time.Duration) *dedup {
	return &dedup{window: window, seen: map[string]*dedupEntry{}}
}

func (d *dedup) setWindow(w time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.window = w
	if w <= 0 {
		d.seen, d.order = map[string]*dedupEntry{}, nil
	}
}

// claim looks id up. It returns the stored entry when id was published within
// the window (a duplicate), or a new pending entry that the caller must
// finish; a publish of the same id already in flight is waited for.
func (d *dedup) claim(id string, now time.Time) (e *dedupEntry, duplicate bool) {
	for {
		d.mu.Lock()
		d.expire(now)
		old, ok := d.seen[id]
		if !ok {
			e := &dedupEntry{id: id, at: now, done: make(chan struct{})}
			d.seen[id] = e
			d.mu.Unlock()
			return e, false
		}
		select {
		case <-old.done:
			d.mu.Unlock()
			return old, true
		default:
		}
		d.mu.Unlock()
		<-old.done
		// A failed publish forgot its entry: claim again.
	}
}

// finish records where a claimed id was stored, or forgets it after a failure.
func (d *dedup) finish(e *dedupEntry, partition int, offset int64, now time.Time, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e.partition, e.offset, e.at, e.ok = partition, offset, now, ok
	if ok {
		d.order = append(d.order, e)
	} else if d.seen[e.id] == e {
		delete(d.seen, e.id)
	}
	close(e.done)
}

// remember adds an id found in the log (rebuilding after a restart).
func (d *dedup) remember(id string, partition int, offset int64, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[id]; ok {
		return
	}
	e := &dedupEntry{id: id, partition: partition, offset: offset, at: at, done: make(chan struct{}), ok: true}
	close(e.done)
	d.seen[id] = e
	d.order = append(d.order, e)
}

// expire forgets ids stored longer ago than the window. Called with mu held.
func (d *dedup) expire(now time.Time) {
	i := 0
	for ; i < len(d.order) && now.Sub(d.order[i].at) > d.window; i++ {
		if d.seen[d.order[i].id] == d.order[i] {
			delete(d.seen, d.order[i].id)
		}
	}
	if i > 0 {
		d.order = append(d.order[:0], d.order[i:]...)
	}
}

// rebuildDedup reads the last window of every partition and remembers the
// ids it finds, so deduplication survives a restart. Message timestamps say
// how far back to read.
func (t *topic) rebuildDedup(now time.Time) error {
	if t.rec.Config.DedupWindow <= 0 {
		return nil
	}
	since := now.Add(-t.rec.Config.DedupWindow).UnixMilli()
	var errs []error
	for p, l := range t.parts {
		off, ok, err := l.OffsetForTime(since)
		if err != nil || !ok {
			errs = append(errs, err)
			continue
		}
		for off < l.VisibleOffset() {
			res, err := l.Read(off, 1<<20)
			if err != nil {
				errs = append(errs, err)
				break
			}
			err = record.Split(res.Data, func(h record.Header, b []byte) error {
				return record.Records(b, record.Limits{}, func(r record.Record) error {
					if r.Offset < off {
						return nil
					}
					for _, hd := range r.Headers {
						if hd.Key == headerID {
							t.dedup.remember(string(hd.Value), p, r.Offset, time.UnixMilli(r.Timestamp))
						}
					}
					return nil
				})
			})
			if err != nil && !errors.Is(err, record.ErrCompressed) {
				errs = append(errs, err)
				break
			}
			off = res.NextOffset
		}
	}
	return errors.Join(errs...)
}
