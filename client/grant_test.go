package client

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"connectrpc.com/connect"
)

// TestSettledFollowsGrantRule: an Ack, Nack or Commit that fails keeps
// (gives back) its grant exactly when the broker did not apply it, as
// consume.proto's service comment says, so credit is neither granted twice
// nor lost.
func TestSettledFollowsGrantRule(t *testing.T) {
	broker := func(code connect.Code) error { return connect.NewError(code, errors.New("from the broker")) }
	for _, tc := range []struct {
		name    string
		err     error
		applied bool
	}{
		{"success", nil, true},
		{"unknown delivery, or consumer gone", broker(connect.CodeNotFound), true},
		{"partition not owned", broker(connect.CodeFailedPrecondition), true},
		{"disk full", broker(connect.CodeResourceExhausted), true},
		{"wrapped", fmt.Errorf("ack: %w", broker(connect.CodeNotFound)), true},
		{"malformed call", broker(connect.CodeInvalidArgument), false},
		{"unreachable", broker(connect.CodeUnavailable), false},
		{"deadline", broker(connect.CodeDeadlineExceeded), false},
		{"canceled", broker(connect.CodeCanceled), false},
		{"transport", broker(connect.CodeUnknown), false},
		{"internal", broker(connect.CodeInternal), false},
		{"client closed", ErrClosed, false},
		{"context", context.Canceled, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			att := &attachment{id: "c", credit: newCredit(nil, "c", 100)}
			att.credit.consumed(7)
			grant := att.credit.take()
			(&Client{}).settled(att, grant, tc.err)
			kept := att.credit.take()
			if want := map[bool]int32{true: 0, false: 7}[tc.applied]; kept != want {
				t.Fatalf("after %v: %d credit owed, want %d", tc.err, kept, want)
			}
		})
	}
}
