package redisdriver

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/workload"
)

// Producer implements driver.Bench.
func (b *bench) Producer(ctx context.Context, i int) (driver.Producer, error) {
	p := &producer{rdb: newClient(b.d.cfg.Addr), queue: make(chan item, maxWaiting)}
	if b.spec.Pattern == workload.PubSub {
		ch := b.channel()
		p.add = func(pipe redis.Pipeliner, it item) { pipe.Publish(context.Background(), ch, it.payload) }
	} else {
		p.add = func(pipe redis.Pipeliner, it item) {
			pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: b.key(it.partition), Values: []any{field, it.payload}})
		}
	}
	if err := p.rdb.Ping(ctx).Err(); err != nil {
		p.rdb.Close()
		return nil, err
	}
	p.wg.Go(p.send)
	return p, nil
}

type item struct {
	partition int
	payload   []byte
	done      func(error)
	flush     chan struct{}
}

// producer pipelines what queued up while the previous pipeline was out.
type producer struct {
	rdb   *redis.Client
	add   func(redis.Pipeliner, item)
	queue chan item
	wg    sync.WaitGroup
	close sync.Once
}

func (p *producer) Publish(ctx context.Context, partition int, payload []byte, done func(error)) error {
	select {
	case p.queue <- item{partition: partition, payload: payload, done: done}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *producer) send() {
	batch := make([]item, 0, maxPipeline)
	for {
		it, ok := <-p.queue
		if !ok {
			return
		}
		batch = append(batch[:0], it)
	more:
		for len(batch) < maxPipeline && it.flush == nil {
			select {
			case it, ok = <-p.queue:
				if !ok {
					break more
				}
				batch = append(batch, it)
			default:
				break more
			}
		}
		p.exec(batch)
	}
}

// exec sends the batch's messages as one pipeline, resolves them, then
// releases a flush marker (always last in a batch).
func (p *producer) exec(batch []item) {
	var marker chan struct{}
	if last := batch[len(batch)-1]; last.flush != nil {
		marker, batch = last.flush, batch[:len(batch)-1]
	}
	if len(batch) > 0 {
		pipe := p.rdb.Pipeline()
		for _, it := range batch {
			p.add(pipe, it)
		}
		cmds, err := pipe.Exec(context.Background())
		for i, it := range batch {
			e := err
			if i < len(cmds) {
				e = cmds[i].Err()
			}
			it.done(e)
		}
	}
	if marker != nil {
		close(marker)
	}
}

func (p *producer) Flush(ctx context.Context) error {
	marker := make(chan struct{})
	select {
	case p.queue <- item{flush: marker}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-marker:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *producer) Close() error {
	var err error
	p.close.Do(func() {
		close(p.queue)
		p.wg.Wait()
		err = p.rdb.Close()
	})
	return errors.Join(err)
}
