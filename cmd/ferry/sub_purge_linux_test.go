package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// openPTY opens a pseudo-terminal pair: what is written to master is read
// from slave as a terminal's input. Both are closed when the test ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlock pseudo-terminal: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("pseudo-terminal number: %v", e)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// On a terminal, purge asks first and purges only on yes.
func TestSubscriptionPurgeAsksOnTerminal(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "orders")
	b.ok(t, "sub", "create", "orders", "billing", "--kind", "queue")
	b.publish(t, "orders", nil, "a", "b", "c")
	onTerminal := func(answer string, args ...string) result {
		t.Helper()
		master, slave := openPTY(t)
		if answer != "" {
			if _, err := master.WriteString(answer); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
		defer cancel()
		c := b.cmd(t, ctx, "", args...)
		c.Stdin = slave
		return wait(c, args)
	}
	backlog := func() int64 {
		s, err := b.subs.DescribeSubscription(context.Background(), connect.NewRequest(&ferryv1.DescribeSubscriptionRequest{Topic: "orders", Name: "billing"}))
		if err != nil {
			t.Fatal(err)
		}
		return s.Msg.GetSubscription().GetPartitions()[0].GetBacklog()
	}
	question := `Purge queue subscription "billing" of topic "orders"? Its 3 messages not acknowledged yet, in flight included, will never be delivered to it. [y/N] `

	for _, answer := range []string{"n\n", "\n", "maybe\n"} {
		r := onTerminal(answer, "sub", "purge", "orders", "billing")
		if r.code != exitFailure || !strings.HasPrefix(r.stderr, question) || !strings.Contains(r.stderr, "not purged") || r.stdout != "" {
			t.Errorf("answer %q: %v", answer, r)
		}
		if n := backlog(); n != 3 {
			t.Fatalf("answer %q purged: backlog %d", answer, n)
		}
	}
	r := onTerminal("y\n", "sub", "purge", "orders", "billing")
	if r.code != exitOK || r.stderr != question || r.stdout != "purged 3 messages of subscription \"billing\" of topic \"orders\"\n" {
		t.Errorf("answer y: %v", r)
	}
	if n := backlog(); n != 0 {
		t.Fatalf("after yes: backlog %d", n)
	}
	// --yes: no question, even on a terminal.
	b.publish(t, "orders", nil, "d")
	r = onTerminal("", "sub", "purge", "orders", "billing", "--yes")
	if r.code != exitOK || r.stderr != "" || r.stdout != "purged 1 message of subscription \"billing\" of topic \"orders\"\n" {
		t.Errorf("--yes: %v", r)
	}
	// No question for a subscription that does not exist.
	r = onTerminal("", "sub", "purge", "orders", "nope")
	if r.code != exitNotFound || strings.Contains(r.stderr, "[y/N]") {
		t.Errorf("unknown subscription on a terminal: %v", r)
	}
}
