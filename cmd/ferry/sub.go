package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

func newSubCmd() *cobra.Command {
	group := commandGroup(&cobra.Command{
		Use:     "sub",
		Aliases: []string{"subscription"},
		Short:   "Create, list, describe, seek, purge and delete subscriptions",
		Long: `Administer subscriptions: named, durable consumer state on a topic. Every
subscription sees every message of its topic (several on one topic is
fan-out). Its kind says how its consumers share the work:

  queue   any message to any consumer; each is acknowledged on its own, one
          not acknowledged within the ack deadline is delivered again, and
          past --max-deliveries it moves to a dead-letter topic
  stream  the topic's partitions are split among the consumers, each reads
          its partitions in order and commits offsets (a Kafka consumer
          group); seek moves the committed offsets
Purge drops a subscription's backlog (what it has not consumed yet).`,
		Example: `  ferry sub create orders billing --kind queue --max-deliveries 5
  ferry sub create orders analytics --kind stream --start earliest
  ferry sub describe orders billing`,
	})
	group.SetErrPrefix("ferry:")
	addServerFlag(group.PersistentFlags())
	group.AddCommand(
		newSubCreateCmd(),
		newSubListCmd(),
		newSubDescribeCmd(),
		newSubSeekCmd(),
		newSubPurgeCmd(),
		newSubDeleteCmd(),
	)
	return group
}

func newSubCreateCmd() *cobra.Command {
	var (
		kind, start, ackDeadline, deadLetter, format string
		maxDeliveries, maxInFlight                   int32
		keyOrdering                                  bool
	)
	cmd := &cobra.Command{
		Use:   "create TOPIC NAME --kind queue|stream",
		Short: "Create a subscription on a topic",
		Long: `Create a durable subscription on a topic. It receives the messages published
after it was created (--start latest, the default) or every message still
stored (--start earliest). --ack-deadline, --max-deliveries,
--dead-letter-topic, --max-in-flight and --key-ordering apply to queues.`,
		Example: `  # A work queue: retried after 1 minute, dead-lettered after 5 failures
  ferry sub create jobs workers --kind queue --ack-deadline 1m --max-deliveries 5

  # One message per key in flight at a time
  ferry sub create orders fulfilment --kind queue --key-ordering

  # A consumer group that starts from the beginning of the topic
  ferry sub create orders analytics --kind stream --start earliest`,
		Args:              usageArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeTopicArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, format); err != nil {
				return err
			}
			cfg := &ferryv1.SubscriptionConfig{
				MaxDeliveries:   maxDeliveries,
				DeadLetterTopic: deadLetter,
				MaxInFlight:     maxInFlight,
				KeyOrdering:     keyOrdering,
			}
			switch kind {
			case "queue":
				cfg.Kind = ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_QUEUE
			case "stream":
				cfg.Kind = ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_STREAM
				for _, name := range []string{"ack-deadline", "max-deliveries", "dead-letter-topic", "max-in-flight", "key-ordering"} {
					if cmd.Flags().Changed(name) {
						return usageError(cmd, fmt.Errorf("--%s applies to queue subscriptions only", name))
					}
				}
			case "":
				return usageError(cmd, errors.New("--kind is required: queue or stream"))
			default:
				return usageError(cmd, fmt.Errorf("bad --kind %q: want queue or stream", kind))
			}
			switch start {
			case "latest":
				cfg.StartAt = ferryv1.StartPosition_START_POSITION_LATEST
			case "earliest":
				cfg.StartAt = ferryv1.StartPosition_START_POSITION_EARLIEST
			default:
				return usageError(cmd, fmt.Errorf("bad --start %q: want earliest or latest", start))
			}
			if cmd.Flags().Changed("ack-deadline") {
				d, err := parseDuration(ackDeadline)
				if err != nil || d <= 0 {
					return usageError(cmd, fmt.Errorf("bad --ack-deadline %q: want a duration as 30s or 5m", ackDeadline))
				}
				cfg.AckDeadline = durationpb.New(d)
			}
			if maxDeliveries < 0 || maxInFlight < 0 {
				return usageError(cmd, errors.New("--max-deliveries and --max-in-flight are 0 or more"))
			}
			c, ctx, cancel, err := adminConn(cmd, "")
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := c.subs.CreateSubscription(ctx, connect.NewRequest(&ferryv1.CreateSubscriptionRequest{
				Topic: args[0], Name: args[1], Config: cfg,
			}))
			if err != nil {
				return c.rpcError(err)
			}
			s := resp.Msg.GetSubscription()
			if format == outputJSON {
				return writeJSON(cmd.OutOrStdout(), newSubscriptionView(s))
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "created %s subscription %q on topic %q\n", kindName(s.GetConfig().GetKind()), s.GetName(), s.GetTopic())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "", "queue or stream (required)")
	f.StringVar(&start, "start", "latest", "where it starts: latest (messages published from now on) or earliest (every message stored)")
	f.StringVar(&ackDeadline, "ack-deadline", "", "queue: how long a delivery may stay unacknowledged before it is delivered again (default 30s)")
	f.Int32Var(&maxDeliveries, "max-deliveries", 0, "queue: move a message to the dead-letter topic after this many failed deliveries (0: never)")
	f.StringVar(&deadLetter, "dead-letter-topic", "", "queue: where dead letters go (default TOPIC.NAME.dlq)")
	f.Int32Var(&maxInFlight, "max-in-flight", 0, "queue: unacknowledged deliveries one consumer may hold (default 1000)")
	f.BoolVar(&keyOrdering, "key-ordering", false, "queue: at most one message per key in flight")
	cmd.RegisterFlagCompletionFunc("kind", fixedCompletion("queue", "stream"))
	cmd.RegisterFlagCompletionFunc("start", fixedCompletion("earliest", "latest"))
	addOutputFlag(cmd, &format)
	return cmd
}

func newSubListCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "list TOPIC",
		Aliases: []string{"ls"},
		Short:   "List a topic's subscriptions",
		Long: `List a topic's subscriptions, sorted by name, with their kind, the consumers
attached, the backlog (queue: stored and not acknowledged; stream: lag after
the committed offsets) and the deliveries in flight.`,
		Example: `  ferry sub list orders
  ferry sub list orders -o json | jq -r '.[] | select(.kind == "queue") | .name'`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeTopicArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := adminConn(cmd, format)
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := c.subs.ListSubscriptions(ctx, connect.NewRequest(&ferryv1.ListSubscriptionsRequest{Topic: args[0]}))
			if err != nil {
				return c.rpcError(err)
			}
			subs := resp.Msg.GetSubscriptions()
			out := cmd.OutOrStdout()
			if format == outputJSON {
				views := make([]subscriptionView, 0, len(subs))
				for _, s := range subs {
					views = append(views, newSubscriptionView(s))
				}
				return writeJSON(out, views)
			}
			tw := newTable(out)
			fmt.Fprintln(tw, "NAME\tKIND\tMEMBERS\tBACKLOG\tIN FLIGHT")
			for _, s := range subs {
				var backlog, inFlight int64
				for _, p := range s.GetPartitions() {
					backlog += p.GetBacklog()
					inFlight += int64(p.GetInFlight())
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", s.GetName(), kindName(s.GetConfig().GetKind()), s.GetMembers(), backlog, inFlight)
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &format)
	return cmd
}

func newSubDescribeCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "describe TOPIC NAME",
		Short: "Show a subscription's settings and its state on every partition",
		Long: `Show a subscription's settings and its state on every partition. For a
queue: the ack floor (every offset below it is acknowledged), the backlog
(stored and not acknowledged) and the deliveries in flight. For a stream:
the committed offset, the lag after it and the member that owns the
partition.`,
		Example: `  ferry sub describe orders billing
  ferry sub describe orders billing -o json | jq '[.partitions[].backlog] | add'`,
		Args:              usageArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeTopicSubArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := adminConn(cmd, format)
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := c.subs.DescribeSubscription(ctx, connect.NewRequest(&ferryv1.DescribeSubscriptionRequest{Topic: args[0], Name: args[1]}))
			if err != nil {
				return c.rpcError(err)
			}
			return printSubscription(cmd.OutOrStdout(), format, resp.Msg.GetSubscription())
		},
	}
	addOutputFlag(cmd, &format)
	return cmd
}

func newSubSeekCmd() *cobra.Command {
	var (
		to, format string
		partition  int32
	)
	cmd := &cobra.Command{
		Use:   "seek TOPIC NAME --to earliest|latest|OFFSET|TIME",
		Short: "Move a stream subscription's committed offsets",
		Long: `Move a stream subscription's committed offsets, on every partition or on one
(--partition), to the earliest message stored, to the end (latest), to an
offset, or to the first message at or after a time: RFC 3339
(2026-05-01T12:00:00Z) or a duration ago (-1h). Members holding those
partitions continue from there. The new state is printed as describe does.`,
		Example: `  # Reprocess everything still stored
  ferry sub seek orders analytics --to earliest

  # Skip the backlog
  ferry sub seek orders analytics --to latest

  # Replay the last hour, or from a point in time
  ferry sub seek orders analytics --to -1h
  ferry sub seek orders analytics --to 2026-05-01T12:00:00Z

  # One partition to an offset
  ferry sub seek orders analytics --partition 2 --to 1500`,
		Args:              usageArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeTopicSubArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, format); err != nil {
				return err
			}
			if !cmd.Flags().Changed("to") {
				return usageError(cmd, errors.New("--to is required: earliest, latest, an offset or a time"))
			}
			pos, err := parsePosition(to, time.Now())
			if err != nil {
				return usageError(cmd, fmt.Errorf("--to: %w", err))
			}
			req := &ferryv1.SeekSubscriptionRequest{Topic: args[0], Name: args[1]}
			if cmd.Flags().Changed("partition") {
				if partition < 0 {
					return usageError(cmd, errors.New("--partition is 0 or more"))
				}
				req.Partition = &partition
			}
			switch {
			case pos.latest:
				req.Target = &ferryv1.SeekSubscriptionRequest_Latest{Latest: true}
			case pos.isTime():
				req.Target = &ferryv1.SeekSubscriptionRequest_Time{Time: timestamppb.New(pos.time)}
			case pos.offset >= 0:
				req.Target = &ferryv1.SeekSubscriptionRequest_Offset{Offset: pos.offset}
			default:
				req.Target = &ferryv1.SeekSubscriptionRequest_Earliest{Earliest: true}
			}
			c, ctx, cancel, err := adminConn(cmd, "")
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := c.subs.SeekSubscription(ctx, connect.NewRequest(req))
			if err != nil {
				return c.rpcError(err)
			}
			return printSubscription(cmd.OutOrStdout(), format, resp.Msg.GetSubscription())
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "earliest, latest, an offset, an RFC 3339 time or a duration ago as -1h")
	cmd.Flags().Int32Var(&partition, "partition", 0, "move this partition only (default: every partition)")
	cmd.RegisterFlagCompletionFunc("to", fixedCompletion("earliest", "latest"))
	addOutputFlag(cmd, &format)
	return cmd
}

func newSubPurgeCmd() *cobra.Command {
	var (
		yes    bool
		format string
	)
	cmd := &cobra.Command{
		Use:   "purge TOPIC NAME",
		Short: "Drop a subscription's backlog",
		Long: `Drop a subscription's backlog, as SQS's PurgeQueue does. The topic keeps its
messages: other subscriptions and readers still see them.

A queue subscription settles every message stored when the purge is made,
whatever its state: ready, delayed, waiting to be delivered again, held back
by key ordering, or in flight (those deliveries can no longer be
acknowledged). Messages published afterwards are delivered as usual. A
stream subscription's committed offsets move to the end of every partition
(as seek --to latest). Prints how many messages were dropped.

When standard input is a terminal, purge shows the backlog and asks first;
--yes skips the question. Otherwise (a script, a pipe) it does not ask.`,
		Example: `  ferry sub purge orders billing
  ferry sub purge orders billing --yes -o json`,
		Args:              usageArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeTopicSubArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, name := args[0], args[1]
			c, ctx, cancel, err := adminConn(cmd, format)
			if err != nil {
				return err
			}
			if !yes && isInteractive(cmd.InOrStdin()) {
				resp, err := c.subs.DescribeSubscription(ctx, connect.NewRequest(&ferryv1.DescribeSubscriptionRequest{Topic: topic, Name: name}))
				cancel()
				if err != nil {
					return c.rpcError(err)
				}
				ok, err := confirm(cmd, purgeQuestion(resp.Msg.GetSubscription()))
				if err != nil {
					return err
				}
				if !ok {
					return errors.New("not purged: not confirmed")
				}
				ctx, cancel = adminCtx(cmd)
			}
			defer cancel()
			resp, err := c.subs.PurgeSubscription(ctx, connect.NewRequest(&ferryv1.PurgeSubscriptionRequest{Topic: topic, Name: name}))
			if err != nil {
				return c.rpcError(err)
			}
			if format == outputJSON {
				return writeJSON(cmd.OutOrStdout(), purgeView{Purged: resp.Msg.GetPurged(), Subscription: newSubscriptionView(resp.Msg.GetSubscription())})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "purged %s of subscription %q of topic %q\n", plural(resp.Msg.GetPurged(), "message"), name, topic)
			return err
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	addOutputFlag(cmd, &format)
	return cmd
}

// purgeView is what `sub purge -o json` prints.
type purgeView struct {
	Purged       int64            `json:"purged"`
	Subscription subscriptionView `json:"subscription"`
}

// purgeQuestion asks whether to purge s, saying what it would drop.
func purgeQuestion(s *ferryv1.Subscription) string {
	var backlog int64
	for _, p := range s.GetPartitions() {
		backlog += p.GetBacklog()
	}
	if s.GetConfig().GetKind() == ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_STREAM {
		return fmt.Sprintf("Purge stream subscription %q of topic %q? Its committed offsets move to the end, skipping its lag of %s.",
			s.GetName(), s.GetTopic(), plural(backlog, "message"))
	}
	return fmt.Sprintf("Purge queue subscription %q of topic %q? Its %s not acknowledged yet, in flight included, will never be delivered to it.",
		s.GetName(), s.GetTopic(), plural(backlog, "message"))
}

// confirm asks question on standard error and reads the answer from
// standard input: true for y or yes.
func confirm(cmd *cobra.Command, question string) (bool, error) {
	if _, err := fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question); err != nil {
		return false, err
	}
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(cmd.ErrOrStderr())
		if err == io.EOF {
			return false, nil
		}
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

func newSubDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete TOPIC NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a subscription and its state",
		Long: `Delete a subscription and its state (acknowledgements, committed offsets).
Its consumers are ended. The topic's messages stay.`,
		Example:           `  ferry sub delete orders billing`,
		Args:              usageArgs(cobra.ExactArgs(2)),
		ValidArgsFunction: completeTopicSubArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := adminConn(cmd, "")
			if err != nil {
				return err
			}
			defer cancel()
			if _, err := c.subs.DeleteSubscription(ctx, connect.NewRequest(&ferryv1.DeleteSubscriptionRequest{Topic: args[0], Name: args[1]})); err != nil {
				return c.rpcError(err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted subscription %q of topic %q\n", args[1], args[0])
			return err
		},
	}
}

func kindName(k ferryv1.SubscriptionKind) string {
	switch k {
	case ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_QUEUE:
		return "queue"
	case ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_STREAM:
		return "stream"
	}
	return "unknown"
}

func startName(p ferryv1.StartPosition) string {
	if p == ferryv1.StartPosition_START_POSITION_EARLIEST {
		return "earliest"
	}
	return "latest"
}

// subscriptionView is a subscription as --output json prints it.
type subscriptionView struct {
	Topic      string                 `json:"topic"`
	Name       string                 `json:"name"`
	Kind       string                 `json:"kind"`
	Created    string                 `json:"created,omitempty"`
	Config     subConfigView          `json:"config"`
	Members    int32                  `json:"members"`
	Generation int64                  `json:"generation"`
	Partitions []subscriptionPartView `json:"partitions"`
}

type subConfigView struct {
	StartAt         string `json:"start_at"`
	AckDeadline     string `json:"ack_deadline,omitempty"`
	MaxDeliveries   int32  `json:"max_deliveries"`
	DeadLetterTopic string `json:"dead_letter_topic,omitempty"`
	MaxInFlight     int32  `json:"max_in_flight"`
	KeyOrdering     bool   `json:"key_ordering"`
}

type subscriptionPartView struct {
	Partition int32  `json:"partition"`
	EndOffset int64  `json:"end_offset"`
	AckFloor  int64  `json:"ack_floor"`
	Committed int64  `json:"committed"`
	Backlog   int64  `json:"backlog"`
	InFlight  int32  `json:"in_flight"`
	Owner     string `json:"owner,omitempty"`
}

func newSubscriptionView(s *ferryv1.Subscription) subscriptionView {
	cfg := s.GetConfig()
	v := subscriptionView{
		Topic:   s.GetTopic(),
		Name:    s.GetName(),
		Kind:    kindName(cfg.GetKind()),
		Created: formatTime(s.GetCreated()),
		Config: subConfigView{
			StartAt:         startName(cfg.GetStartAt()),
			AckDeadline:     formatDuration(cfg.GetAckDeadline()),
			MaxDeliveries:   cfg.GetMaxDeliveries(),
			DeadLetterTopic: cfg.GetDeadLetterTopic(),
			MaxInFlight:     cfg.GetMaxInFlight(),
			KeyOrdering:     cfg.GetKeyOrdering(),
		},
		Members:    s.GetMembers(),
		Generation: s.GetGeneration(),
		Partitions: []subscriptionPartView{},
	}
	for _, p := range s.GetPartitions() {
		v.Partitions = append(v.Partitions, subscriptionPartView{
			Partition: p.GetPartition(),
			EndOffset: p.GetEndOffset(),
			AckFloor:  p.GetAckFloor(),
			Committed: p.GetCommitted(),
			Backlog:   p.GetBacklog(),
			InFlight:  p.GetInFlight(),
			Owner:     p.GetOwner(),
		})
	}
	return v
}

// printSubscription prints a subscription as `sub describe` does.
func printSubscription(w io.Writer, format string, s *ferryv1.Subscription) error {
	if format == outputJSON {
		return writeJSON(w, newSubscriptionView(s))
	}
	cfg := s.GetConfig()
	queue := cfg.GetKind() == ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_QUEUE
	ew := &errWriter{w: w}
	tw := newTable(ew)
	fmt.Fprintf(tw, "Subscription:\t%s\n", s.GetName())
	fmt.Fprintf(tw, "Topic:\t%s\n", s.GetTopic())
	fmt.Fprintf(tw, "Kind:\t%s\n", kindName(cfg.GetKind()))
	fmt.Fprintf(tw, "Created:\t%s\n", orDash(formatTime(s.GetCreated())))
	fmt.Fprintf(tw, "Start:\t%s\n", startName(cfg.GetStartAt()))
	fmt.Fprintf(tw, "Members:\t%d\n", s.GetMembers())
	if queue {
		deadline := "default"
		if d := cfg.GetAckDeadline(); d != nil {
			deadline = humanDuration(d.AsDuration())
		}
		fmt.Fprintf(tw, "Ack deadline:\t%s\n", deadline)
		maxDeliveries := "unlimited"
		if n := cfg.GetMaxDeliveries(); n > 0 {
			maxDeliveries = fmt.Sprint(n)
		}
		fmt.Fprintf(tw, "Max deliveries:\t%s\n", maxDeliveries)
		if cfg.GetMaxDeliveries() > 0 || cfg.GetDeadLetterTopic() != "" {
			dlq := cfg.GetDeadLetterTopic()
			if dlq == "" {
				dlq = s.GetTopic() + "." + s.GetName() + ".dlq"
			}
			fmt.Fprintf(tw, "Dead-letter topic:\t%s\n", dlq)
		}
		maxInFlight := "default"
		if n := cfg.GetMaxInFlight(); n > 0 {
			maxInFlight = fmt.Sprint(n)
		}
		fmt.Fprintf(tw, "Max in flight:\t%s\n", maxInFlight)
		fmt.Fprintf(tw, "Key ordering:\t%s\n", yesNo(cfg.GetKeyOrdering()))
	} else {
		fmt.Fprintf(tw, "Generation:\t%d\n", s.GetGeneration())
	}
	tw.Flush()
	fmt.Fprintln(ew)
	tw = newTable(ew)
	if queue {
		fmt.Fprintln(tw, "PARTITION\tEND\tACK FLOOR\tBACKLOG\tIN FLIGHT")
		for _, p := range s.GetPartitions() {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\n", p.GetPartition(), p.GetEndOffset(), p.GetAckFloor(), p.GetBacklog(), p.GetInFlight())
		}
	} else {
		fmt.Fprintln(tw, "PARTITION\tEND\tCOMMITTED\tLAG\tOWNER")
		for _, p := range s.GetPartitions() {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\n", p.GetPartition(), p.GetEndOffset(), p.GetCommitted(), p.GetBacklog(), orDash(p.GetOwner()))
		}
	}
	tw.Flush()
	return ew.err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
