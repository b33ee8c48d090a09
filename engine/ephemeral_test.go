package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestEphemeralWildcardFanOut(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never"})
	createTopic(t, b, "orders.eu", TopicConfig{Partitions: 2})
	createTopic(t, b, "orders.us", TopicConfig{})
	createTopic(t, b, "payments", TopicConfig{})
	publish(t, b, "orders.eu", Message{Value: []byte("before")})

	star, err := b.SubscribeEphemeral("orders.*", EphemeralOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := b.SubscribeEphemeral(">", EphemeralOptions{})
	exact, _ := b.SubscribeEphemeral("orders.us", EphemeralOptions{})
	if _, err := b.SubscribeEphemeral("orders..x", EphemeralOptions{}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad pattern: %v", err)
	}
	createTopic(t, b, "orders.asia", TopicConfig{}) // created after: included
	for _, topic := range []string{"orders.eu", "orders.us", "payments", "orders.asia"} {
		publish(t, b, topic, Message{Key: []byte("k"), Value: []byte(topic)})
	}
	collect := func(e *Ephemeral, n int) map[string]bool {
		got := map[string]bool{}
		ctx, cancel := context.WithTimeout(bg, 5*time.Second)
		defer cancel()
		for len(got) < n {
			ms, err := e.Receive(ctx, 10)
			if err != nil {
				t.Fatalf("receive: %v (have %v)", err, got)
			}
			for _, m := range ms {
				got[string(m.Value)] = true
			}
		}
		return got
	}
	if got := collect(star, 3); !got["orders.eu"] || !got["orders.us"] || !got["orders.asia"] || got["before"] {
		t.Fatalf("orders.* got %v", got)
	}
	if got := collect(all, 4); len(got) != 4 {
		t.Fatalf("> got %v", got)
	}
	if got := collect(exact, 1); len(got) != 1 || !got["orders.us"] {
		t.Fatalf("orders.us got %v", got)
	}
	// A waiting Receive wakes on publish.
	done := make(chan []Message, 1)
	go func() {
		ms, _ := exact.Receive(bg, 1)
		done <- ms
	}()
	publish(t, b, "orders.us", Message{Value: []byte("live")})
	if ms := <-done; len(ms) != 1 || string(ms[0].Value) != "live" {
		t.Fatalf("live: %+v", ms)
	}
	exact.Close()
	if _, err := exact.Receive(bg, 1); !errors.Is(err, ErrMemberClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestEphemeralSlowConsumerCutOff(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never"})
	createTopic(t, b, "chat", TopicConfig{})
	e, _ := b.SubscribeEphemeral("chat", EphemeralOptions{Buffer: 10})
	for i := range 11 {
		publish(t, b, "chat", Message{Value: fmt.Appendf(nil, "%d", i)})
	}
	_, err := e.Receive(bg, 1)
	if !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("11 behind with a buffer of 10: %v", err)
	}
	// Others are not affected.
	fresh, _ := b.SubscribeEphemeral("chat", EphemeralOptions{Buffer: 10})
	publish(t, b, "chat", Message{Value: []byte("x")})
	ctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	if ms, err := fresh.Receive(ctx, 10); err != nil || len(ms) != 1 {
		t.Fatalf("fresh subscriber: %v %v", ms, err)
	}
}
