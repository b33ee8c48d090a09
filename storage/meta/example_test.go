package meta_test

import (
	"fmt"
	"os"

	"github.com/ferrymq/ferry/storage/meta"
)

func Example() {
	dir, err := os.MkdirTemp("", "ferry-meta-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	store, err := meta.Open(dir, meta.Options{})
	if err != nil {
		panic(err)
	}

	// Creating a topic is a catalogue change: wait for the fsync.
	var b meta.Batch
	b.Put("topic/orders", []byte(`{"partitions":2}`))
	b.Put("topic/payments", []byte(`{"partitions":1}`))
	if err := store.Apply(&b, meta.Synced); err != nil {
		panic(err)
	}

	// Committing positions moves with every consumed batch: written, and on
	// disk with the next group commit.
	b.Reset()
	b.Put("pos/billing/orders/0", []byte("42"))
	b.Put("pos/billing/orders/1", []byte("17"))
	if err := store.Apply(&b, meta.Written); err != nil {
		panic(err)
	}

	// Deleting a topic drops its state in the same atomic batch.
	b.Reset()
	b.Delete("topic/payments")
	b.DeletePrefix("pos/billing/payments/")
	if err := store.Apply(&b, meta.Synced); err != nil {
		panic(err)
	}
	if err := store.Close(); err != nil {
		panic(err)
	}

	// Reopening replays the change log.
	store, err = meta.Open(dir, meta.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	pos, _ := store.Get("pos/billing/orders/1")
	fmt.Println("position of partition 1:", string(pos))
	store.Scan("topic/", func(key string, value []byte) bool {
		fmt.Println(key, string(value))
		return true
	})
	// Output:
	// position of partition 1: 17
	// topic/orders {"partitions":2}
}
