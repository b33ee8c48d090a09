package kafka

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/storage/record"
)

// errorCode is the Kafka error code for an engine error (0 for nil).
func errorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, engine.ErrUnknownTopic), errors.Is(err, engine.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, engine.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, engine.ErrInvalidName):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, engine.ErrMessageTooLarge), errors.Is(err, record.ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, errUnsupportedCompression):
		return kerr.UnsupportedCompressionType.Code
	case errors.Is(err, record.ErrCorrupt), errors.Is(err, record.ErrShort):
		return kerr.CorruptMessage.Code
	case errors.Is(err, engine.ErrInvalidMessage):
		return kerr.InvalidRecord.Code
	case errors.Is(err, errNotStream):
		return kerr.InvalidGroupID.Code
	case errors.Is(err, engine.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, engine.ErrInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, engine.ErrDiskFull):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, engine.ErrClosed), errors.Is(err, context.Canceled):
		return kerr.NotLeaderForPartition.Code // the broker is going away: retry elsewhere
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	}
	return kerr.UnknownServerError.Code
}
