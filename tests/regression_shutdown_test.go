package tests

// Regression tests for bugs a review of the native API found. Each test's
// comment says what went wrong before the fix, in the present tense of the
// review.

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/api/ferry/v1/ferryv1connect"
	"github.com/ferrymq/ferry/server"
	"google.golang.org/protobuf/types/known/durationpb"
)

func reviewStart(t *testing.T) (*server.Server, string) {
	cfg := server.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "127.0.0.1:0"
	s, err := server.Start(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, "http://" + s.Addr()
}

// TestRegressionShutdownReceiveCode: a Receive waiting when the server shuts
// down is answered failed_precondition ("subscription deleted"), not
// unavailable as docs/api.md says for a server shutting down.
func TestRegressionShutdownReceiveCode(t *testing.T) {
	s, base := reviewStart(t)
	hc := h2cClient()
	ctx := context.Background()
	topics := ferryv1connect.NewTopicServiceClient(hc, base)
	subs := ferryv1connect.NewSubscriptionServiceClient(hc, base)
	cons := ferryv1connect.NewConsumeServiceClient(hc, base)
	topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: "sd"}))
	subs.CreateSubscription(ctx, connect.NewRequest(&ferryv1.CreateSubscriptionRequest{Topic: "sd", Name: "w",
		Config: &ferryv1.SubscriptionConfig{Kind: ferryv1.SubscriptionKind_SUBSCRIPTION_KIND_QUEUE}}))
	errc := make(chan error, 1)
	go func() {
		_, err := cons.Receive(ctx, connect.NewRequest(&ferryv1.ReceiveRequest{Topic: "sd", Subscription: "w", Wait: durationpb.New(10 * time.Second)}))
		errc <- err
	}()
	time.Sleep(300 * time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	go s.Shutdown(sctx)
	err := <-errc
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("Receive during shutdown: %v (code %v), want unavailable", err, connect.CodeOf(err))
	}
}

// TestRegressionShutdownWaitsForRead: a Read long-poll is not ended by the
// drain, so a graceful shutdown waits for its whole wait.
func TestRegressionShutdownWaitsForRead(t *testing.T) {
	s, base := reviewStart(t)
	hc := h2cClient()
	ctx := context.Background()
	topics := ferryv1connect.NewTopicServiceClient(hc, base)
	reader := ferryv1connect.NewReadServiceClient(hc, base)
	topics.CreateTopic(ctx, connect.NewRequest(&ferryv1.CreateTopicRequest{Name: "rd"}))
	go reader.Read(ctx, connect.NewRequest(&ferryv1.ReadRequest{Topic: "rd", Start: &ferryv1.ReadRequest_Latest{Latest: true}, Wait: durationpb.New(8 * time.Second)}))
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := s.Shutdown(sctx)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v (err %v): held by a Read long-poll", d, err)
	}
}
