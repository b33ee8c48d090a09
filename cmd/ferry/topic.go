package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

func newTopicCmd() *cobra.Command {
	group := commandGroup(&cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, alter and delete topics",
		Long: `Administer topics: named, durable, append-only logs split into partitions.
Every message published to a topic is kept until its retention deletes it:
by age, by size, or (work retention) once every subscription acknowledged it.`,
		Example: `  ferry topic create orders --partitions 3 --retention-age 7d
  ferry topic list
  ferry topic describe orders -o json`,
	})
	group.SetErrPrefix("ferry:")
	addServerFlag(group.PersistentFlags())
	group.AddCommand(
		newTopicCreateCmd(),
		newTopicListCmd(),
		newTopicDescribeCmd(),
		newTopicAlterCmd(),
		newTopicDeleteCmd(),
	)
	return group
}

// topicFlags are the settings `topic create` and `topic alter` take. They
// are strings so that sizes and durations may carry units.
type topicFlags struct {
	partitions      int32
	retentionAge    string
	retentionBytes  string
	work            bool
	fsync           string
	maxMessageBytes string
	dedupWindow     string
	segmentBytes    string
}

func (tf *topicFlags) add(cmd *cobra.Command, create bool) {
	f := cmd.Flags()
	if create {
		f.Int32Var(&tf.partitions, "partitions", 1, "number of partitions")
	} else {
		f.Int32Var(&tf.partitions, "partitions", 0, "raise the number of partitions to this (keys hash over the new count from then on)")
	}
	f.StringVar(&tf.retentionAge, "retention-age", "", "delete messages older than this, as 12h or 7d (0: no age limit)")
	f.StringVar(&tf.retentionBytes, "retention-bytes", "", "delete a partition's oldest messages past this size, as 10GiB (0: no size limit)")
	f.BoolVar(&tf.work, "work", false, "work retention: delete messages once every subscription has acknowledged them")
	f.StringVar(&tf.fsync, "fsync", "", `when publishes reach the disk: "always", "never" or "interval:100ms" (default: the broker's)`)
	f.StringVar(&tf.maxMessageBytes, "max-message-bytes", "", "largest message (key, value and headers), as 4MiB (default 1 MiB)")
	f.StringVar(&tf.dedupWindow, "dedup-window", "", `how long publish ids are remembered, as 10m, or "off" (default 2m)`)
	if create {
		f.StringVar(&tf.segmentBytes, "segment-bytes", "", "size at which partition log segments roll, as 64MiB")
	}
	cmd.RegisterFlagCompletionFunc("fsync", fixedCompletion("always", "never", "interval:"))
}

// retention reads the retention flags that were given over base.
func (tf *topicFlags) retention(cmd *cobra.Command, base *ferryv1.Retention) (*ferryv1.Retention, error) {
	r := &ferryv1.Retention{MaxAge: base.GetMaxAge(), MaxBytes: base.GetMaxBytes(), Work: base.GetWork()}
	f := cmd.Flags()
	if f.Changed("retention-age") {
		d, err := parseDuration(tf.retentionAge)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("bad --retention-age %q: want as 12h or 7d, or 0 for none", tf.retentionAge)
		}
		r.MaxAge = nil
		if d > 0 {
			r.MaxAge = durationpb.New(d)
		}
	}
	if f.Changed("retention-bytes") {
		n, err := parseSize(tf.retentionBytes)
		if err != nil {
			return nil, fmt.Errorf("--retention-bytes: %w", err)
		}
		r.MaxBytes = n
	}
	if f.Changed("work") {
		r.Work = tf.work
	}
	return r, nil
}

func (tf *topicFlags) maxMessage() (int32, error) {
	n, err := parseSize(tf.maxMessageBytes)
	if err != nil || n > 1<<31-1 {
		return 0, fmt.Errorf("bad --max-message-bytes %q: want a size as 4MiB, below 2 GiB", tf.maxMessageBytes)
	}
	return int32(n), nil
}

func (tf *topicFlags) dedup() (*durationpb.Duration, error) {
	if tf.dedupWindow == "off" {
		// A negative window turns deduplication off.
		return durationpb.New(-time.Second), nil
	}
	d, err := parseDuration(tf.dedupWindow)
	if err != nil || d < 0 {
		return nil, fmt.Errorf(`bad --dedup-window %q: want as 2m or 1h, or "off"`, tf.dedupWindow)
	}
	return durationpb.New(d), nil
}

// config builds a new topic's settings from the flags.
func (tf *topicFlags) config(cmd *cobra.Command) (*ferryv1.TopicConfig, error) {
	if tf.partitions < 1 {
		return nil, errors.New("--partitions must be 1 or more")
	}
	cfg := &ferryv1.TopicConfig{Partitions: tf.partitions, Fsync: tf.fsync}
	var err error
	if cfg.Retention, err = tf.retention(cmd, nil); err != nil {
		return nil, err
	}
	f := cmd.Flags()
	if f.Changed("max-message-bytes") {
		if cfg.MaxMessageBytes, err = tf.maxMessage(); err != nil {
			return nil, err
		}
	}
	if f.Changed("dedup-window") {
		if cfg.DedupWindow, err = tf.dedup(); err != nil {
			return nil, err
		}
	}
	if f.Changed("segment-bytes") {
		if cfg.SegmentBytes, err = parseSize(tf.segmentBytes); err != nil {
			return nil, fmt.Errorf("--segment-bytes: %w", err)
		}
	}
	return cfg, nil
}

func newTopicCreateCmd() *cobra.Command {
	var (
		tf     topicFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: `Create a topic. A name is 1 to 249 characters of A-Z a-z 0-9 . _ -; dots
form a hierarchy (orders.eu.created) that wildcard subscriptions match.
Settings left out take the broker's defaults; retention is "keep forever".`,
		Example: `  ferry topic create orders
  ferry topic create orders --partitions 6 --retention-age 7d --retention-bytes 50GiB
  ferry topic create jobs --work --dedup-window 10m
  ferry topic create metrics --fsync interval:100ms --max-message-bytes 4MiB`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, format); err != nil {
				return err
			}
			cfg, err := tf.config(cmd)
			if err != nil {
				return usageError(cmd, err)
			}
			c, ctx, cancel, err := adminConn(cmd, "")
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := c.topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: args[0], Config: cfg}))
			if err != nil {
				return c.rpcError(err)
			}
			t := resp.Msg.GetTopic()
			if format == outputJSON {
				return writeJSON(cmd.OutOrStdout(), newTopicView(t))
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "created topic %q with %s\n", t.GetName(), plural(len(t.GetPartitions()), "partition"))
			return err
		},
	}
	tf.add(cmd, true)
	addOutputFlag(cmd, &format)
	return cmd
}

func newTopicListCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics",
		Long:    `List every topic, sorted by name, with its partitions, messages stored, size and retention.`,
		Example: `  ferry topic list
  ferry topic list -o json | jq -r '.[].name'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, cancel, err := adminConn(cmd, format)
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := c.topics.ListTopics(ctx, connect.NewRequest(&ferryv1.ListTopicsRequest{}))
			if err != nil {
				return c.rpcError(err)
			}
			out := cmd.OutOrStdout()
			topics := resp.Msg.GetTopics()
			if format == outputJSON {
				views := make([]topicView, 0, len(topics))
				for _, t := range topics {
					views = append(views, newTopicView(t))
				}
				return writeJSON(out, views)
			}
			tw := newTable(out)
			fmt.Fprintln(tw, "NAME\tPARTITIONS\tMESSAGES\tSIZE\tRETENTION")
			for _, t := range topics {
				var msgs, size int64
				for _, p := range t.GetPartitions() {
					msgs += p.GetEndOffset() - p.GetStartOffset()
					size += p.GetBytes()
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", t.GetName(), len(t.GetPartitions()), msgs, humanBytes(size), retentionText(t.GetConfig().GetRetention()))
			}
			return tw.Flush()
		},
	}
	addOutputFlag(cmd, &format)
	return cmd
}

func newTopicDescribeCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's settings and partitions",
		Long: `Show a topic's settings and, for each partition, the first offset still
stored (START), the offset the next message gets (END), the messages and
bytes stored and the number of log segments.`,
		Example: `  ferry topic describe orders
  ferry topic describe orders -o json | jq '.partitions[].end_offset'`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeTopicArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := adminConn(cmd, format)
			if err != nil {
				return err
			}
			defer cancel()
			resp, err := c.topics.DescribeTopic(ctx, connect.NewRequest(&ferryv1.DescribeTopicRequest{Name: args[0]}))
			if err != nil {
				return c.rpcError(err)
			}
			return printTopic(cmd.OutOrStdout(), format, resp.Msg.GetTopic())
		},
	}
	addOutputFlag(cmd, &format)
	return cmd
}

func newTopicAlterCmd() *cobra.Command {
	var (
		tf     topicFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "alter NAME",
		Short: "Change a topic's settings",
		Long: `Change a topic's settings: only those given change. --partitions raises the
partition count (it never lowers it); keyed messages hash over the new count
from then on, as in Kafka. The new settings are printed as describe does.`,
		Example: `  ferry topic alter orders --retention-age 30d
  ferry topic alter orders --retention-bytes 0          # no size limit any more
  ferry topic alter jobs --work=false --dedup-window off
  ferry topic alter orders --partitions 12`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeTopicArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, format); err != nil {
				return err
			}
			f := cmd.Flags()
			req := &ferryv1.AlterTopicRequest{Name: args[0]}
			var err error
			if f.Changed("fsync") {
				req.Fsync = &tf.fsync
			}
			if f.Changed("max-message-bytes") {
				n, err := tf.maxMessage()
				if err != nil {
					return usageError(cmd, err)
				}
				req.MaxMessageBytes = &n
			}
			if f.Changed("dedup-window") {
				if req.DedupWindow, err = tf.dedup(); err != nil {
					return usageError(cmd, err)
				}
			}
			changeRetention := f.Changed("retention-age") || f.Changed("retention-bytes") || f.Changed("work")
			if _, err := tf.retention(cmd, nil); err != nil {
				return usageError(cmd, err)
			}
			if f.Changed("partitions") && tf.partitions < 1 {
				return usageError(cmd, errors.New("--partitions must be 1 or more"))
			}
			if !changeRetention && req.Fsync == nil && req.MaxMessageBytes == nil && req.DedupWindow == nil && !f.Changed("partitions") {
				return usageError(cmd, errors.New("nothing to change: give at least one setting"))
			}

			c, ctx, cancel, err := adminConn(cmd, "")
			if err != nil {
				return err
			}
			defer cancel()
			var t *ferryv1.Topic
			if changeRetention {
				// Retention is set as a whole: start from the topic's, so
				// that only the flags given change.
				resp, err := c.topics.DescribeTopic(ctx, connect.NewRequest(&ferryv1.DescribeTopicRequest{Name: args[0]}))
				if err != nil {
					return c.rpcError(err)
				}
				req.Retention, _ = tf.retention(cmd, resp.Msg.GetTopic().GetConfig().GetRetention())
			}
			if req.Retention != nil || req.Fsync != nil || req.MaxMessageBytes != nil || req.DedupWindow != nil {
				resp, err := c.topics.AlterTopic(ctx, connect.NewRequest(req))
				if err != nil {
					return c.rpcError(err)
				}
				t = resp.Msg.GetTopic()
			}
			if f.Changed("partitions") {
				resp, err := c.topics.AddPartitions(ctx, connect.NewRequest(&ferryv1.AddPartitionsRequest{Name: args[0], Partitions: tf.partitions}))
				if err != nil {
					return c.rpcError(err)
				}
				t = resp.Msg.GetTopic()
			}
			return printTopic(cmd.OutOrStdout(), format, t)
		},
	}
	tf.add(cmd, false)
	addOutputFlag(cmd, &format)
	return cmd
}

func newTopicDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete topics with their subscriptions and data",
		Long: `Delete topics: each topic's messages, its subscriptions and their state are
removed for good. There is no confirmation.`,
		Example: `  ferry topic delete orders
  ferry topic delete scratch.1 scratch.2`,
		Args:              usageArgs(cobra.MinimumNArgs(1)),
		ValidArgsFunction: completeTopicNamesAny,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, cancel, err := adminConn(cmd, "")
			if err != nil {
				return err
			}
			defer cancel()
			for _, name := range args {
				if _, err := c.topics.DeleteTopic(ctx, connect.NewRequest(&ferryv1.DeleteTopicRequest{Name: name})); err != nil {
					return c.rpcError(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted topic %q\n", name)
			}
			return nil
		},
	}
	return cmd
}

// completeTopicNamesAny completes every argument with topic names.
func completeTopicNamesAny(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return completeTopicNames(cmd, toComplete)
}

// topicView is a topic as --output json prints it.
type topicView struct {
	Name       string          `json:"name"`
	ID         string          `json:"id"`
	Created    string          `json:"created,omitempty"`
	Config     topicConfigView `json:"config"`
	Partitions []partitionView `json:"partitions"`
}

type topicConfigView struct {
	Partitions      int32         `json:"partitions"`
	Retention       retentionView `json:"retention"`
	Fsync           string        `json:"fsync"`
	MaxMessageBytes int32         `json:"max_message_bytes"`
	DedupWindow     string        `json:"dedup_window"`
	SegmentBytes    int64         `json:"segment_bytes"`
}

type retentionView struct {
	MaxAge   string `json:"max_age"`
	MaxBytes int64  `json:"max_bytes"`
	Work     bool   `json:"work"`
}

type partitionView struct {
	Partition   int32 `json:"partition"`
	StartOffset int64 `json:"start_offset"`
	EndOffset   int64 `json:"end_offset"`
	Messages    int64 `json:"messages"`
	Bytes       int64 `json:"bytes"`
	Segments    int32 `json:"segments"`
}

func newTopicView(t *ferryv1.Topic) topicView {
	cfg := t.GetConfig()
	v := topicView{
		Name:    t.GetName(),
		ID:      t.GetId(),
		Created: formatTime(t.GetCreated()),
		Config: topicConfigView{
			Partitions: cfg.GetPartitions(),
			Retention: retentionView{
				MaxAge:   formatDuration(cfg.GetRetention().GetMaxAge()),
				MaxBytes: cfg.GetRetention().GetMaxBytes(),
				Work:     cfg.GetRetention().GetWork(),
			},
			Fsync:           cfg.GetFsync(),
			MaxMessageBytes: cfg.GetMaxMessageBytes(),
			DedupWindow:     dedupText(cfg.GetDedupWindow()),
			SegmentBytes:    cfg.GetSegmentBytes(),
		},
		Partitions: []partitionView{},
	}
	for _, p := range t.GetPartitions() {
		v.Partitions = append(v.Partitions, partitionView{
			Partition:   p.GetPartition(),
			StartOffset: p.GetStartOffset(),
			EndOffset:   p.GetEndOffset(),
			Messages:    p.GetEndOffset() - p.GetStartOffset(),
			Bytes:       p.GetBytes(),
			Segments:    p.GetSegments(),
		})
	}
	return v
}

// printTopic prints a topic as `topic describe` does.
func printTopic(w io.Writer, format string, t *ferryv1.Topic) error {
	if format == outputJSON {
		return writeJSON(w, newTopicView(t))
	}
	cfg := t.GetConfig()
	ew := &errWriter{w: w}
	tw := newTable(ew)
	fmt.Fprintf(tw, "Topic:\t%s\n", t.GetName())
	fmt.Fprintf(tw, "ID:\t%s\n", orDash(t.GetId()))
	fmt.Fprintf(tw, "Created:\t%s\n", orDash(formatTime(t.GetCreated())))
	fmt.Fprintf(tw, "Partitions:\t%d\n", len(t.GetPartitions()))
	fmt.Fprintf(tw, "Retention:\t%s\n", retentionText(cfg.GetRetention()))
	fmt.Fprintf(tw, "Fsync:\t%s\n", orDefault(cfg.GetFsync()))
	maxMsg := "default"
	if n := cfg.GetMaxMessageBytes(); n > 0 {
		maxMsg = humanBytes(int64(n))
	}
	fmt.Fprintf(tw, "Max message:\t%s\n", maxMsg)
	fmt.Fprintf(tw, "Dedup window:\t%s\n", orDefault(dedupText(cfg.GetDedupWindow())))
	if n := cfg.GetSegmentBytes(); n > 0 {
		fmt.Fprintf(tw, "Segment size:\t%s\n", humanBytes(n))
	}
	tw.Flush()
	fmt.Fprintln(ew)
	tw = newTable(ew)
	fmt.Fprintln(tw, "PARTITION\tSTART\tEND\tMESSAGES\tSIZE\tSEGMENTS")
	for _, p := range t.GetPartitions() {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%d\n", p.GetPartition(), p.GetStartOffset(), p.GetEndOffset(),
			p.GetEndOffset()-p.GetStartOffset(), humanBytes(p.GetBytes()), p.GetSegments())
	}
	tw.Flush()
	return ew.err
}

// retentionText says when a topic's messages are deleted, for a table.
func retentionText(r *ferryv1.Retention) string {
	var parts []string
	if d := r.GetMaxAge(); d != nil && d.AsDuration() > 0 {
		parts = append(parts, "age "+humanDuration(d.AsDuration()))
	}
	if n := r.GetMaxBytes(); n > 0 {
		parts = append(parts, "size "+humanBytes(n))
	}
	if r.GetWork() {
		parts = append(parts, "work")
	}
	if len(parts) == 0 {
		return "forever"
	}
	return strings.Join(parts, ", ")
}

// dedupText is a dedup window as printed: "off" when negative, "" when
// unset.
func dedupText(d *durationpb.Duration) string {
	if d != nil && d.AsDuration() < 0 {
		return "off"
	}
	return formatDuration(d)
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}
