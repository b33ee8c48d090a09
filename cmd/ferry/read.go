package main

import (
	"bufio"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

const readLong = `Read a topic's stored messages without a subscription: replay. Nothing is
acknowledged or remembered; reading twice prints the same messages.

--from says where to start on each partition read: earliest (the first
message still stored, the default), latest (the end: with --follow, only
new messages), an offset, or a time: RFC 3339 (2026-05-01T12:00:00Z) or a
duration ago (-15m), which starts at the first message at or after it.

Without --partition every partition is read, one after the other (or all at
once with --follow). Without --follow the command ends at the end of the
stored messages; with it, it waits for new ones until Ctrl-C, --count or
--timeout. Output is as for consume.`

const readExample = `  # Everything stored in the topic
  ferry read orders

  # The last hour of partition 2, as JSON lines
  ferry read orders --partition 2 --from -1h -o json

  # From an offset, 100 messages
  ferry read orders -p 0 --from 1500 --count 100

  # New messages as they come (like tail -f)
  ferry read orders --from latest --follow`

const (
	// readWait is how long one Read waits for new messages when following.
	readWait = 10 * time.Second
	// readBatch is the most messages one Read returns.
	readBatch = 1000
)

func newReadCmd() *cobra.Command {
	var (
		o         consumeOptions
		partition int32
		from      string
		follow    bool
	)
	cmd := &cobra.Command{
		Use:               "read TOPIC",
		Aliases:           []string{"replay"},
		Short:             "Read a topic's stored messages from an offset or a time",
		Long:              readLong,
		Example:           readExample,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeTopicArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(cmd); err != nil {
				return err
			}
			pos, err := parsePosition(from, time.Now())
			if err != nil {
				return usageError(cmd, fmt.Errorf("--from: %w", err))
			}
			c, err := dial(cmd)
			if err != nil {
				return err
			}
			var partitions []int32
			if cmd.Flags().Changed("partition") {
				if partition < 0 {
					return usageError(cmd, errors.New("--partition is 0 or more"))
				}
				partitions = []int32{partition}
			} else {
				actx, cancel := adminCtx(cmd)
				resp, err := c.topics.DescribeTopic(actx, connect.NewRequest(&ferryv1.DescribeTopicRequest{Name: args[0]}))
				cancel()
				if err != nil {
					return c.rpcError(err)
				}
				for _, p := range resp.Msg.GetTopic().GetPartitions() {
					partitions = append(partitions, p.GetPartition())
				}
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			r := &reader{
				consumer: consumer{c: c, o: &o, s: newSession(cmd.Context(), o.timeout), out: out,
					p: newMessagePrinter(out, o.format), stderr: cmd.ErrOrStderr()},
				topic: args[0], from: pos, follow: follow,
			}
			defer r.s.close()
			err = r.run(partitions)
			if ferr := out.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	cmd.SetErrPrefix("ferry:")
	f := cmd.Flags()
	addServerFlag(f)
	f.Int32VarP(&partition, "partition", "p", 0, "read this partition only (default: every partition)")
	f.StringVar(&from, "from", "earliest", "earliest, latest, an offset, an RFC 3339 time or a duration ago as -15m")
	f.BoolVarP(&follow, "follow", "f", false, "wait for new messages at the end")
	o.add(f, false)
	o.prefetch = readBatch
	cmd.RegisterFlagCompletionFunc("from", fixedCompletion("earliest", "latest"))
	addOutputFlag(cmd, &o.format)
	return cmd
}

// reader runs `ferry read`.
type reader struct {
	consumer
	topic  string
	from   position
	follow bool
}

func (r *reader) run(partitions []int32) error {
	if !r.follow || len(partitions) == 1 {
		for _, p := range partitions {
			if err := r.partition(p); err != nil || r.doneReading() {
				return err
			}
		}
		return nil
	}
	// Following several partitions: one reader each; the first error ends
	// them all.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, p := range partitions {
		wg.Go(func() {
			if err := r.partition(p); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				r.s.cancel()
			}
		})
	}
	wg.Wait()
	return first
}

// doneReading reports whether the reading should stop: --count reached,
// Ctrl-C or --timeout.
func (r *reader) doneReading() bool { return r.s.ctx.Err() != nil }

// partition reads one partition from r.from on: to the end, or on for ever
// with --follow.
func (r *reader) partition(p int32) error {
	req := &ferryv1.ReadRequest{Topic: r.topic, Partition: p, MaxMessages: r.o.prefetch}
	switch {
	case r.from.latest:
		req.Start = &ferryv1.ReadRequest_Latest{Latest: true}
	case r.from.isTime():
		req.Start = &ferryv1.ReadRequest_Time{Time: timestamppb.New(r.from.time)}
	case r.from.offset >= 0:
		req.Start = &ferryv1.ReadRequest_Offset{Offset: r.from.offset}
	default:
		req.Start = &ferryv1.ReadRequest_Earliest{Earliest: true}
	}
	if r.follow {
		req.Wait = durationpb.New(readWait)
	}
	for {
		resp, err := r.c.read.Read(r.s.ctx, connect.NewRequest(req))
		if err != nil {
			if r.s.ended(err) {
				return nil
			}
			return r.c.rpcError(err)
		}
		msgs := resp.Msg.GetMessages()
		if len(msgs) > 0 {
			if !r.s.begin() {
				return nil
			}
			err := r.print(msgs)
			r.s.done()
			if err != nil {
				return err
			}
			if r.doneReading() {
				return nil
			}
		}
		next := resp.Msg.GetNextOffset()
		if !r.follow && (len(msgs) == 0 || next >= resp.Msg.GetHighWatermark()) {
			return nil
		}
		req.Start = &ferryv1.ReadRequest_Offset{Offset: next}
	}
}

// print prints messages up to --count, with the session's lock held; at
// --count it ends the session, which stops every partition's reader.
func (r *reader) print(msgs []*ferryv1.Message) error {
	for _, m := range msgs {
		if r.full() {
			break
		}
		if err := r.p.print(m, 0); err != nil {
			return err
		}
		r.printed++
	}
	if r.full() {
		r.s.cancel()
	}
	return r.out.Flush()
}
