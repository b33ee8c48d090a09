package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
)

const (
	defaultServer = "http://127.0.0.1:8080"
	serverEnv     = "FERRY_SERVER"
	// adminTimeout bounds one administrative call, so a broker that accepts
	// the connection but never answers does not hang a script.
	adminTimeout = 30 * time.Second
)

// addServerFlag adds --server, the broker the command talks to.
func addServerFlag(f *pflag.FlagSet) {
	f.String("server", defaultServer, "broker URL; a bare host:port means http:// (env "+serverEnv+")")
}

// conn holds the native API clients of one broker.
type conn struct {
	url    string
	topics ferryv1connect.TopicServiceClient
	subs   ferryv1connect.SubscriptionServiceClient
	pub    ferryv1connect.PublishServiceClient
	cons   ferryv1connect.ConsumeServiceClient
	read   ferryv1connect.ReadServiceClient
}

// dial returns the clients for the broker cmd names: --server, else
// FERRY_SERVER, else the default. Nothing is sent until the first call.
func dial(cmd *cobra.Command) (*conn, error) {
	raw := defaultServer
	if env := os.Getenv(serverEnv); env != "" {
		raw = env
	}
	if f := cmd.Flags().Lookup("server"); f != nil && f.Changed {
		raw = f.Value.String()
	}
	base, err := serverURL(raw)
	if err != nil {
		return nil, usageError(cmd, err)
	}
	hc := &http.Client{Transport: transport(base)}
	return &conn{
		url:    base,
		topics: ferryv1connect.NewTopicServiceClient(hc, base),
		subs:   ferryv1connect.NewSubscriptionServiceClient(hc, base),
		pub:    ferryv1connect.NewPublishServiceClient(hc, base),
		cons:   ferryv1connect.NewConsumeServiceClient(hc, base),
		read:   ferryv1connect.NewReadServiceClient(hc, base),
	}, nil
}

// serverURL checks a --server value and completes a bare host:port with
// http://.
func serverURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("bad --server %q: want a URL as %s or a host:port", raw, defaultServer)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// transport speaks HTTP/2 to the broker: over TLS for https://, else
// unencrypted (h2c), which the streaming calls need.
func transport(base string) *http.Transport {
	t := &http.Transport{
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
	}
	t.Protocols = new(http.Protocols)
	if strings.HasPrefix(base, "https://") {
		t.Protocols.SetHTTP1(true)
		t.Protocols.SetHTTP2(true)
	} else {
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	return t
}

// adminCtx bounds one administrative call.
func adminCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), adminTimeout)
}

// adminConn is the start of every administrative command: check --output
// (when the command has one: format not empty), connect, and bound the
// call by adminTimeout.
func adminConn(cmd *cobra.Command, format string) (*conn, context.Context, context.CancelFunc, error) {
	if format != "" {
		if err := checkOutput(cmd, format); err != nil {
			return nil, nil, nil, err
		}
	}
	c, err := dial(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := adminCtx(cmd)
	return c, ctx, cancel, nil
}

// rpcError turns an error of a call to the broker into what ferry prints:
// the server's message and the Connect code, with an exit code of its own
// for a missing topic or subscription.
func (c *conn) rpcError(err error) error {
	if err == nil {
		return nil
	}
	if ee, ok := errors.AsType[*exitError](err); ok {
		return ee
	}
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		return err
	}
	switch ce.Code() {
	case connect.CodeNotFound:
		return &exitError{code: exitNotFound, err: fmt.Errorf("%s (%s)", ce.Message(), ce.Code())}
	case connect.CodeUnavailable:
		if _, dial := errors.AsType[*net.OpError](err); dial {
			return fmt.Errorf("cannot reach the broker at %s: %s (%s)", c.url, ce.Message(), ce.Code())
		}
		return fmt.Errorf("the broker at %s is unavailable: %s (%s)", c.url, ce.Message(), ce.Code())
	case connect.CodeDeadlineExceeded:
		return fmt.Errorf("the broker at %s did not answer in time (%s)", c.url, ce.Code())
	case connect.CodeUnimplemented:
		return fmt.Errorf("the broker at %s does not serve this call: %s (%s)", c.url, ce.Message(), ce.Code())
	}
	msg := ce.Message()
	if msg == "" {
		msg = "call failed"
	}
	return fmt.Errorf("%s (%s)", msg, ce.Code())
}

// completionCtx bounds the calls shell completion makes: a broker that is
// away must not freeze the user's shell.
func completionCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, 2*time.Second)
}

// completeTopicNames completes topic names from the broker.
func completeTopicNames(cmd *cobra.Command, toComplete string) ([]string, cobra.ShellCompDirective) {
	c, err := dial(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := completionCtx(cmd)
	defer cancel()
	resp, err := c.topics.ListTopics(ctx, connect.NewRequest(&ferryv1.ListTopicsRequest{}))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, t := range resp.Msg.GetTopics() {
		if strings.HasPrefix(t.GetName(), toComplete) {
			names = append(names, t.GetName())
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeSubscriptionNames completes the subscriptions of topic.
func completeSubscriptionNames(cmd *cobra.Command, topic, toComplete string) ([]string, cobra.ShellCompDirective) {
	c, err := dial(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := completionCtx(cmd)
	defer cancel()
	resp, err := c.subs.ListSubscriptions(ctx, connect.NewRequest(&ferryv1.ListSubscriptionsRequest{Topic: topic}))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, s := range resp.Msg.GetSubscriptions() {
		if strings.HasPrefix(s.GetName(), toComplete) {
			names = append(names, s.GetName())
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeTopicArg completes the first argument with topic names and no
// more.
func completeTopicArg(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeTopicNames(cmd, toComplete)
}

// completeTopicSubArgs completes TOPIC then SUBSCRIPTION.
func completeTopicSubArgs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return completeTopicNames(cmd, toComplete)
	case 1:
		return completeSubscriptionNames(cmd, args[0], toComplete)
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// fixedCompletion completes a flag with a fixed list of words.
func fixedCompletion(words ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp)
}

// errMessage is the server's message of a call's error, without the code.
func errMessage(err error) string {
	if ce, ok := errors.AsType[*connect.Error](err); ok {
		return ce.Message()
	}
	return err.Error()
}
