package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The dashboard's tests drive headless Chromium (Debian's chromium package,
// which scripts/test.sh installs) through the DevTools protocol against a
// live server: every page loads, and a topic created, a message published
// and a lag seen through the pages are the broker's own.

// screenshots is where each page's picture from the last run is kept, for
// the README and docs/operations.md.
const screenshots = "../docs/screenshots"

// browser is a headless Chromium tab and the page errors it has seen.
type browser struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	js  []string // uncaught exceptions and console errors
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (apt-get install chromium; scripts/test.sh does it)")
		}
		t.Skip("chromium is not installed: apt-get install chromium")
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	ctx, cancelTab := chromedp.NewContext(actx)
	// Cleanups run last first: the tab, then the browser (whose cancel
	// waits for the process to exit), then the temporary folder.
	t.Cleanup(cancelAlloc)
	t.Cleanup(cancelTab)
	b := &browser{t: t, ctx: ctx}
	// The first call starts the browser and ties it to the context it is
	// given, so it gets the tab's own context, bounded from here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v", err)
		}
	case <-time.After(60 * time.Second):
		cancelTab()
		t.Fatal("chromium did not start within 60 s")
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.mu.Lock()
				b.js = append(b.js, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs steps with a bound, failing the test with what was being done.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v%s", what, err, b.pageState())
	}
}

// waitFor polls a JavaScript condition in the page until it holds.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	b.do(what, chromedp.Action[chromedp.Void](func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](cond, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))(ctx, t)
		return chromedp.Void{}, err
	}))
}

// text is the text content of the first element sel matches, "" if none.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// pageState is what a failure report needs: the page's status line and
// the script errors seen.
func (b *browser) pageState() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("status") || {}).textContent || ""`))
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("\npage status: %q\nscript errors: %q", status, b.js)
}

// noScriptErrors fails the test if the page threw or logged an error.
func (b *browser) noScriptErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.js {
		b.t.Errorf("script error: %s", e)
	}
	b.js = nil
}

// screenshot saves the viewport as docs/screenshots/NAME.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(screenshots, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func TestDashboard(t *testing.T) {
	b := newBrowser(t)
	_, base := startServer(t)

	// Something to look at: a stream subscription that reads everything,
	// and a queue one.
	mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "orders", "config": map[string]any{"partitions": 2}})
	mustCall(t, base, "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{
		"topic": "orders", "name": "billing", "config": map[string]any{"kind": "SUBSCRIPTION_KIND_STREAM", "startAt": "START_POSITION_EARLIEST"}})
	mustCall(t, base, "ferry.v1.SubscriptionService/CreateSubscription", map[string]any{
		"topic": "orders", "name": "mailer", "config": map[string]any{"kind": "SUBSCRIPTION_KIND_QUEUE", "startAt": "START_POSITION_EARLIEST"}})
	publish := func(topic string, n int) {
		msgs := make([]map[string]any, n)
		for i := range msgs {
			msgs[i] = map[string]any{"key": b64(fmt.Sprintf("customer-%d", i%7)), "text": fmt.Sprintf(`{"order":%d,"total":%d.50}`, i, 10+i)}
		}
		mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": topic, "messages": msgs})
	}
	publish("orders", 40)

	t.Run("Overview", func(t *testing.T) {
		b.t = t
		b.do("load overview", chromedp.Navigate(base+"/#/"), chromedp.WaitVisible(chromedp.CSS("#rate-chart")))
		b.waitFor("topic count", `document.getElementById("stat-topics").textContent === "1"`)
		b.waitFor("subscription count", `document.getElementById("stat-subscriptions").textContent === "2"`)
		b.waitFor("health", `document.getElementById("stat-health").textContent === "ready"`)
		// An ephemeral subscriber takes every message, so there are
		// deliveries to time.
		sctx, scancel := context.WithCancel(context.Background())
		defer scancel()
		sub := openStream(t, sctx, base, "ferry.v1.ConsumeService/Subscribe", map[string]any{"pattern": "orders", "credit": 10000})
		if _, err := sub.next(); err != nil { // its consumer id
			t.Fatalf("subscribe: %v", err)
		}
		go func() {
			for {
				if _, err := sub.next(); err != nil {
					return
				}
			}
		}()
		// The rate chart and the latency panels move when messages are
		// published and delivered between two scrapes of /metrics (every
		// 2 s): publish until the charts have a few points, so the
		// screenshot shows lines.
		stop := make(chan struct{})
		done := make(chan struct{})
		var stopOnce sync.Once
		stopPublishing := func() { stopOnce.Do(func() { close(stop) }); <-done }
		defer stopPublishing() // also when the test fails first
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(300 * time.Millisecond):
				}
				body, _ := json.Marshal(map[string]any{"topic": "orders", "messages": []any{map[string]any{"text": "tick"}, map[string]any{"text": "tock"}}})
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				req, _ := http.NewRequestWithContext(ctx, "POST", base+"/ferry.v1.PublishService/Publish", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
				cancel()
			}
		}()
		b.waitFor("publish rate", `parseFloat(document.getElementById("rate-published").textContent) > 0`)
		b.waitFor("delivery rate", `parseFloat(document.getElementById("rate-delivered").textContent) > 0`)
		b.waitFor("chart points", `Number(document.getElementById("rate-chart").dataset.points) >= 4`)
		for _, l := range []string{"publish", "e2e", "fsync"} {
			b.waitFor(l+" latency chart", fmt.Sprintf(`Number(document.getElementById("lat-%s-chart").dataset.points) >= 3`, l))
			b.waitFor(l+" latency figures", fmt.Sprintf(`/^[0-9.]+ (ms|s)$/.test(document.getElementById("lat-%[1]s-p50").textContent) &&
				/^[0-9.]+ (ms|s)$/.test(document.getElementById("lat-%[1]s-p99").textContent)`, l))
		}
		b.screenshot("overview")
		stopPublishing()
		// The stored count catches up at the next refresh (every 5 s).
		end := 0
		for _, tp := range mustCall(t, base, "ferry.v1.TopicService/DescribeTopic", map[string]any{"name": "orders"})["topic"].(map[string]any)["partitions"].([]any) {
			n, _ := strconv.Atoi(tp.(map[string]any)["endOffset"].(string))
			end += n
		}
		b.waitFor("messages stored", fmt.Sprintf(`document.getElementById("stat-messages").textContent.replace(/,/g, "") === %q`, strconv.FormatInt(int64(end), 10)))
		// The subscriptions' numbers come from /metrics: neither
		// subscription has consumed, so each has every message as backlog.
		b.waitFor("backlog", fmt.Sprintf(`document.getElementById("stat-backlog").textContent.replace(/,/g, "") === %q`, strconv.FormatInt(int64(2*end), 10)))
		b.noScriptErrors()
	})

	t.Run("Topics", func(t *testing.T) {
		b.t = t
		b.do("load topics", chromedp.Navigate(base+"/#/topics"), chromedp.WaitVisible(chromedp.CSS(`tr[data-topic="orders"]`)))
		// Create a topic through the page.
		b.do("create payments",
			chromedp.SetValue(chromedp.CSS("#topic-name"), "payments"),
			chromedp.SetValue(chromedp.CSS("#topic-partitions"), "3"),
			chromedp.SetValue(chromedp.CSS("#topic-retention"), "age"),
			chromedp.SetValue(chromedp.CSS("#topic-retention-limit"), "7d"),
			chromedp.Click(chromedp.CSS(`#create-topic button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-topic="payments"]`)))
		got := mustCall(t, base, "ferry.v1.TopicService/DescribeTopic", map[string]any{"name": "payments"})["topic"].(map[string]any)
		if n := len(got["partitions"].([]any)); n != 3 {
			t.Errorf("payments has %d partitions, want 3", n)
		}
		if age := got["config"].(map[string]any)["retention"].(map[string]any)["maxAge"]; age != "604800s" {
			t.Errorf("payments retention max age %v, want 604800s", age)
		}
		// Delete one, through the confirmation.
		mustCall(t, base, "ferry.v1.TopicService/CreateTopic", map[string]any{"name": "scratch"})
		b.do("delete scratch",
			chromedp.WaitVisible(chromedp.CSS(`button[data-delete="scratch"]`)),
			chromedp.Click(chromedp.CSS(`button[data-delete="scratch"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#confirm-ok`)))
		if s, _ := call(t, base, "ferry.v1.TopicService/DescribeTopic", map[string]any{"name": "scratch"}); s != 200 {
			t.Fatal("scratch deleted before the confirmation")
		}
		b.do("confirm", chromedp.Click(chromedp.CSS(`#confirm-ok`)), chromedp.WaitNotPresent(chromedp.CSS(`tr[data-topic="scratch"]`)))
		if s, _ := call(t, base, "ferry.v1.TopicService/DescribeTopic", map[string]any{"name": "scratch"}); s != 404 {
			t.Errorf("scratch after delete: status %d, want 404", s)
		}
		b.noScriptErrors()
		b.screenshot("topics")
	})

	t.Run("Messages", func(t *testing.T) {
		b.t = t
		b.do("load messages", chromedp.Navigate(base+"/#/topics/payments"), chromedp.WaitVisible(chromedp.CSS("#publish-form")))
		b.waitFor("partitions listed", `document.querySelectorAll("#pub-partition option").length === 4`)
		// Publish through the page; the page reads it back with the Read API.
		b.do("publish",
			chromedp.SetValue(chromedp.CSS("#pub-partition"), "1"),
			chromedp.SetValue(chromedp.CSS("#pub-key"), "user-7"),
			chromedp.SetValue(chromedp.CSS("#pub-headers"), "trace-id: 4bf92f35\ncontent-type: application/json"),
			chromedp.SetValue(chromedp.CSS("#pub-value"), `{"payment":"p-1","amount":42,"currency":"EUR"}`),
			chromedp.Click(chromedp.CSS(`#publish-form button[type="submit"]`)))
		b.waitFor("message shown", `[...document.querySelectorAll("#message-rows pre.msg-value")].some(e => e.textContent.includes('"amount": 42'))`)
		if key := b.text("#message-rows pre.msg-key"); key != "user-7" {
			t.Errorf("key shown %q, want user-7", key)
		}
		if h := b.text("#message-rows .msg-header"); h != "trace-id: 4bf92f35" {
			t.Errorf("first header shown %q", h)
		}
		// The broker has it where the page said.
		read := mustCall(t, base, "ferry.v1.ReadService/Read", map[string]any{"topic": "payments", "partition": 1, "earliest": true})
		msgs, _ := read["messages"].([]any)
		if len(msgs) != 1 || !strings.Contains(unb64(t, msgs[0].(map[string]any)["value"]), `"amount":42`) {
			t.Fatalf("payments partition 1 holds %v", msgs)
		}
		// A few more to browse, and the hex view.
		for i := range 4 {
			mustCall(t, base, "ferry.v1.PublishService/Publish", map[string]any{"topic": "payments", "partition": 1,
				"messages": []any{map[string]any{"key": b64(fmt.Sprintf("user-%d", i)), "text": fmt.Sprintf(`{"payment":"p-%d","amount":%d,"currency":"EUR"}`, i+2, 10*i+5)}}})
		}
		b.do("read from earliest",
			chromedp.SetValue(chromedp.CSS("#read-from"), "earliest"),
			chromedp.Click(chromedp.CSS(`#read-form button[type="submit"]`)))
		b.waitFor("five messages", `document.querySelectorAll("#message-rows tr[data-offset]").length === 5`)
		b.do("hex", chromedp.SetValue(chromedp.CSS("#read-format"), "hex"),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("read-format").dispatchEvent(new Event("change"))`))
		b.waitFor("hex shown", `document.querySelector("#message-rows pre.msg-value").textContent.startsWith("000000  7b 22")`)
		b.do("back to auto", chromedp.SetValue(chromedp.CSS("#read-format"), "auto"),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("read-format").dispatchEvent(new Event("change"))`))
		b.noScriptErrors()
		b.screenshot("messages")
	})

	t.Run("Subscriptions", func(t *testing.T) {
		b.t = t
		b.do("load subscriptions", chromedp.Navigate(base+"/#/subscriptions"),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-sub="orders/billing"] .backlog`)))
		// billing reads from the earliest message and has consumed none.
		backlog := func(sub string) string {
			return fmt.Sprintf(`document.querySelector('tr[data-sub="orders/%s"] .backlog').textContent`, sub)
		}
		var before int
		b.do("read lag", chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			var err error
			before, err = chromedp.Evaluate[int](`Number(`+backlog("billing")+`.replace(/,/g, ""))`)(ctx, tg)
			return chromedp.Void{}, err
		}))
		if before == 0 {
			t.Fatal("billing shows no lag before publishing")
		}
		publish("orders", 25)
		after := strconv.Quote(fmt.Sprintf("%d", before+25))
		b.waitFor("lag +25 after publishing", backlog("billing")+` === `+after)
		b.waitFor("queue backlog +25", backlog("mailer")+` === `+after)
		// A consumer takes 5: in flight, and one member.
		mustCall(t, base, "ferry.v1.ConsumeService/Receive", map[string]any{"topic": "orders", "subscription": "mailer", "maxMessages": 5})
		b.waitFor("in flight 5", `document.querySelector('tr[data-sub="orders/mailer"] .inflight').textContent === "5"`)
		b.noScriptErrors()
		b.screenshot("subscriptions")

		// Seek billing to the end of partition 0, through the confirmation.
		b.do("seek",
			chromedp.Click(chromedp.CSS(`button[data-seek="orders/billing"]`)),
			chromedp.WaitVisible(chromedp.CSS("#seek-form")),
			chromedp.SetValue(chromedp.CSS("#seek-target"), "latest"),
			chromedp.Click(chromedp.CSS(`#seek-form button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
			chromedp.Click(chromedp.CSS("#confirm-ok")))
		b.waitFor("lag 0 after seek", `document.querySelector('tr[data-sub="orders/billing"] .backlog').textContent === "0"`)
		sub := mustCall(t, base, "ferry.v1.SubscriptionService/DescribeSubscription", map[string]any{"topic": "orders", "name": "billing"})["subscription"].(map[string]any)
		for _, p := range sub["partitions"].([]any) {
			if bl := p.(map[string]any)["backlog"]; bl != "0" {
				t.Errorf("billing backlog after seek: %v", p)
			}
		}
		b.noScriptErrors()

		// Purge mailer (a queue, 5 in flight), through the confirmation:
		// cancelled first, then confirmed.
		mailerBacklog := func() int64 {
			sub := mustCall(t, base, "ferry.v1.SubscriptionService/DescribeSubscription", map[string]any{"topic": "orders", "name": "mailer"})["subscription"].(map[string]any)
			var n int64
			for _, p := range sub["partitions"].([]any) {
				v, _ := strconv.ParseInt(p.(map[string]any)["backlog"].(string), 10, 64)
				n += v
			}
			return n
		}
		want := mailerBacklog()
		if want == 0 {
			t.Fatal("mailer has no backlog to purge")
		}
		if b.text(`button[data-purge="orders/billing"]`) != "" {
			t.Error("a stream subscription offers Purge (it has Seek)")
		}
		b.do("purge, cancelled",
			chromedp.Click(chromedp.CSS(`button[data-purge="orders/mailer"]`)),
			chromedp.WaitVisible(chromedp.CSS("#confirm-cancel")))
		if got := b.text("#confirm-text"); !strings.Contains(got, fmt.Sprintf("Its %s messages not acknowledged yet", fmtThousands(want))) {
			t.Errorf("confirmation says %q, want the backlog %d", got, want)
		}
		b.do("cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")), chromedp.WaitNotVisible(chromedp.CSS("#confirm")))
		if n := mailerBacklog(); n != want {
			t.Fatalf("mailer backlog %d after a cancelled purge, want %d", n, want)
		}
		b.do("purge",
			chromedp.Click(chromedp.CSS(`button[data-purge="orders/mailer"]`)),
			chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
			chromedp.Click(chromedp.CSS("#confirm-ok")))
		b.waitFor("backlog 0 after purge", `document.querySelector('tr[data-sub="orders/mailer"] .backlog').textContent === "0"`)
		b.waitFor("in flight 0 after purge", `document.querySelector('tr[data-sub="orders/mailer"] .inflight').textContent === "0"`)
		if got, wantNotice := b.text("#status"), fmt.Sprintf("Purged %s messages of mailer.", fmtThousands(want)); got != wantNotice {
			t.Errorf("status %q, want %q", got, wantNotice)
		}
		if n := mailerBacklog(); n != 0 {
			t.Errorf("mailer backlog after purge: %d", n)
		}
		b.noScriptErrors()
	})

	// The pages that refresh on a timer clear the error of a failed refresh
	// when the next one succeeds.
	t.Run("PollErrorsClear", func(t *testing.T) {
		b.t = t
		b.do("load", chromedp.Navigate(base+"/#/topics"), chromedp.WaitVisible(chromedp.CSS(`tr[data-topic="orders"]`)))
		b.do("fail listings", chromedp.Evaluate[chromedp.Void](`(() => {
			const real = window.fetch;
			window.failListings = 0;
			window.listings = 0;
			window.fetch = (url, init) => {
				if (String(url).endsWith("/ListTopics")) window.listings++;
				if (String(url).endsWith("/ListTopics") && window.failListings > 0) {
					window.failListings--;
					return Promise.resolve(new Response(JSON.stringify({ code: "unavailable", message: "injected failure" }),
						{ status: 503, headers: { "Content-Type": "application/json" } }));
				}
				return real(url, init);
			};
		})()`))
		for _, page := range []string{"#/subscriptions", "#/topics"} { // from #/topics
			b.do("fail the next listing on "+page, chromedp.Evaluate[chromedp.Void](`window.failListings = 1; location.hash = "`+page+`"`))
			b.waitFor("error shown on "+page, `document.getElementById("status").textContent.includes("injected failure")`)
			b.waitFor("error cleared on "+page, `window.failListings === 0 && document.getElementById("status").textContent === ""`)
		}
		// A notice of the user's own action stays.
		b.do("create topic", chromedp.Evaluate[chromedp.Void](`location.hash = "#/topics"`),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-topic="orders"]`)),
			chromedp.SetValue(chromedp.CSS("#topic-name"), "kept.notice"),
			chromedp.Click(chromedp.CSS(`#create-topic button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-topic="kept.notice"]`)),
			chromedp.Evaluate[chromedp.Void](`window.listingsThen = window.listings`))
		b.waitFor("two refreshes", `window.listings >= window.listingsThen + 2`)
		if got := b.text("#status"); got != "Created topic kept.notice." {
			t.Errorf("status after refreshes: %q", got)
		}
		b.noScriptErrors()
		b.do("leave", chromedp.Navigate("about:blank")) // and the wrapped fetch with it
	})

	// Offsets past 2^53 (what a Number holds exactly) are shown and used
	// exactly. No partition gets there in a test, so the page is served a
	// topic that has, by a wrapper of fetch.
	t.Run("LargeOffsets", func(t *testing.T) {
		b.t = t
		b.do("load", chromedp.Navigate(base+"/#/"), chromedp.WaitVisible(chromedp.CSS("#rate-chart")))
		b.do("serve a huge topic", chromedp.Evaluate[chromedp.Void](`(() => {
			const real = window.fetch;
			const huge = { name: "huge", config: {}, partitions: [{ partition: 0, startOffset: "9007199254740993",
				endOffset: "9007199254740999", bytes: "100", segments: 1 }] };
			const answer = (body) => Promise.resolve(new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } }));
			window.reads = [];
			window.fetch = async (url, init) => {
				url = String(url);
				if (url.endsWith("/ListTopics")) {
					const r = await (await real(url, init)).json();
					return answer({ topics: (r.topics || []).concat([huge]) });
				}
				if (url.endsWith("/DescribeTopic") && JSON.parse(init.body).name === "huge") return answer({ topic: huge });
				if (url.endsWith("/ListSubscriptions") && JSON.parse(init.body).topic === "huge") return answer({ subscriptions: [] });
				if (url.endsWith(".ReadService/Read") && JSON.parse(init.body).topic === "huge") {
					const req = JSON.parse(init.body);
					window.reads.push(req);
					const at = req.offset || "9007199254740993";
					return answer({ messages: [{ topic: "huge", partition: 0, offset: at, timestamp: "2024-01-01T00:00:00Z", value: btoa("v") }],
						nextOffset: String(BigInt(at) + 1n), highWatermark: "9007199254740999", startOffset: "9007199254740993" });
				}
				return real(url, init);
			};
			location.hash = "#/topics";
		})()`))
		b.waitFor("huge listed", `!!document.querySelector('tr[data-topic="huge"]')`)
		if got := b.text(`tr[data-topic="huge"] td.mono`); got != "p0: 9,007,199,254,740,993 … 9,007,199,254,740,999" {
			t.Errorf("offsets shown %q", got)
		}
		b.do("overview", chromedp.Evaluate[chromedp.Void](`location.hash = "#/"`))
		b.waitFor("huge on the overview", `!!document.querySelector('tr[data-topic="huge"] td.messages')`)
		if got := b.text(`tr[data-topic="huge"] td.messages`); got != "6" {
			t.Errorf("messages of huge shown as %q, want 6", got)
		}
		// Browse it: the last 3, then the next page from the offset the
		// broker said.
		b.do("messages", chromedp.Evaluate[chromedp.Void](`location.hash = "#/topics/huge"`))
		b.waitFor("first read", `window.reads.length === 1`)
		b.do("last 3", chromedp.SetValue(chromedp.CSS("#read-from"), "last"), chromedp.SetValue(chromedp.CSS("#read-count"), "3"),
			chromedp.Click(chromedp.CSS(`#read-form button[type="submit"]`)))
		b.waitFor("second read", `window.reads.length === 2`)
		b.do("next page", chromedp.Click(chromedp.CSS("#read-next")))
		b.waitFor("third read", `window.reads.length === 3`)
		reads, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`JSON.stringify(window.reads.map((r) => r.offset || ""))`))
		if err != nil {
			t.Fatal(err)
		}
		if want := `["","9007199254740996","9007199254740997"]`; reads != want {
			t.Errorf("read offsets %s, want %s", reads, want)
		}
		b.waitFor("the next page shown", `document.querySelector("#message-rows td.num").textContent === "0/9007199254740997"`)
		b.noScriptErrors()
		b.do("leave", chromedp.Navigate("about:blank"))
	})

	// A key or header far larger than a function's arguments may be is
	// published (the bytes are encoded a chunk at a time).
	t.Run("LargeKey", func(t *testing.T) {
		b.t = t
		b.do("load", chromedp.Navigate(base+"/#/topics/payments"), chromedp.WaitVisible(chromedp.CSS("#publish-form")))
		b.waitFor("partitions listed", `document.querySelectorAll("#pub-partition option").length === 4`)
		b.do("publish", chromedp.SetValue(chromedp.CSS("#pub-partition"), "2"),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("pub-key").value = "k".repeat(300000);
				document.getElementById("pub-headers").value = "big: " + "h".repeat(300000)`),
			chromedp.SetValue(chromedp.CSS("#pub-value"), "large key"),
			chromedp.Click(chromedp.CSS(`#publish-form button[type="submit"]`)))
		b.waitFor("published", `document.getElementById("status").textContent.startsWith("Published to partition 2")`)
		read := mustCall(t, base, "ferry.v1.ReadService/Read", map[string]any{"topic": "payments", "partition": 2, "earliest": true})
		msgs, _ := read["messages"].([]any)
		if len(msgs) != 1 {
			t.Fatalf("payments partition 2 holds %d messages", len(msgs))
		}
		m := msgs[0].(map[string]any)
		if k := unb64(t, m["key"]); k != strings.Repeat("k", 300000) {
			t.Errorf("key of %d bytes stored", len(k))
		}
		if h := m["headers"].([]any)[0].(map[string]any); h["key"] != "big" || unb64(t, h["value"]) != strings.Repeat("h", 300000) {
			t.Errorf("header %v stored", h["key"])
		}
		b.noScriptErrors()
	})

	// Between two scrapes a topic was deleted (its series are gone) while
	// another kept going: the overview's rates and latencies are what the
	// remaining topic did, not everything it ever counted (as if the
	// broker had restarted) nor a mix of both. The page is served the two
	// scrapes by a wrapper of fetch, then none (so the figures stay).
	t.Run("DeletedTopicBetweenScrapes", func(t *testing.T) {
		b.t = t
		b.do("load", chromedp.Navigate(base+"/#/"), chromedp.WaitVisible(chromedp.CSS("#rate-chart")))
		b.do("serve two scrapes", chromedp.Evaluate[chromedp.Void](`(() => {
			const scrape = (topics) => topics.map(([topic, published, fast, slow]) => [
				'ferry_published_messages_total{partition="0",topic="' + topic + '"} ' + published,
				'ferry_subscription_deliveries_total{subscription="s",topic="' + topic + '"} ' + published,
				'ferry_end_to_end_latency_seconds_bucket{kind="stream",topic="' + topic + '",le="1"} ' + fast,
				'ferry_end_to_end_latency_seconds_bucket{kind="stream",topic="' + topic + '",le="10"} ' + (fast + slow),
				'ferry_end_to_end_latency_seconds_bucket{kind="stream",topic="' + topic + '",le="+Inf"} ' + (fast + slow),
				'ferry_end_to_end_latency_seconds_count{kind="stream",topic="' + topic + '"} ' + (fast + slow),
			].join("\n")).join("\n") + "\n";
			// Topic a: 1000 messages, each delivered in 1 to 10 s; topic b:
			// 100, then 10 more, each within a second. Then a is deleted.
			const scrapes = [scrape([["a", 1000, 0, 1000], ["b", 100, 100, 0]]), scrape([["b", 110, 110, 0]])];
			const real = window.fetch;
			window.served = 0;
			window.fetch = (url, init) => {
				if (String(url) !== "/metrics") return real(url, init);
				const body = scrapes[window.served++];
				if (body === undefined) return new Promise(() => {}); // no more scrapes
				return Promise.resolve(new Response(body, { status: 200, headers: { "Content-Type": "text/plain" } }));
			};
		})()`))
		// The third scrape is asked for once the second is shown.
		b.waitFor("two scrapes shown", `window.served === 3`)
		rate, p50, p99 := b.text("#rate-published"), b.text("#lat-e2e-p50"), b.text("#lat-e2e-p99")
		// 10 messages in a little over 2 s.
		if r, err := strconv.ParseFloat(strings.TrimSuffix(rate, "/s"), 64); err != nil || r > 5 || r < 4 {
			t.Errorf("published rate shown %q, want about 5/s (10 messages of topic b in 2 s)", rate)
		}
		if d, err := strconv.ParseFloat(strings.TrimSuffix(b.text("#rate-delivered"), "/s"), 64); err != nil || d > 5 || d < 4 {
			t.Errorf("delivery rate shown %q, want about 5/s", b.text("#rate-delivered"))
		}
		// All 10 within a second: p50 0.5 s, p99 0.99 s, by interpolation.
		if p50 != "500 ms" || p99 != "990 ms" {
			t.Errorf("end-to-end latency shown p50 %q, p99 %q; want 500 ms and 990 ms", p50, p99)
		}
		b.noScriptErrors()
		b.do("leave", chromedp.Navigate("about:blank"))
	})

	// The latency figures are read from histogram buckets as Prometheus's
	// histogram_quantile reads them.
	t.Run("Quantiles", func(t *testing.T) {
		b.t = t
		b.do("load", chromedp.Navigate(base+"/#/topics"), chromedp.WaitVisible(chromedp.CSS("#main")))
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`JSON.stringify((() => {
			const bs = [{ le: 0.001, count: 10 }, { le: 0.01, count: 20 }, { le: Infinity, count: 20 }];
			const over = [{ le: 0.001, count: 0 }, { le: 10, count: 1 }, { le: Infinity, count: 4 }];
			const r = (v) => +v.toPrecision(12); // 0.001 + 0.009 * 0.98 is 0.009820000000000002
			const h = (...counts) => histograms(parseMetrics(counts.map(([topic, le, n]) =>
				'x_seconds_bucket{topic="' + topic + '",le="' + le + '"} ' + n).join("\n")), "x_seconds");
			return [r(quantile(0.5, bs)), r(quantile(0.99, bs)), quantile(0.99, over), quantile(0.5, [{ le: Infinity, count: 0 }]),
				// Gained: 2 under 1 s in a, 1 in b.
				bucketDelta(h(["a", 1, 5], ["a", "+Inf", 7], ["b", 1, 1], ["b", "+Inf", 1]), h(["a", 1, 3], ["a", "+Inf", 5], ["b", 1, 0], ["b", "+Inf", 0])),
				// Restarted: the total went down; everything since counts.
				bucketDelta(h(["a", 1, 5], ["a", "+Inf", 7]), h(["a", 1, 2], ["a", "+Inf", 9])),
				// Restarted: every cumulative count grew, yet the bucket
				// (1, 10] holds fewer than before.
				bucketDelta(h(["a", 1, 5], ["a", 10, 5], ["a", "+Inf", 7]), h(["a", 1, 2], ["a", 10, 3], ["a", "+Inf", 3])),
				// New since the last scrape: counted from 0; gone: nothing.
				bucketDelta(h(["c", 1, 4], ["c", "+Inf", 4]), h(["a", 1, 9], ["a", "+Inf", 9]))];
		})())`))
		if err != nil {
			t.Fatal(err)
		}
		if want := `[0.001,0.00982,10,null,` +
			`[{"le":1,"count":3},{"le":null,"count":3}],` +
			`[{"le":1,"count":5},{"le":null,"count":7}],` +
			`[{"le":1,"count":5},{"le":10,"count":5},{"le":null,"count":7}],` +
			`[{"le":1,"count":4},{"le":null,"count":4}]]`; got != want {
			t.Errorf("quantiles %s, want %s", got, want)
		}
	})
}

// fmtThousands writes n as the pages do (en-US grouping: 1,234).
func fmtThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
