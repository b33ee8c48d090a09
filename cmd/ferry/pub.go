package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

const pubLong = `Publish messages to a topic and print where each one was stored (its
partition and offset), once it is durable under the topic's fsync policy.

Each VALUE argument is one message. With no VALUE, each line read from
standard input is one message (the line's end is not part of it); with
--file, the whole file is one message.

Keyed messages go to the partition of their key (Kafka's murmur2
partitioner); keyless messages of one batch go to one partition, the next
batch's to the next. --id makes a publish safe to retry: a message whose id
the topic has seen within its dedup window is acknowledged again and not
stored twice. With several messages the Nth gets the id ID-N.

A few messages are published in one call. A longer input is sent as a
stream of batches (--batch messages at most each) without waiting for each
to be acknowledged; the results are printed in input order all the same.
When standard error is a terminal, a long run shows its progress there.`

const pubExample = `  # One message, then three
  ferry pub orders 'order 1 created'
  ferry pub orders first second third

  # With a key and headers
  ferry pub orders --key user-42 --header trace=abc --header source=cli '{"id": 42}'

  # Every line of a file, 500 messages a second, with a summary only
  ferry pub events --rate 500 --quiet < events.jsonl

  # A whole file as one message, safe to retry
  ferry pub uploads --file report.pdf --id report-2026-05

  # Interactive: each line typed is published; Ctrl-D ends
  ferry pub chat.room1`

type pubOptions struct {
	key       string
	headers   []string
	partition int32
	id        string
	rate      float64
	batch     int
	file      string
	quiet     bool
	format    string
}

func newPubCmd() *cobra.Command {
	var o pubOptions
	cmd := &cobra.Command{
		Use:               "pub TOPIC [VALUE...]",
		Aliases:           []string{"publish"},
		Short:             "Publish messages to a topic",
		Long:              pubLong,
		Example:           pubExample,
		Args:              usageArgs(cobra.MinimumNArgs(1)),
		ValidArgsFunction: completeTopicArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPub(cmd, &o, args[0], args[1:])
		},
	}
	cmd.SetErrPrefix("ferry:")
	f := cmd.Flags()
	addServerFlag(f)
	f.StringVarP(&o.key, "key", "k", "", "message key: picks the partition, keeps the order of a key's messages")
	f.StringArrayVarP(&o.headers, "header", "H", nil, "header NAME=VALUE (repeatable)")
	f.Int32VarP(&o.partition, "partition", "p", 0, "store every message in this partition (default: by key, or round robin)")
	f.StringVar(&o.id, "id", "", "deduplication id; the Nth of several messages gets ID-N")
	f.Float64Var(&o.rate, "rate", 0, "publish at most this many messages a second (0: as fast as acknowledged)")
	f.IntVar(&o.batch, "batch", 256, "most messages in one batch")
	f.StringVarP(&o.file, "file", "f", "", `publish this whole file as one message ("-": standard input)`)
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print a summary instead of a line per message")
	addOutputFlag(cmd, &o.format)
	return cmd
}

// pubJob is one batch on its way: its messages' numbers in the input
// (first, first+1, ...) and, once answered, where they went.
type pubJob struct {
	first   int
	count   int
	results []*ferryv1.Published
	err     error
	code    string // of err: the Connect code name
	done    bool   // answered
}

func runPub(cmd *cobra.Command, o *pubOptions, topic string, values []string) error {
	if err := checkOutput(cmd, o.format); err != nil {
		return err
	}
	if o.batch < 1 || o.rate < 0 {
		return usageError(cmd, errors.New("--batch is 1 or more and --rate 0 or more"))
	}
	if o.file != "" && len(values) > 0 {
		return usageError(cmd, errors.New("give VALUE arguments or --file, not both"))
	}
	if cmd.Flags().Changed("partition") && o.partition < 0 {
		return usageError(cmd, errors.New("--partition is 0 or more"))
	}
	tmpl := &ferryv1.PublishMessage{}
	if o.key != "" {
		tmpl.Key = []byte(o.key)
	}
	for _, h := range o.headers {
		name, value, ok := strings.Cut(h, "=")
		if !ok || name == "" {
			return usageError(cmd, fmt.Errorf("bad --header %q: want NAME=VALUE", h))
		}
		tmpl.Headers = append(tmpl.Headers, &ferryv1.Header{Key: name, Value: []byte(value)})
	}
	c, err := dial(cmd)
	if err != nil {
		return err
	}

	// Every source feeds one channel; single sets the id rule.
	src := make(chan []byte, max(len(values), o.batch))
	readErr := make(chan error, 1)
	single := false
	switch {
	case o.file != "":
		var b []byte
		if o.file == "-" {
			b, err = io.ReadAll(cmd.InOrStdin())
		} else {
			b, err = os.ReadFile(o.file)
		}
		if err != nil {
			return err
		}
		src <- b
		close(src)
		single = true
	case len(values) > 0:
		for _, v := range values {
			src <- []byte(v)
		}
		close(src)
		single = len(values) == 1
	default:
		in := cmd.InOrStdin()
		if isTerminal(in) {
			fmt.Fprintln(cmd.ErrOrStderr(), "Reading messages from standard input, one a line; Ctrl-D ends.")
		}
		go func() {
			readErr <- readLines(in, src)
			close(src)
		}()
	}

	p := &publisher{
		cmd: cmd, c: c, o: o, topic: topic, tmpl: tmpl, single: single,
		out: newPubPrinter(cmd.OutOrStdout(), cmd.ErrOrStderr(), o), started: time.Now(),
	}
	if cmd.Flags().Changed("partition") {
		p.partition = &o.partition
	}
	stopProgress := p.progress(cmd.ErrOrStderr())
	err = p.run(cmd.Context(), src)
	stopProgress()
	if err == nil {
		select {
		case err = <-readErr:
		default:
		}
	}
	if err == nil && o.quiet {
		err = p.out.summary(topic, time.Since(p.started))
	}
	if err == nil && p.out.failed > 0 {
		err = fmt.Errorf("%d of %s not published", p.out.failed, plural(p.out.failed+p.out.stored+p.out.duplicates, "message"))
		if p.out.notFound {
			err = &exitError{code: exitNotFound, err: err}
		}
	}
	return err
}

// readLines sends each line of r, without its line end, to lines.
func readLines(r io.Reader, lines chan<- []byte) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && (err == nil || err == io.EOF) {
			line = bytes.TrimSuffix(line, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\r"))
			lines <- line
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
	}
}

type publisher struct {
	cmd       *cobra.Command
	c         *conn
	o         *pubOptions
	topic     string
	partition *int32
	tmpl      *ferryv1.PublishMessage
	single    bool
	out       *pubPrinter
	started   time.Time
	n         int // messages taken from the source
	held      []byte
	holding   bool // held is the next value, taken from the source to look ahead
	sent      atomic.Int64
}

const (
	// firstBatchLinger is how long the first batch waits for more input:
	// long enough to find the end of a short piped input (and publish it
	// in one unary call), too short for a person typing to notice.
	firstBatchLinger = 50 * time.Millisecond
	// maxBatchBytes keeps a batch well under the request limits of
	// proxies and servers.
	maxBatchBytes = 1 << 20
	// pubWindow is how many batches may await their acknowledgement.
	pubWindow = 64
)

// next takes the next batch from src: it waits for one message, then
// takes what is ready, up to --batch messages and maxBatchBytes, pacing by
// --rate. eof is true when src is finished.
func (p *publisher) next(ctx context.Context, src <-chan []byte, linger time.Duration) (batch []*ferryv1.PublishMessage, eof bool, err error) {
	var lingerC <-chan time.Time
	if linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		lingerC = t.C
	}
	size := 0
	for len(batch) < p.o.batch && size < maxBatchBytes {
		if len(batch) > 0 && p.o.rate > 0 && time.Until(p.slot(p.n)) > 0 {
			return batch, false, nil // send what is due before waiting
		}
		var v []byte
		var ok bool
		switch {
		case p.holding:
			v, ok, p.holding, p.held = p.held, true, false, nil
		case len(batch) == 0:
			select {
			case v, ok = <-src:
			case <-ctx.Done():
				return nil, true, ctx.Err()
			}
		case lingerC == nil:
			select {
			case v, ok = <-src:
			default:
				return batch, false, nil
			}
		default:
			select {
			case v, ok = <-src:
			case <-lingerC:
				return batch, false, nil
			case <-ctx.Done():
				return nil, true, ctx.Err()
			}
		}
		if !ok {
			return batch, true, nil
		}
		if err := p.wait(ctx, p.slot(p.n)); err != nil {
			return nil, true, err
		}
		batch = append(batch, p.message(v))
		size += len(v)
	}
	// The batch is full: look ahead, so that an input that ends here
	// still counts as finished (and goes in one unary call).
	select {
	case v, ok := <-src:
		if !ok {
			return batch, true, nil
		}
		p.held, p.holding = v, true
	default:
	}
	return batch, false, nil
}

// slot is when message n may go under --rate.
func (p *publisher) slot(n int) time.Time {
	if p.o.rate <= 0 {
		return time.Time{}
	}
	return p.started.Add(time.Duration(float64(n) / p.o.rate * float64(time.Second)))
}

func (p *publisher) wait(ctx context.Context, until time.Time) error {
	d := time.Until(until)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// message makes the n-th message of the input from its value.
func (p *publisher) message(v []byte) *ferryv1.PublishMessage {
	p.n++
	m := &ferryv1.PublishMessage{Key: p.tmpl.Key, Value: v, Headers: p.tmpl.Headers}
	if p.o.id != "" {
		m.Id = p.o.id
		if !p.single {
			m.Id = fmt.Sprintf("%s-%d", p.o.id, p.n)
		}
	}
	return m
}

// run publishes everything src gives: in one unary call when the whole
// input is one batch, else over a PublishStream.
func (p *publisher) run(ctx context.Context, src <-chan []byte) error {
	batch, eof, err := p.next(ctx, src, firstBatchLinger)
	if err != nil {
		return nil // interrupted before anything was sent
	}
	if eof {
		if len(batch) == 0 {
			return nil
		}
		resp, err := p.c.pub.Publish(ctx, connect.NewRequest(&ferryv1.PublishRequest{
			Topic: p.topic, Partition: p.partition, Messages: batch,
		}))
		if err != nil {
			return p.c.rpcError(err)
		}
		p.sent.Add(int64(len(batch)))
		return p.out.job(&pubJob{first: 1, count: len(batch), results: resp.Msg.GetResults()})
	}
	return p.stream(ctx, src, batch)
}

// stream sends batches over one PublishStream without waiting for their
// acknowledgements (up to pubWindow of them outstanding), and prints the
// results in input order as the acknowledgements come.
func (p *publisher) stream(ctx context.Context, src <-chan []byte, batch []*ferryv1.PublishMessage) error {
	// The stream outlives ctx a little, so that after Ctrl-C the batches
	// sent are still acknowledged (and printed).
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(10*time.Second, cancel) })
	defer stop()
	s := p.c.pub.PublishStream(sctx)
	var (
		mu      sync.Mutex
		jobs    = map[uint64]*pubJob{}
		window  = make(chan struct{}, pubWindow)
		recvErr = make(chan error, 1)
	)
	go func() {
		next := uint64(1)
		for {
			resp, err := s.Receive()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				recvErr <- err
				return
			}
			mu.Lock()
			job := jobs[resp.GetSequence()]
			if job != nil {
				job.done = true
				job.results = resp.GetResults()
				if e := resp.GetError(); e != nil {
					job.err = fmt.Errorf("%s (%s)", e.GetMessage(), e.GetCode())
					job.code = e.GetCode()
				}
			}
			var ready []*pubJob
			for jobs[next] != nil && jobs[next].done {
				ready = append(ready, jobs[next])
				delete(jobs, next)
				next++
			}
			mu.Unlock()
			for _, j := range ready {
				<-window
				if err := p.out.job(j); err != nil {
					recvErr <- err
					return
				}
			}
		}
	}()

	var seq uint64
	first := 1
	var sendErr error
	for sendErr == nil {
		if len(batch) > 0 {
			select {
			case window <- struct{}{}:
			case err := <-recvErr:
				if err == nil {
					err = errors.New("the broker ended the publish stream early")
				}
				return p.c.rpcError(err)
			case <-ctx.Done():
				sendErr = ctx.Err()
				continue
			}
			seq++
			mu.Lock()
			jobs[seq] = &pubJob{first: first, count: len(batch)}
			mu.Unlock()
			first += len(batch)
			if err := s.Send(&ferryv1.PublishStreamRequest{Sequence: seq, Topic: p.topic, Partition: p.partition, Messages: batch}); err != nil {
				// The reason comes from Receive.
				mu.Lock()
				delete(jobs, seq)
				mu.Unlock()
				break
			}
			p.sent.Add(int64(len(batch)))
		}
		var eof bool
		batch, eof, sendErr = p.next(ctx, src, 0)
		if eof && len(batch) == 0 {
			break
		}
	}
	// The input ended (or Ctrl-C): let the batches sent be acknowledged.
	s.CloseRequest()
	err := <-recvErr
	s.CloseResponse()
	if err != nil {
		return p.c.rpcError(err)
	}
	if sendErr != nil && !errors.Is(sendErr, context.Canceled) {
		return p.c.rpcError(sendErr)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(jobs); n > 0 {
		return fmt.Errorf("%s sent but never acknowledged", plural(n, "batch"))
	}
	return nil
}

// progress shows, when w is a terminal and the per-message lines do not go
// to it too, how many messages were sent so far. The func it returns stops
// it and clears the line.
func (p *publisher) progress(w io.Writer) func() {
	if !isTerminal(w) || (!p.o.quiet && isTerminal(p.cmd.OutOrStdout())) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		shown := false
		for {
			select {
			case <-done:
				if shown {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-t.C:
				el := time.Since(p.started)
				if el < time.Second {
					continue
				}
				n := p.sent.Load()
				fmt.Fprintf(w, "\r\033[Kpublished %d messages, %.0f/s", n, float64(n)/el.Seconds())
				shown = true
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// pubPrinter prints where messages went, or counts them for the summary.
type pubPrinter struct {
	w                          io.Writer
	quiet                      bool
	enc                        *json.Encoder
	stderr                     io.Writer
	stored, duplicates, failed int
	notFound                   bool // a batch failed for an unknown topic or partition
}

func newPubPrinter(w, stderr io.Writer, o *pubOptions) *pubPrinter {
	p := &pubPrinter{w: w, quiet: o.quiet, stderr: stderr}
	if o.format == outputJSON {
		p.enc = json.NewEncoder(w)
	}
	return p
}

type publishedView struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
	Duplicate bool  `json:"duplicate"`
}

func (p *pubPrinter) job(j *pubJob) error {
	if j.err != nil {
		p.failed += j.count
		p.notFound = p.notFound || j.code == connect.CodeNotFound.String()
		what := fmt.Sprintf("message %d", j.first)
		if j.count > 1 {
			what = fmt.Sprintf("messages %d to %d", j.first, j.first+j.count-1)
		}
		_, err := fmt.Fprintf(p.stderr, "ferry: %s not published: %v\n", what, j.err)
		return err
	}
	for _, r := range j.results {
		if r.GetDuplicate() {
			p.duplicates++
		} else {
			p.stored++
		}
		if p.quiet {
			continue
		}
		var err error
		if p.enc != nil {
			err = p.enc.Encode(publishedView{Partition: r.GetPartition(), Offset: r.GetOffset(), Duplicate: r.GetDuplicate()})
		} else {
			dup := ""
			if r.GetDuplicate() {
				dup = " (duplicate: stored before)"
			}
			_, err = fmt.Fprintf(p.w, "partition %d offset %d%s\n", r.GetPartition(), r.GetOffset(), dup)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *pubPrinter) summary(topic string, took time.Duration) error {
	if p.enc != nil {
		return p.enc.Encode(map[string]any{
			"topic": topic, "published": p.stored, "duplicates": p.duplicates, "failed": p.failed, "seconds": took.Seconds(),
		})
	}
	line := fmt.Sprintf("published %s to %q in %s", plural(p.stored, "message"), topic, took.Round(time.Millisecond))
	if p.duplicates > 0 {
		line += fmt.Sprintf(", %d duplicates not stored again", p.duplicates)
	}
	if p.failed > 0 {
		line += fmt.Sprintf(", %d failed", p.failed)
	}
	_, err := fmt.Fprintln(p.w, line)
	return err
}
