package client_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/server"
)

// startBroker runs a broker in a temporary folder for an example; stop
// shuts it down and removes the folder. A real program connects to a
// running `ferry serve` instead.
func startBroker() (addr string, stop func()) {
	dir, err := os.MkdirTemp("", "ferry-example-")
	if err != nil {
		panic(err)
	}
	cfg := server.Defaults()
	cfg.DataDir = dir
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "127.0.0.1:0"
	s, err := server.Start(cfg, nil)
	if err != nil {
		panic(err)
	}
	return s.Addr(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		os.RemoveAll(dir)
	}
}

func ExampleClient_Publish() {
	addr, stop := startBroker()
	defer stop()
	ctx := context.Background()

	c, err := client.New(addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 3}); err != nil {
		panic(err)
	}
	// Messages of one key go to one partition, in order.
	res, err := c.Publish(ctx, "orders",
		client.Message{Key: []byte("customer-42"), Value: []byte(`{"item":"book"}`)},
		client.Message{Key: []byte("customer-42"), Value: []byte(`{"item":"pen"}`)},
	)
	if err != nil {
		panic(err)
	}
	fmt.Println(res[0].Partition == res[1].Partition, res[0].Offset, res[1].Offset)
	// Output: true 0 1
}

func ExampleClient_PublishAsync() {
	addr, stop := startBroker()
	defer stop()
	ctx := context.Background()

	c, err := client.New(addr, client.WithPublishLinger(2*time.Millisecond), client.WithAutoMessageID(true))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "clicks", client.TopicConfig{}); err != nil {
		panic(err)
	}
	var futures []*client.Future
	for i := range 1000 {
		futures = append(futures, c.PublishAsync(ctx, "clicks", client.Message{Value: fmt.Appendf(nil, "click %d", i)}))
	}
	// Flush sends what still lingers and waits for the acknowledgements.
	if err := c.Flush(ctx); err != nil {
		panic(err)
	}
	last, err := futures[999].Wait(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("last offset:", last.Offset)
	// Output: last offset: 999
}

func ExampleClient_SubscribeQueue() {
	addr, stop := startBroker()
	defer stop()
	ctx := context.Background()

	c, err := client.New(addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.CreateTopic(ctx, "emails", client.TopicConfig{Retention: client.Retention{Work: true}})
	c.CreateSubscription(ctx, "emails", "senders", client.SubscriptionConfig{
		Kind: client.KindQueue, StartAt: client.StartEarliest, MaxDeliveries: 5})
	for _, to := range []string{"ann@example.com", "bob@example.com", "cy@example.com"} {
		c.Publish(ctx, "emails", client.Message{Value: []byte(to)})
	}

	// Four workers; a delivery is acked when the handler returns nil and
	// delivered again when it fails.
	var mu sync.Mutex
	var sent []string
	ctx, cancel := context.WithCancel(ctx)
	err = c.SubscribeQueue(ctx, "emails", "senders", func(ctx context.Context, d *client.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, string(d.Message.Value))
		if len(sent) == 3 {
			cancel() // a real worker runs until it is told to stop
		}
		return nil
	}, client.WithConcurrency(4))
	if err != nil {
		panic(err)
	}
	slices.Sort(sent)
	fmt.Println(sent)
	// Output: [ann@example.com bob@example.com cy@example.com]
}

func ExampleClient_SubscribeStream() {
	addr, stop := startBroker()
	defer stop()
	ctx := context.Background()

	c, err := client.New(addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.CreateTopic(ctx, "payments", client.TopicConfig{Partitions: 2})
	c.CreateSubscription(ctx, "payments", "ledger", client.SubscriptionConfig{
		Kind: client.KindStream, StartAt: client.StartEarliest})
	for p := range int32(2) {
		c.PublishTo(ctx, "payments", p, client.Message{Value: []byte("a")}, client.Message{Value: []byte("b")})
	}

	// Every member of the group gets some partitions; messages of a
	// partition come in order. Positions are committed automatically.
	var mu sync.Mutex
	got := map[int32]string{}
	ctx, cancel := context.WithCancel(ctx)
	err = c.SubscribeStream(ctx, "payments", "ledger", func(ctx context.Context, m *client.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[m.Partition] += string(m.Value)
		if len(got[0])+len(got[1]) == 4 {
			cancel()
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(got[0], got[1])

	// The group resumes after what it committed: the lag is zero.
	sub, _ := c.DescribeSubscription(context.Background(), "payments", "ledger")
	for _, p := range sub.GetPartitions() {
		fmt.Printf("partition %d: committed %d, lag %d\n", p.GetPartition(), p.GetCommitted(), p.GetBacklog())
	}
	// Output:
	// ab ab
	// partition 0: committed 2, lag 0
	// partition 1: committed 2, lag 0
}

func ExampleClient_ConsumeEphemeral() {
	addr, stop := startBroker()
	defer stop()
	ctx := context.Background()

	c, err := client.New(addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.CreateTopic(ctx, "chat.general", client.TopicConfig{})
	c.CreateTopic(ctx, "chat.random", client.TopicConfig{})

	// Every message published from now on to chat.<anything>.
	sub, err := c.ConsumeEphemeral(ctx, "chat.*")
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	for _, topic := range []string{"chat.general", "chat.random"} {
		c.Publish(ctx, topic, client.Message{Value: []byte("hello " + topic)})
		m, err := sub.Next(ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: %s\n", m.Topic, m.Value)
	}
	// Output:
	// chat.general: hello chat.general
	// chat.random: hello chat.random
}

func ExampleClient_Replay() {
	addr, stop := startBroker()
	defer stop()
	ctx := context.Background()

	c, err := client.New(addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.CreateTopic(ctx, "audit", client.TopicConfig{})
	for _, v := range []string{"created", "paid", "shipped", "delivered"} {
		c.Publish(ctx, "audit", client.Message{Value: []byte(v)})
	}

	// Read partition 0 from offset 1 to its end, two messages per read.
	for m, err := range c.Replay(ctx, "audit", 0, client.AtOffset(1), client.ReadOptions{MaxMessages: 2}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(m.Offset, string(m.Value))
	}
	// One Read from the earliest message still stored.
	res, err := c.Read(ctx, "audit", 0, client.Earliest(), client.ReadOptions{MaxMessages: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(res.Messages[0].Value), "next:", res.NextOffset, "end:", res.HighWatermark)
	// Output:
	// 1 paid
	// 2 shipped
	// 3 delivered
	// created next: 1 end: 4
}
