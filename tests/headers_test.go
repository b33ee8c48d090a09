package tests

import (
	"testing"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/engine"
)

// The client names the dead-letter headers the engine writes; it may not
// import the engine, so this keeps the two lists equal.
func TestClientDeadLetterHeaders(t *testing.T) {
	for _, h := range [][2]string{
		{client.HeaderDeadTopic, engine.HeaderDeadTopic},
		{client.HeaderDeadPartition, engine.HeaderDeadPartition},
		{client.HeaderDeadOffset, engine.HeaderDeadOffset},
		{client.HeaderDeadSubscription, engine.HeaderDeadSubscription},
		{client.HeaderDeadReason, engine.HeaderDeadReason},
		{client.HeaderDeadDeliveries, engine.HeaderDeadDeliveries},
	} {
		if h[0] != h[1] {
			t.Errorf("client says %q, engine writes %q", h[0], h[1])
		}
	}
}
