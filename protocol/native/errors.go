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

// errorReporter is an interceptor that calls on with the code of each
// call that ends in an error.
type errorReporter func(code string)

var _ connect.Interceptor = errorReporter(nil)

// WrapUnary implements connect.Interceptor.
func (on errorReporter) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		resp, err := next(ctx, req)
		if err != nil {
			on(connect.CodeOf(err).String())
		}
		return resp, err
	}
}

// WrapStreamingClient implements connect.Interceptor; the service is no
// client.
func (on errorReporter) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (on errorReporter) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		if err != nil {
			on(connect.CodeOf(err).String())
		}
		return err
	}
}
