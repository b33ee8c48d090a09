// Command jobs is a background job system on Ferry: the message-queue
// pattern.
//
// A producer enqueues numbered jobs on a topic. A pool of workers takes
// them from one queue subscription: any job to any worker, each job
// acknowledged on its own. A job that fails is given back (nack) with a
// delay and delivered again; one that fails max_deliveries times is set
// aside in a dead-letter topic, with headers that say why. The program
// ends once every job is either done or dead-lettered.
//
// The failures are deterministic: job k fails for good when k is a
// multiple of 7 and fails once (then succeeds on retry) when k is a
// multiple of 5.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ferrymq/ferry/client"
)

// job is what a message carries.
type job struct {
	ID   int    `json:"id"`
	Task string `json:"task"`
}

func main() {
	server := flag.String("server", envOr("FERRY_SERVER", "http://127.0.0.1:8080"), "broker address (env FERRY_SERVER)")
	n := flag.Int("n", 50, "number of jobs to enqueue")
	workers := flag.Int("workers", 4, "number of workers")
	maxDeliveries := flag.Int("max-deliveries", 3, "deliveries before a job is dead-lettered")
	retryDelay := flag.Duration("retry-delay", 100*time.Millisecond, "delay before a failed job is delivered again")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after this long")
	flag.Parse()

	// Ctrl-C cancels ctx: the workers stop and the program exits cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	if err := run(ctx, *server, *n, *workers, int32(*maxDeliveries), *retryDelay); err != nil {
		fmt.Fprintln(os.Stderr, "jobs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, server string, n, workers int, maxDeliveries int32, retryDelay time.Duration) error {
	// One Client per process, shared by every goroutine.
	c, err := client.New(server)
	if err != nil {
		return err
	}
	defer c.Close()

	// A fresh topic per run, so runs never see each other's jobs.
	// Work retention deletes a job once every subscription acknowledged
	// it: the classic work queue.
	topic := fmt.Sprintf("jobs-%d", time.Now().UnixNano())
	dlq := topic + ".dead"
	if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Retention: client.Retention{Work: true}}); err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	// The broker creates the dead-letter topic on demand; we create it up
	// front so we can read it from the start. Sizing it for the largest job
	// (1 MiB by default) plus the ferry-dead-* headers saves the broker
	// raising its limit when the first big dead letter arrives.
	if _, err := c.CreateTopic(ctx, dlq, client.TopicConfig{MaxMessageBytes: 1<<20 + 4<<10}); err != nil {
		return fmt.Errorf("create dead-letter topic: %w", err)
	}
	defer func() { // delete the run's topics, even after Ctrl-C
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.DeleteTopic(ctx, topic)
		_ = c.DeleteTopic(ctx, dlq)
	}()
	_, err = c.CreateSubscription(ctx, topic, "workers", client.SubscriptionConfig{
		Kind:            client.KindQueue,
		StartAt:         client.StartEarliest,
		AckDeadline:     10 * time.Second, // a job not settled by then goes to another worker
		MaxDeliveries:   maxDeliveries,
		DeadLetterTopic: dlq,
		MaxInFlight:     2, // flow control: a worker holds at most 2 jobs at once
	})
	if err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	fmt.Printf("queue %s: subscription \"workers\", %d deliveries at most, dead letters to %s\n", topic, maxDeliveries, dlq)

	// Produce: one Publish call stores the whole batch and returns once
	// it is durable. The message ID makes a retried publish harmless: the
	// broker stores a given ID once within its dedup window.
	msgs := make([]client.Message, 0, n)
	for k := 1; k <= n; k++ {
		value, _ := json.Marshal(job{ID: k, Task: fmt.Sprintf("resize image %d", k)})
		msgs = append(msgs, client.Message{Value: value, ID: "job-" + strconv.Itoa(k)})
	}
	if _, err := c.Publish(ctx, topic, msgs...); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	fmt.Printf("enqueued %d jobs\n", n)

	t := newTally(n)
	// bg bounds the goroutines below: the workers and the dead-letter reader.
	bg, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	var wg sync.WaitGroup

	// Dead letters: follow the dead-letter topic with a reader. Each dead
	// letter is the original message plus ferry-dead-* headers.
	wg.Go(func() {
		for m, err := range c.Replay(bg, dlq, 0, client.Earliest(), client.ReadOptions{Wait: time.Second}) {
			if err != nil {
				t.fail(fmt.Errorf("read dead letters: %w", err))
				return
			}
			var j job
			_ = json.Unmarshal(m.Value, &j)
			reason, _ := m.Header(client.HeaderDeadReason)
			count, _ := m.Header(client.HeaderDeadDeliveries)
			fmt.Printf("dead letter: job %d after %s deliveries (%s)\n", j.ID, count, reason)
			t.record(j.ID, "dead")
		}
	})

	// The worker pool: each worker is its own consumer of the queue
	// subscription, as separate processes would be.
	for w := 1; w <= workers; w++ {
		q, err := c.ConsumeQueue(bg, topic, "workers")
		if err != nil {
			return fmt.Errorf("worker %d: %w", w, err)
		}
		wg.Go(func() {
			defer q.Close() // gives back what it did not settle
			if err := work(bg, q, w, retryDelay, t); err != nil && bg.Err() == nil {
				t.fail(fmt.Errorf("worker %d: %w", w, err))
			}
		})
	}

	// Wait until every job is done or dead-lettered.
	select {
	case <-t.complete:
	case <-ctx.Done():
	}
	stopBackground()
	wg.Wait()
	done, retried, dead, err := t.summary()
	if err != nil {
		return err
	}
	if done+dead != n {
		return fmt.Errorf("stopped with %d of %d jobs accounted for: %w", done+dead, n, context.Cause(ctx))
	}
	fmt.Printf("summary: %d jobs: %d done (%d after a retry), %d dead-lettered\n", n, done, retried, dead)
	fmt.Printf("all %d jobs accounted for\n", n)
	return nil
}

// work takes deliveries until ctx ends, and settles each: Ack when the job
// succeeded, Nack with a delay when it failed. After the last allowed
// delivery, the broker moves a nacked job to the dead-letter topic.
func work(ctx context.Context, q *client.QueueConsumer, worker int, retryDelay time.Duration, t *tally) error {
	for d, err := range q.Deliveries(ctx) {
		if err != nil {
			return err
		}
		var j job
		if err := json.Unmarshal(d.Message.Value, &j); err != nil {
			// A message we can never process: no point retrying it.
			fmt.Printf("worker %d: bad job %q, dropped\n", worker, d.Message.Value)
			_ = d.Ack(ctx)
			continue
		}
		if err := process(j, d.Count); err != nil {
			fmt.Printf("worker %d: job %d failed (delivery %d): %v\n", worker, j.ID, d.Count, err)
			if err := d.Nack(ctx, retryDelay); err != nil && ctx.Err() == nil {
				// Not fatal: unsettled, the job comes back after its deadline.
				fmt.Printf("worker %d: nack job %d: %v\n", worker, j.ID, err)
			}
			continue
		}
		// Ack after the work is done: had the worker crashed before this,
		// the job would be delivered again (at-least-once).
		if err := d.Ack(ctx); err != nil {
			if ctx.Err() == nil {
				fmt.Printf("worker %d: ack job %d: %v\n", worker, j.ID, err)
			}
			continue
		}
		if d.Count > 1 {
			t.record(j.ID, "retried")
		} else {
			t.record(j.ID, "done")
		}
	}
	return nil
}

// process pretends to do the job. Delivery counts from 1.
func process(j job, delivery int32) error {
	time.Sleep(time.Duration(j.ID%4) * 5 * time.Millisecond)
	switch {
	case j.ID%7 == 0:
		return errors.New("corrupt image")
	case j.ID%5 == 0 && delivery == 1:
		return errors.New("storage timeout")
	}
	return nil
}

// tally accounts for every job once, however many times it was delivered.
type tally struct {
	n        int
	mu       sync.Mutex
	outcome  map[int]string // job -> "done", "retried" (done after a retry) or "dead"
	err      error
	once     sync.Once
	complete chan struct{} // closed once all n are accounted for, or on error
}

func newTally(n int) *tally {
	return &tally{n: n, outcome: map[int]string{}, complete: make(chan struct{})}
}

func (t *tally) record(id int, outcome string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.outcome[id] = outcome
	if len(t.outcome) == t.n {
		t.once.Do(func() { close(t.complete) })
	}
}

func (t *tally) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.err = cmp.Or(t.err, err)
	t.once.Do(func() { close(t.complete) })
}

func (t *tally) summary() (done, retried, dead int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range t.outcome {
		switch o {
		case "retried":
			retried++
			done++
		case "done":
			done++
		case "dead":
			dead++
		}
	}
	return done, retried, dead, t.err
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
