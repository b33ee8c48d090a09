package engine_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/ferrymq/ferry/engine"
)

// A work queue: two workers share the tasks; each task is processed once and
// acknowledged.
func Example_workQueue() {
	dir, _ := os.MkdirTemp("", "ferry-example")
	defer os.RemoveAll(dir)
	b, err := engine.Open(engine.Options{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	ctx := context.Background()

	b.CreateTopic(ctx, "tasks", engine.TopicConfig{Retention: engine.Retention{Work: true}})
	b.CreateSubscription(ctx, "tasks", "workers", engine.SubscriptionConfig{Kind: engine.KindQueue, MaxDeliveries: 5})
	for _, task := range []string{"resize a.png", "resize b.png", "resize c.png", "resize d.png"} {
		b.Publish(ctx, "tasks", engine.Message{Value: []byte(task)})
	}

	w1, _ := b.JoinQueue("tasks", "workers")
	w2, _ := b.JoinQueue("tasks", "workers")
	var done []string
	for _, w := range []*engine.QueueMember{w1, w2} {
		deliveries, _ := w.Poll(2)
		for _, d := range deliveries {
			done = append(done, string(d.Message.Value))
			w.Ack(d.ID)
		}
	}
	sort.Strings(done)
	fmt.Println(done)
	info, _ := b.DescribeSubscription("tasks", "workers")
	fmt.Println("backlog:", info.Partitions[0].Backlog)
	// Output:
	// [resize a.png resize b.png resize c.png resize d.png]
	// backlog: 0
}

// Fan-out: every subscription of a topic sees every message.
func Example_fanOut() {
	dir, _ := os.MkdirTemp("", "ferry-example")
	defer os.RemoveAll(dir)
	b, _ := engine.Open(engine.Options{Dir: dir})
	defer b.Close()
	ctx := context.Background()

	b.CreateTopic(ctx, "user.signed-up", engine.TopicConfig{})
	for _, sub := range []string{"email", "billing", "analytics"} {
		b.CreateSubscription(ctx, "user.signed-up", sub, engine.SubscriptionConfig{Kind: engine.KindQueue})
	}
	b.Publish(ctx, "user.signed-up", engine.Message{Key: []byte("user-42"), Value: []byte(`{"id":42}`)})

	for _, sub := range []string{"email", "billing", "analytics"} {
		m, _ := b.JoinQueue("user.signed-up", sub)
		ds, _ := m.Poll(10)
		fmt.Println(sub, "got", string(ds[0].Message.Value))
		m.Ack(ds[0].ID)
	}
	// Output:
	// email got {"id":42}
	// billing got {"id":42}
	// analytics got {"id":42}
}

// Replay: read a partition again from a point in time, without a
// subscription.
func Example_replayFromTimestamp() {
	dir, _ := os.MkdirTemp("", "ferry-example")
	defer os.RemoveAll(dir)
	b, _ := engine.Open(engine.Options{Dir: dir})
	defer b.Close()
	ctx := context.Background()

	b.CreateTopic(ctx, "prices", engine.TopicConfig{})
	start := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for i := range 5 {
		b.Publish(ctx, "prices", engine.Message{
			Timestamp: start.Add(time.Duration(i) * time.Minute),
			Value:     []byte(fmt.Sprintf("tick %d", i)),
		})
	}

	from, _ := b.OffsetForTime("prices", 0, start.Add(3*time.Minute))
	res, _ := b.Read(ctx, "prices", 0, from, engine.ReadOptions{})
	for _, m := range res.Messages {
		fmt.Println(m.Offset, m.Timestamp.UTC().Format("15:04"), string(m.Value))
	}
	// Output:
	// 3 09:03 tick 3
	// 4 09:04 tick 4
}
