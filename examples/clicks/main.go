// Command clicks is clickstream analytics on Ferry: the event-stream
// pattern.
//
// Click events go to a partitioned topic, keyed by user id: all clicks of
// a user land in the same partition, in order. A consumer group (a stream
// subscription) of a few counters splits the partitions between its
// members; each counts the page views of its partitions and commits its
// position. The topic is a durable log, so the totals can be rebuilt at
// any time by replaying it from the start: the program does that and
// checks the rebuilt totals equal the live ones.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/ferrymq/ferry/client"
)

// click is one event, as published.
type click struct {
	User string    `json:"user"`
	Page string    `json:"page"`
	At   time.Time `json:"at"`
}

// pages, some far more visited than others.
var pages = []string{"/", "/", "/", "/pricing", "/pricing", "/docs", "/docs", "/docs/quickstart",
	"/blog", "/signup", "/about"}

func main() {
	server := flag.String("server", envOr("FERRY_SERVER", "http://127.0.0.1:8080"), "broker address (env FERRY_SERVER)")
	n := flag.Int("n", 2000, "number of click events")
	partitions := flag.Int("partitions", 4, "partitions of the topic")
	counters := flag.Int("counters", 3, "members of the consumer group")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	if err := run(ctx, *server, *n, int32(*partitions), *counters); err != nil {
		fmt.Fprintln(os.Stderr, "clicks:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, server string, n int, partitions int32, counters int) error {
	c, err := client.New(server)
	if err != nil {
		return err
	}
	defer c.Close()

	// A fresh topic per run, deleted at the end.
	topic := fmt.Sprintf("clicks-%d", time.Now().UnixNano())
	if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: partitions}); err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.DeleteTopic(ctx, topic)
	}()
	const group = "page-views"
	if _, err := c.CreateSubscription(ctx, topic, group, client.SubscriptionConfig{
		Kind: client.KindStream, StartAt: client.StartEarliest}); err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}

	// Start the counters first and let the group settle, so that each
	// partition has one owner before the clicks flow. (A rebalance later
	// is fine too: a partition's new owner resumes from the committed
	// offset. But counts kept in memory, as here, would then count the
	// uncommitted tail twice.)
	cctx, stopCounters := context.WithCancel(ctx)
	defer stopCounters()
	members := make([]*member, counters)
	for i := range members {
		s, err := c.ConsumeStream(cctx, topic, group, client.WithAutoCommit(100*time.Millisecond))
		if err != nil {
			return fmt.Errorf("counter %d: %w", i+1, err)
		}
		defer s.Close()
		members[i] = &member{s: s, pages: map[string]int{}}
	}
	if err := waitGroupSettled(ctx, c, topic, group, min(counters, int(partitions))); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Go(func() { m.count(cctx) })
	}

	// Produce asynchronously: PublishAsync queues a click and returns at
	// once; the client sends the queued clicks in batches. The key (user
	// id) picks the partition with Kafka's murmur2 partitioner. Flush
	// waits until every click is acknowledged; each Future has its outcome.
	rng := rand.New(rand.NewPCG(1, 2)) // the same clicks every run
	futures := make([]*client.Future, n)
	for i := range futures {
		ev := click{User: fmt.Sprintf("user-%d", rng.IntN(40)), Page: pages[rng.IntN(len(pages))], At: time.Now()}
		value, _ := json.Marshal(ev)
		futures[i] = c.PublishAsync(ctx, topic, client.Message{Key: []byte(ev.User), Value: value})
	}
	if err := c.Flush(ctx); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	for _, f := range futures {
		if _, err := f.Wait(ctx); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	fmt.Printf("published %d clicks to %s (%d partitions, key = user id)\n", n, topic, partitions)

	// The group is done when its lag is zero: every partition's committed
	// offset has reached the partition's end.
	if err := waitLagZero(ctx, c, topic, group); err != nil {
		return err
	}
	stopCounters()
	wg.Wait()
	live := map[string]int{}
	for i, m := range members {
		if m.err != nil {
			return fmt.Errorf("counter %d: %w", i+1, m.err)
		}
		fmt.Printf("counter %d: partitions %v, %d clicks\n", i+1, m.s.Assignment().Partitions, m.clicks)
		for page, v := range m.pages {
			live[page] += v
		}
	}

	// Rebuild: replay every partition from the start, with plain reads
	// (no subscription, nothing committed), and count again.
	rebuilt := map[string]int{}
	userPartition := map[string]int32{}
	for p := range partitions {
		for m, err := range c.Replay(ctx, topic, p, client.Earliest(), client.ReadOptions{}) {
			if err != nil {
				return fmt.Errorf("replay partition %d: %w", p, err)
			}
			var ev click
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				return fmt.Errorf("partition %d offset %d: %w", p, m.Offset, err)
			}
			rebuilt[ev.Page]++
			if q, ok := userPartition[ev.User]; ok && q != p {
				return fmt.Errorf("%s has clicks in partitions %d and %d", ev.User, q, p)
			}
			userPartition[ev.User] = p
		}
	}
	if !maps.Equal(live, rebuilt) {
		return fmt.Errorf("rebuilt totals %v differ from live totals %v", rebuilt, live)
	}
	fmt.Printf("rebuild from the log matches the live totals (%d clicks, %d users, each in one partition)\n",
		sum(rebuilt), len(userPartition))

	fmt.Println("top pages:")
	top := slices.SortedFunc(maps.Keys(live), func(a, b string) int {
		return cmp.Or(cmp.Compare(live[b], live[a]), cmp.Compare(a, b))
	})
	for i, page := range top[:min(5, len(top))] {
		fmt.Printf("  %d. %-18s %5d\n", i+1, page, live[page])
	}
	return nil
}

// member is one counter of the group.
type member struct {
	s      *client.StreamConsumer
	pages  map[string]int
	clicks int
	err    error
}

// count counts page views until ctx ends. A message counts as processed
// once the loop body is done with it; the consumer commits processed
// positions every 100 ms (WithAutoCommit) and when it is closed.
func (m *member) count(ctx context.Context) {
	for msg, err := range m.s.Messages(ctx) {
		if err != nil {
			if ctx.Err() == nil { // not just the end of counting
				m.err = err
			}
			return
		}
		var ev click
		if err := json.Unmarshal(msg.Value, &ev); err != nil {
			continue // not a click: skip it
		}
		m.pages[ev.Page]++
		m.clicks++
	}
}

// waitGroupSettled waits until every partition has an owner and the
// owners are the expected number of distinct members.
func waitGroupSettled(ctx context.Context, c *client.Client, topic, group string, members int) error {
	return poll(ctx, "the group to settle", func() (bool, error) {
		sub, err := c.DescribeSubscription(ctx, topic, group)
		if err != nil {
			return false, err
		}
		owners := map[string]bool{}
		for _, p := range sub.Partitions {
			if p.Owner == "" {
				return false, nil
			}
			owners[p.Owner] = true
		}
		return len(owners) == members, nil
	})
}

// waitLagZero waits until the group has committed every message.
func waitLagZero(ctx context.Context, c *client.Client, topic, group string) error {
	return poll(ctx, "the group's lag to reach zero", func() (bool, error) {
		sub, err := c.DescribeSubscription(ctx, topic, group)
		if err != nil {
			return false, err
		}
		for _, p := range sub.Partitions {
			if p.Backlog > 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

// poll calls done every 50 ms until it reports true, fails or ctx ends.
func poll(ctx context.Context, what string, done func() (bool, error)) error {
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func sum(m map[string]int) (total int) {
	for _, v := range m {
		total += v
	}
	return total
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
