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
// A topic folder is removed only when the metadata store says it may be (a
// drop key, d/NAME~ID, written before a create makes the folder and in the
// batch of a delete): Open finishes an interrupted create or delete, and
// keeps any folder that neither the catalogue nor a drop key explains,
// logging it as an error (Broker.StrayTopicFolders lists them).
//
// The broker checks that DIR/LOCK is still the file it locked (every
// FolderCheckInterval and before each catalogue change): once the folder is
// deleted, moved or replaced under it, every call fails with
// ErrDataFolderGone.
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
