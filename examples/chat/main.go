// Command chat is a chat room on Ferry: the publish-subscribe pattern.
//
// Each room is a topic (room.general, room.random). Each user holds one
// ephemeral subscription on the wildcard pattern "room.*": it matches
// every room, exists only while the user is connected, keeps no state on
// the broker and starts at "now". Every message posted to any room fans
// out, live, to every user.
//
// By default a few simulated users post at once; the program prints the
// transcript one of them saw and checks that all saw the same messages in
// the same order per room. With -user NAME it is an interactive client
// instead: lines read from stdin are posted ("#random hi" posts to
// room.random), and messages from the others are printed.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/ferrymq/ferry/client"
)

var rooms = []string{"room.general", "room.random"}

// What the simulated users say.
var phrases = []string{"hi all", "anyone tried the new build?", "lunch at noon?",
	"the deploy went fine", "coffee?", "see you tomorrow"}

func main() {
	server := flag.String("server", envOr("FERRY_SERVER", "http://127.0.0.1:8080"), "broker address (env FERRY_SERVER)")
	n := flag.Int("n", 4, "messages each simulated user posts")
	users := flag.String("users", "alice,bob,carol", "simulated users, comma-separated")
	user := flag.String("user", "", "chat interactively as this user (reads stdin)")
	timeout := flag.Duration("timeout", 30*time.Second, "simulation: give up after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	if *user != "" {
		err = interactive(ctx, *server, *user)
	} else {
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		err = simulate(ctx, *server, strings.Split(*users, ","), *n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

// createRooms creates the room topics unless they exist. They are kept
// between runs: an ephemeral subscription never sees old messages anyway.
func createRooms(ctx context.Context, c *client.Client) error {
	for _, room := range rooms {
		_, err := c.CreateTopic(ctx, room, client.TopicConfig{})
		if err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
			return fmt.Errorf("create %s: %w", room, err)
		}
	}
	return nil
}

// post publishes one line to a room; the author goes in a header.
func post(ctx context.Context, c *client.Client, room, from, text string, extra ...client.Header) error {
	headers := append([]client.Header{{Key: "from", Value: []byte(from)}}, extra...)
	_, err := c.Publish(ctx, room, client.Message{Value: []byte(text), Headers: headers})
	return err
}

// line formats a received message: "[room.general] bob: hello".
func line(m *client.Message) string {
	from, _ := m.Header("from")
	return fmt.Sprintf("[%s] %s: %s", m.Topic, from, m.Value)
}

// simulate runs the simulated users and checks what they saw.
func simulate(ctx context.Context, server string, users []string, n int) error {
	admin, err := client.New(server)
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := createRooms(ctx, admin); err != nil {
		return err
	}
	// Messages of this run carry its id: someone else chatting in the same
	// rooms right now does not disturb the count.
	run := fmt.Sprint(time.Now().UnixNano())
	total := len(users) * n

	// Every user connects with a client of their own and subscribes to
	// room.* before anyone posts: ConsumeEphemeral returns once the broker
	// accepted the subscription, so nothing posted after that is missed.
	clients := make([]*client.Client, len(users))
	subs := make([]*client.EphemeralConsumer, len(users))
	for i, u := range users {
		if clients[i], err = client.New(server); err != nil {
			return err
		}
		defer clients[i].Close() // also ends the subscription
		if subs[i], err = clients[i].ConsumeEphemeral(ctx, "room.*"); err != nil {
			return fmt.Errorf("%s: subscribe: %w", u, err)
		}
	}

	// Each user reads until it has seen every message of the run, and
	// posts its own messages meanwhile, alternating rooms.
	seen := make([][]string, len(users))
	errs := make([]error, 2*len(users)) // a reader's and a poster's
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			for m, err := range subs[i].Messages(ctx) {
				if err != nil {
					errs[i] = fmt.Errorf("%s saw %d of %d messages: %w", u, len(seen[i]), total, err)
					return
				}
				if r, _ := m.Header("run"); string(r) == run {
					seen[i] = append(seen[i], line(m))
					if len(seen[i]) == total {
						return
					}
				}
			}
		})
		wg.Go(func() {
			for k := 1; k <= n; k++ {
				room := rooms[(i+k)%len(rooms)]
				text := fmt.Sprintf("%s (%d/%d)", phrases[(i+k)%len(phrases)], k, n)
				if err := post(ctx, clients[i], room, u, text, client.Header{Key: "run", Value: []byte(run)}); err != nil {
					errs[len(users)+i] = fmt.Errorf("%s: post: %w", u, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	fmt.Printf("transcript seen by %s:\n", users[0])
	for _, l := range seen[0] {
		fmt.Println("  " + l)
	}
	// Rooms are single-partition topics: every subscriber gets a room's
	// messages in the same order. (Across rooms, arrival order may vary.)
	for i, u := range users[1:] {
		for _, room := range rooms {
			if !slices.Equal(inRoom(seen[0], room), inRoom(seen[i+1], room)) {
				return fmt.Errorf("%s and %s saw %s differently", users[0], u, room)
			}
		}
	}
	fmt.Printf("every user saw all %d messages, in the same order in each room\n", total)
	return nil
}

// inRoom keeps a transcript's lines of one room.
func inRoom(lines []string, room string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "["+room+"]") {
			out = append(out, l)
		}
	}
	return out
}

// interactive chats as user: messages from the others are printed as they
// come, lines typed are posted, until stdin ends or Ctrl-C.
func interactive(ctx context.Context, server, user string) error {
	c, err := client.New(server)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := createRooms(ctx, c); err != nil {
		return err
	}
	sub, err := c.ConsumeEphemeral(ctx, "room.*")
	if err != nil {
		return err
	}
	fmt.Printf("joined %s as %s; type a line to post to room.general, \"#random text\" for room.random\n",
		strings.Join(rooms, ", "), user)

	received := make(chan error, 1)
	go func() {
		for m, err := range sub.Messages(ctx) {
			if err != nil {
				received <- err
				return
			}
			if from, _ := m.Header("from"); string(from) != user {
				fmt.Println(line(m))
			}
		}
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil // Ctrl-C: leave the room
		case err := <-received:
			return err
		case text, ok := <-lines:
			if !ok {
				return nil // end of input
			}
			room := "room.general"
			if name, rest, ok := strings.Cut(text, " "); ok && strings.HasPrefix(name, "#") {
				room, text = "room."+name[1:], rest
			}
			if strings.TrimSpace(text) == "" {
				continue
			}
			if err := post(ctx, c, room, user, text); err != nil {
				fmt.Fprintln(os.Stderr, "post:", err) // e.g. an unknown room: keep chatting
			}
		}
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
