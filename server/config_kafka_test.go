package server

import "testing"

// TestKafkaMaxRequestBytes: kafka_max_request_bytes has Kafka's default,
// is read from the environment and flags, and must be positive.
func TestKafkaMaxRequestBytes(t *testing.T) {
	none := func(string) string { return "" }
	c, err := Load("", none, nil)
	if err != nil || c.KafkaMaxRequestBytes != 100<<20 {
		t.Fatalf("default: %d, %v", c.KafkaMaxRequestBytes, err)
	}
	env := map[string]string{"FERRY_KAFKA_MAX_REQUEST_BYTES": "2048"}
	if c, err = Load("", func(k string) string { return env[k] }, nil); err != nil || c.KafkaMaxRequestBytes != 2048 {
		t.Fatalf("from the environment: %d, %v", c.KafkaMaxRequestBytes, err)
	}
	if c, err = Load("", func(k string) string { return env[k] }, map[string]string{"kafka_max_request_bytes": "4096"}); err != nil || c.KafkaMaxRequestBytes != 4096 {
		t.Fatalf("flag over the environment: %d, %v", c.KafkaMaxRequestBytes, err)
	}
	if _, err := Load("", none, map[string]string{"kafka_max_request_bytes": "0"}); err == nil {
		t.Fatal("kafka_max_request_bytes 0 accepted")
	}
}
