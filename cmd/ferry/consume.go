package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

const consumeLong = `Consume a durable subscription: print each message, then acknowledge it
(queue) or commit its offset (stream), so that it is not delivered to this
subscription again. With --no-ack nothing is acknowledged or committed:
queue messages are delivered again once this command ends (and one
consumer holds at most the subscription's --max-in-flight of them), a
stream resumes where it was.

The subscription's kind decides how consumers share it:
  queue   any message to any consumer; run the command several times to
          share the work
  stream  the topic's partitions are split among the running consumers of
          the subscription; each prints its partitions' messages in order

By default the value of each message is printed on a line of its own; with
-o json each message is a JSON object on a line: topic, partition, offset,
timestamp, key, value (text, or value_base64 when not UTF-8), headers and,
for queues, delivery_count.

The command runs until Ctrl-C, until --count messages were printed, or
until --timeout passed without a message; each is a success (exit 0), even
with fewer than --count messages. A stop never falls between printing a
batch and acknowledging it. Messages are requested --prefetch at
a time (credit) and more are asked for as they are printed.`

const consumeExample = `  # Work off a queue, printing values
  ferry consume jobs workers

  # Take exactly 10 messages, or fewer if none comes for 5 seconds
  ferry consume jobs workers --count 10 --timeout 5s

  # Look without taking: nothing is acknowledged
  ferry consume jobs workers --no-ack --count 5 --timeout 2s

  # JSON lines for a script
  ferry consume orders analytics -o json | jq -r '.value'`

// consumeOptions are the flags of the commands that print messages as they
// come: consume, tail and read.
type consumeOptions struct {
	noAck    bool
	count    int
	timeout  time.Duration
	prefetch int32
	format   string
}

func (o *consumeOptions) add(f *pflag.FlagSet, prefetch bool) {
	f.IntVarP(&o.count, "count", "n", 0, "stop after this many messages (0: no limit)")
	f.DurationVar(&o.timeout, "timeout", 0, "stop after this long without a message (0: wait for ever)")
	if prefetch {
		f.Int32Var(&o.prefetch, "prefetch", 100, "messages the broker may send ahead of those printed (credit)")
	}
}

func (o *consumeOptions) check(cmd *cobra.Command) error {
	if err := checkOutput(cmd, o.format); err != nil {
		return err
	}
	if o.count < 0 || o.timeout < 0 || o.prefetch < 1 {
		return usageError(cmd, errors.New("--count and --timeout are 0 or more, --prefetch 1 or more"))
	}
	return nil
}

// firstCredit is the credit a stream opens with: --prefetch, but never more
// than --count, so no message is taken that will not be printed.
func (o *consumeOptions) firstCredit() int32 {
	if o.count > 0 && int64(o.count) < int64(o.prefetch) {
		return int32(o.count)
	}
	return o.prefetch
}

// credit tracks what a consumer may still be sent, so that with --count
// the grants never add up to more than the messages still wanted.
type credit struct {
	count   int // --count, 0: no limit
	granted int // credit given so far, the first included
}

// grant is the credit to give back after n more messages were handled.
func (c *credit) grant(n int) int32 {
	g := n
	if c.count > 0 {
		g = min(g, c.count-c.granted)
	}
	if g <= 0 {
		return 0
	}
	c.granted += g
	return int32(g)
}

func newConsumeCmd() *cobra.Command {
	var o consumeOptions
	cmd := &cobra.Command{
		Use:               "consume TOPIC SUBSCRIPTION",
		Short:             "Print the messages of a queue or stream subscription",
		Long:              consumeLong,
		Example:           consumeExample,
		Args:              usageArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeTopicSubArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(cmd); err != nil {
				return err
			}
			c, err := dial(cmd)
			if err != nil {
				return err
			}
			actx, cancel := adminCtx(cmd)
			resp, err := c.subs.DescribeSubscription(actx, connect.NewRequest(&ferryv1.DescribeSubscriptionRequest{Topic: args[0], Name: args[1]}))
			cancel()
			if err != nil {
				return c.rpcError(err)
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			k := &consumer{c: c, o: &o, s: newSession(cmd.Context(), o.timeout), out: out,
				p: newMessagePrinter(out, o.format), stderr: cmd.ErrOrStderr()}
			defer k.s.close()
			switch kind := resp.Msg.GetSubscription().GetConfig().GetKind(); kind {
			case ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_QUEUE:
				err = k.queue(args[0], args[1])
			case ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_STREAM:
				err = k.stream(args[0], args[1])
			default:
				err = fmt.Errorf("subscription %q of topic %q has a kind this ferry does not know (%v)", args[1], args[0], kind)
			}
			if ferr := out.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	cmd.SetErrPrefix("ferry:")
	f := cmd.Flags()
	addServerFlag(f)
	f.BoolVar(&o.noAck, "no-ack", false, "do not acknowledge (queue) or commit (stream) what is printed")
	o.add(f, true)
	addOutputFlag(cmd, &o.format)
	return cmd
}

// session is the life of a consuming stream: it ends on Ctrl-C, after
// --timeout without a message, or when the command is done, but never
// while a batch is being printed and acknowledged (between begin and end).
type session struct {
	ctx     context.Context // the stream's
	cancel  context.CancelFunc
	mu      sync.Mutex
	timeout time.Duration
	idle    *time.Timer
	stop    func() bool
}

func newSession(parent context.Context, timeout time.Duration) *session {
	s := &session{timeout: timeout}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(parent))
	s.stop = context.AfterFunc(parent, s.end)
	if timeout > 0 {
		s.idle = time.AfterFunc(timeout, s.end)
	}
	return s
}

// end stops the stream once the batch in hand is done.
func (s *session) end() {
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
}

// begin starts handling a batch of messages; false when the session has
// ended meanwhile (the batch is then left to be delivered again).
func (s *session) begin() bool {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return false
	}
	if s.idle != nil {
		s.idle.Stop()
	}
	return true
}

// done ends the batch begun; the idle clock starts again.
func (s *session) done() {
	if s.idle != nil {
		s.idle.Reset(s.timeout)
	}
	s.mu.Unlock()
}

func (s *session) close() {
	s.stop()
	if s.idle != nil {
		s.idle.Stop()
	}
	s.cancel()
}

// ended reports whether err is only the end of the session: a stream ends
// with an error when we cancel it.
func (s *session) ended(err error) bool {
	return s.ctx.Err() != nil && (errors.Is(err, context.Canceled) || connect.CodeOf(err) == connect.CodeCanceled)
}

// consumer runs `ferry consume`.
type consumer struct {
	c       *conn
	o       *consumeOptions
	s       *session
	out     *bufio.Writer
	p       *messagePrinter
	stderr  io.Writer
	printed int
}

// unaryCtx bounds an acknowledgement: it is sent even after Ctrl-C.
func (k *consumer) unaryCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(k.s.ctx), 10*time.Second)
}

func (k *consumer) warn(format string, args ...any) {
	fmt.Fprintf(k.stderr, "ferry: "+format+"\n", args...)
}

func (k *consumer) full() bool { return k.o.count > 0 && k.printed >= k.o.count }

// drain reads a consume stream until --count is reached, the stream ends or
// the session stops, and hands each batch of items to handle (which prints,
// then acknowledges and grants) between begin and done, so that stopping
// never falls between printing a batch and acknowledging it.
func drain[Res, T any](k *consumer, stream *connect.ServerStreamForClient[Res], consumerID func(*Res) string,
	items func(*Res) []T, handle func(consumerID string, items []T, cr *credit) error, cr *credit) error {
	defer stream.Close()
	var id string
	for !k.full() && stream.Receive() {
		msg := stream.Msg()
		if v := consumerID(msg); v != "" {
			id = v
		}
		batch := items(msg)
		if len(batch) == 0 {
			continue
		}
		if !k.s.begin() {
			break
		}
		err := handle(id, batch, cr)
		k.s.done()
		if err != nil {
			return err
		}
	}
	if err := stream.Err(); err != nil && !k.s.ended(err) {
		return k.c.rpcError(err)
	}
	return nil
}

func (k *consumer) queue(topic, sub string) error {
	cr := &credit{count: k.o.count}
	first := k.o.firstCredit()
	cr.granted = int(first)
	stream, err := k.c.cons.ConsumeQueue(k.s.ctx, connect.NewRequest(&ferryv1.ConsumeQueueRequest{
		Topic: topic, Subscription: sub, Credit: first,
	}))
	if err != nil {
		return k.c.rpcError(err)
	}
	return drain(k, stream, (*ferryv1.ConsumeQueueResponse).GetConsumerId, (*ferryv1.ConsumeQueueResponse).GetDeliveries, k.queueBatch, cr)
}

// queueBatch prints deliveries, then acknowledges them (unless --no-ack)
// and grants as much credit back. Deliveries past --count are neither
// printed nor acknowledged: they go to another consumer.
func (k *consumer) queueBatch(consumerID string, ds []*ferryv1.Delivery, cr *credit) error {
	ids := make([]string, 0, len(ds))
	for _, d := range ds {
		if k.full() {
			break
		}
		if err := k.p.print(d.GetMessage(), d.GetCount()); err != nil {
			return err
		}
		ids = append(ids, d.GetId())
		k.printed++
	}
	if err := k.out.Flush(); err != nil {
		return err
	}
	grant := cr.grant(len(ids))
	ctx, cancel := k.unaryCtx()
	defer cancel()
	var err error
	if !k.o.noAck {
		_, err = k.c.cons.Ack(ctx, connect.NewRequest(&ferryv1.AckRequest{ConsumerId: consumerID, DeliveryIds: ids, Grant: grant}))
		if connect.CodeOf(err) == connect.CodeNotFound {
			// Some deliveries outlived their deadline and went to another
			// consumer; the rest were acknowledged, and the grant given.
			k.warn("some messages were not acknowledged in time and will be delivered again: %s", errMessage(err))
			err = nil
		}
	} else if grant > 0 {
		_, err = k.c.cons.Grant(ctx, connect.NewRequest(&ferryv1.GrantRequest{ConsumerId: consumerID, Credit: grant}))
	}
	return k.c.rpcError(err)
}

func (k *consumer) stream(topic, sub string) error {
	cr := &credit{count: k.o.count}
	first := k.o.firstCredit()
	cr.granted = int(first)
	stream, err := k.c.cons.ConsumeStream(k.s.ctx, connect.NewRequest(&ferryv1.ConsumeStreamRequest{
		Topic: topic, Subscription: sub, Credit: first,
	}))
	if err != nil {
		return k.c.rpcError(err)
	}
	return drain(k, stream, (*ferryv1.ConsumeStreamResponse).GetConsumerId, (*ferryv1.ConsumeStreamResponse).GetMessages, k.streamBatch, cr)
}

// streamBatch prints messages, then commits the offsets after them (unless
// --no-ack) and grants as much credit back.
func (k *consumer) streamBatch(consumerID string, ms []*ferryv1.Message, cr *credit) error {
	offsets := map[int32]int64{}
	n := 0
	for _, m := range ms {
		if k.full() {
			break
		}
		if err := k.p.print(m, 0); err != nil {
			return err
		}
		offsets[m.GetPartition()] = m.GetOffset() + 1
		k.printed++
		n++
	}
	if err := k.out.Flush(); err != nil {
		return err
	}
	grant := cr.grant(n)
	ctx, cancel := k.unaryCtx()
	defer cancel()
	var err error
	if !k.o.noAck {
		_, err = k.c.cons.Commit(ctx, connect.NewRequest(&ferryv1.CommitRequest{ConsumerId: consumerID, Offsets: offsets, Grant: grant}))
		if connect.CodeOf(err) == connect.CodeFailedPrecondition {
			// A rebalance moved a partition away meanwhile: its new owner
			// starts from the last commit and prints these again. The
			// broker applied the grant all the same (consume.proto).
			k.warn("offsets not committed, a partition moved to another consumer: %s", errMessage(err))
			err = nil
		}
	} else if grant > 0 {
		_, err = k.c.cons.Grant(ctx, connect.NewRequest(&ferryv1.GrantRequest{ConsumerId: consumerID, Credit: grant}))
	}
	return k.c.rpcError(err)
}
