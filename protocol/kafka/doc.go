// Package kafka is Ferry's Kafka front door: it speaks the Kafka wire
// protocol on its own listener, so Kafka clients (franz-go, librdkafka and
// kcat, sarama, kafkajs) produce to and consume from Ferry topics unchanged.
//
// The codec is franz-go's kmsg: this package does only the framing (the
// size prefix, the request header, the response header rules) and maps
// each API onto the engine. Each API key has its own file, which declares
// the versions it serves (see apis in server.go). Kafka topics are Ferry
// topics, Kafka consumer groups are Ferry stream subscriptions (a group's
// committed offsets are the subscription's), and Fetch serves the stored
// record batches as they are: Ferry's storage format is Kafka's magic-2
// record batch.
//
// One broker, node 0, leads every partition. docs/kafka.md lists what is
// served and what is not.
package kafka
