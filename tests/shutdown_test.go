package tests

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/server"
)

// A graceful shutdown under load loses no acknowledged publish: every
// message the server answered for is in the data folder afterwards.
func TestShutdownUnderLoadKeepsAcknowledged(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Defaults()
	cfg.DataDir = dir
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "127.0.0.1:0"
	s, err := server.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.Addr()
	hc := h2cClient()
	topics := ferryv1connect.NewTopicServiceClient(hc, base)
	pub := ferryv1connect.NewPublishServiceClient(hc, base)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: "load", Config: &ferryv1.TopicConfig{Partitions: 4}})); err != nil {
		t.Fatal(err)
	}

	type acked struct {
		p     int32
		off   int64
		value string
	}
	var (
		mu    sync.Mutex
		got   []acked
		total atomic.Int64
		wg    sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				var msgs []*ferryv1.PublishMessage
				for j := range 10 {
					msgs = append(msgs, &ferryv1.PublishMessage{Value: fmt.Appendf(nil, "w%d-%d-%d", w, i, j)})
				}
				res, err := pub.Publish(ctx, connect.NewRequest(&ferryv1.PublishRequest{Topic: "load", Messages: msgs}))
				if err != nil {
					return // the server went away: this batch was not acknowledged
				}
				mu.Lock()
				for j, r := range res.Msg.Results {
					got = append(got, acked{r.Partition, r.Offset, string(msgs[j].Value)})
				}
				mu.Unlock()
				total.Add(int64(len(msgs)))
			}
		})
	}
	// Shut down once the load is well under way.
	waitFor(t, 20*time.Second, func() bool { return total.Load() >= 2000 })
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := s.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	wg.Wait()

	b, err := engine.Open(engine.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, a := range got {
		res, err := b.Read(ctx, "load", int(a.p), a.off, engine.ReadOptions{MaxMessages: 1})
		if err != nil || len(res.Messages) != 1 || string(res.Messages[0].Value) != a.value {
			t.Fatalf("acknowledged %s at %d/%d: read %v, %v", a.value, a.p, a.off, res.Messages, err)
		}
	}
	t.Logf("%d acknowledged messages all found after shutdown", len(got))
}
