package engine_test

import (
	"context"
	"fmt"
	"os"

	"github.com/ferrymq/ferry/engine"
)

// Purge: a queue's backlog of stale jobs is dropped; a job in flight can no
// longer be acknowledged, and jobs published afterwards are delivered.
func ExampleBroker_PurgeSubscription() {
	dir, _ := os.MkdirTemp("", "ferry-example")
	defer os.RemoveAll(dir)
	b, _ := engine.Open(engine.Options{Dir: dir})
	defer b.Close()
	ctx := context.Background()

	b.CreateTopic(ctx, "reports", engine.TopicConfig{})
	b.CreateSubscription(ctx, "reports", "renderers", engine.SubscriptionConfig{Kind: engine.KindQueue})
	for i := range 3 {
		b.Publish(ctx, "reports", engine.Message{Value: []byte(fmt.Sprintf("stale %d", i))})
	}
	w, _ := b.JoinQueue("reports", "renderers")
	held, _ := w.Poll(1)

	n, _ := b.PurgeSubscription(ctx, "reports", "renderers")
	fmt.Println("purged:", n)
	fmt.Println("ack of a purged delivery:", w.Ack(held[0].ID) != nil)

	b.Publish(ctx, "reports", engine.Message{Value: []byte("fresh")})
	ds, _ := w.Poll(10)
	for _, d := range ds {
		fmt.Println("delivered:", string(d.Message.Value))
		w.Ack(d.ID)
	}
	// Output:
	// purged: 3
	// ack of a purged delivery: true
	// delivered: fresh
}
