package native

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/ferrymq/ferry/engine"
)

// codes maps each engine error to the Connect code a client sees. The
// engine's message (the topic's name, the limit) is passed on as it is.
var codes = []struct {
	err  error
	code connect.Code
}{
	{engine.ErrUnknownTopic, connect.CodeNotFound},
	{engine.ErrUnknownSubscription, connect.CodeNotFound},
	{engine.ErrUnknownPartition, connect.CodeNotFound},
	{engine.ErrUnknownDelivery, connect.CodeNotFound},
	{engine.ErrTopicExists, connect.CodeAlreadyExists},
	{engine.ErrSubscriptionExists, connect.CodeAlreadyExists},
	{engine.ErrInvalidName, connect.CodeInvalidArgument},
	{engine.ErrInvalidConfig, connect.CodeInvalidArgument},
	{engine.ErrInvalidMessage, connect.CodeInvalidArgument},
	{engine.ErrMessageTooLarge, connect.CodeInvalidArgument},
	{engine.ErrOffsetOutOfRange, connect.CodeOutOfRange},
	{engine.ErrNotOwner, connect.CodeFailedPrecondition},
	{engine.ErrMemberClosed, connect.CodeFailedPrecondition},
	{engine.ErrSlowConsumer, connect.CodeResourceExhausted},
	{engine.ErrDiskFull, connect.CodeResourceExhausted},
	{engine.ErrClosed, connect.CodeUnavailable},
	{engine.ErrDataFolderGone, connect.CodeUnavailable},
	{context.Canceled, connect.CodeCanceled},
	{context.DeadlineExceeded, connect.CodeDeadlineExceeded},
}

// toConnect turns an error from the engine into a Connect error with the
// code that fits it; anything unexpected is Internal.
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*connect.Error](err); ok {
		return err
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return connect.NewError(c.code, err)
		}
	}
	return connect.NewError(connect.CodeInternal, err)
}

// invalid is an InvalidArgument error for a request that breaks a rule the
// engine does not check itself.
func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}
