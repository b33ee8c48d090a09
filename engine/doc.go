// Package engine is Ferry's broker, embeddable in any Go program: open a data
// folder, get a Broker. It holds the model of the product brief (topics,
// messages, subscriptions, readers) on top of the partition log
// (storage/log) and the metadata store (storage/meta). It does no
// networking: every front door calls it.
//
// # Data folder
//
//	DIR/meta/                     the metadata store: catalogue, positions, acks
//	DIR/topics/NAME~ID/P/         the log of partition P of topic NAME
//
// A topic's folder carries a random id, so a topic deleted and created again
// under the same name never meets its predecessor's files.
//
// # Messages on disk
//
// A message is a record of the partition log. Its key, value, headers and
// timestamp are the record's. Two headers are Ferry's own and are read back
// into Message fields rather than shown as headers:
//
//	ferry-id          the publish deduplication id
//	ferry-deliver-at  deliver-at time, milliseconds since the Unix epoch, decimal
//
// Kafka clients reading the same topic see them as ordinary headers.
package engine
