package main

import (
	"bufio"
	"errors"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

const tailLong = `Print the messages published from now on to a topic, or to every topic a
wildcard pattern matches, as they come. Nothing is stored for this
subscription: it starts now and is gone when the command ends (an ephemeral
subscription: live pub/sub).

In a pattern, dots separate levels: "*" matches one whole level and ">" all
the levels after it:
  room.*      room.1 and room.lobby, not room or room.1.typing
  orders.>    orders.eu and orders.eu.created, not orders

Output, --count and --timeout are as for consume. A subscriber that falls
further behind than --buffer messages on a partition is cut off.`

const tailExample = `  ferry tail orders
  ferry tail 'room.*' -o json
  ferry tail 'orders.>' --count 1 --timeout 30s`

func newTailCmd() *cobra.Command {
	var (
		o      consumeOptions
		buffer int64
	)
	cmd := &cobra.Command{
		Use:     "tail PATTERN",
		Short:   "Print messages as they are published to matching topics",
		Long:    tailLong,
		Example: tailExample,
		Args:    usageArgs(cobra.ExactArgs(1)),
		// Plain topic names help: a pattern is often one.
		ValidArgsFunction: completeTopicArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(cmd); err != nil {
				return err
			}
			if buffer < 0 {
				return usageError(cmd, errors.New("--buffer is 0 or more"))
			}
			c, err := dial(cmd)
			if err != nil {
				return err
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			k := &consumer{c: c, o: &o, s: newSession(cmd.Context(), o.timeout), out: out,
				p: newMessagePrinter(out, o.format), stderr: cmd.ErrOrStderr()}
			defer k.s.close()
			err = k.tail(args[0], buffer)
			if ferr := out.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	cmd.SetErrPrefix("ferry:")
	f := cmd.Flags()
	addServerFlag(f)
	o.add(f, true)
	f.Int64Var(&buffer, "buffer", 0, "how far behind the subscriber may fall on a partition before it is cut off (default: the broker's, 10000)")
	addOutputFlag(cmd, &o.format)
	return cmd
}

func (k *consumer) tail(pattern string, buffer int64) error {
	cr := &credit{count: k.o.count}
	first := k.o.firstCredit()
	cr.granted = int(first)
	stream, err := k.c.cons.Subscribe(k.s.ctx, connect.NewRequest(&ferryv1.SubscribeRequest{
		Pattern: pattern, Credit: first, Buffer: buffer,
	}))
	if err != nil {
		return k.c.rpcError(err)
	}
	return drain(k, stream, (*ferryv1.SubscribeResponse).GetConsumerId, (*ferryv1.SubscribeResponse).GetMessages, k.tailBatch, cr)
}

func (k *consumer) tailBatch(consumerID string, ms []*ferryv1.Message, cr *credit) error {
	n := 0
	for _, m := range ms {
		if k.full() {
			break
		}
		if err := k.p.print(m, 0); err != nil {
			return err
		}
		k.printed++
		n++
	}
	if err := k.out.Flush(); err != nil {
		return err
	}
	grant := cr.grant(n)
	if grant == 0 || k.full() {
		return nil
	}
	ctx, cancel := k.unaryCtx()
	defer cancel()
	_, err := k.c.cons.Grant(ctx, connect.NewRequest(&ferryv1.GrantRequest{ConsumerId: consumerID, Credit: grant}))
	return k.c.rpcError(err)
}
