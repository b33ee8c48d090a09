package kafkadriver

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrymq/ferry/bench/driver"
)

// Producer implements driver.Bench: each producer a client of its own.
func (b *bench) Producer(ctx context.Context, i int) (driver.Producer, error) {
	kc, err := b.newClient(
		kgo.DefaultProduceTopic(b.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(linger),
	)
	if err != nil {
		return nil, err
	}
	p := &producer{kc: kc}
	p.pool.New = func() any {
		r := &promised{pool: &p.pool}
		r.promise = r.finish
		return r
	}
	return p, nil
}

type producer struct {
	kc   *kgo.Client
	pool sync.Pool // of *promised
}

// promised is one record in flight with the runner's done. Pooled, with
// its promise bound once, a publish allocates nothing of its own.
// franz-go reads nothing of a record after its promise returns.
type promised struct {
	rec     kgo.Record
	done    func(error)
	promise func(*kgo.Record, error) // finish
	pool    *sync.Pool
}

func (r *promised) finish(_ *kgo.Record, err error) {
	done := r.done
	r.rec, r.done = kgo.Record{}, nil
	r.pool.Put(r)
	done(err)
}

// Publish implements driver.Producer. Produce blocks while franz-go's
// buffer is full, and calls the promise exactly once, with ctx's error
// when ctx ends first; the payload is the record's value, not copied (the
// runner keeps it until done).
func (p *producer) Publish(ctx context.Context, partition int, payload []byte, done func(error)) error {
	r := p.pool.Get().(*promised)
	r.rec.Partition, r.rec.Value, r.done = int32(partition), payload, done
	p.kc.Produce(ctx, &r.rec, r.promise)
	return nil
}

// Flush implements driver.Producer: franz-go's Flush returns once every
// buffered record's promise has been called.
func (p *producer) Flush(ctx context.Context) error { return p.kc.Flush(ctx) }

func (p *producer) Close() error {
	p.kc.Close()
	return nil
}
