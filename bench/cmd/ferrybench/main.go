// Command ferrybench runs workloads (bench/workloads/*.toml) on systems
// (Ferry at several fsync settings and through its Kafka listener, NATS,
// Redis, RabbitMQ), skipping what a system cannot run, each run on a fresh
// broker started on 127.0.0.1, and writes the results into bench/results/:
// JSON (every run), Markdown (medians of the runs that passed, Ferry's
// ratios to its peers, issues 5 and 6's targets) and PNG charts (throughput per
// workload, latency percentiles) that the Markdown links.
//
//	cd bench && go run ./cmd/ferrybench                       # everything, 3 runs each
//	go run ./cmd/ferrybench -workloads latency-10k -systems ferry,redis -runs 1
//	go run ./cmd/ferrybench -duration 2s -warmup 500ms -label smoke
//	go run ./cmd/ferrybench -report results/run-X.json      # Markdown and charts again, no runs
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrymq/ferry/bench/driver"
	"github.com/ferrymq/ferry/bench/peers"
	"github.com/ferrymq/ferry/bench/report"
	"github.com/ferrymq/ferry/bench/runner"
	"github.com/ferrymq/ferry/bench/systems"
	"github.com/ferrymq/ferry/bench/workload"
)

type options struct {
	workloads, systems, sizes string
	runs                      int
	warmup, duration          time.Duration
	drain                     time.Duration
	dir, out, label           string
	ferryBin                  string
	inProcess                 bool
	cpuProfile                string
	report                    string
	install                   bool
}

func main() {
	var o options
	flag.StringVar(&o.workloads, "workloads", "all", "comma-separated workload names (files in -dir), or all")
	flag.StringVar(&o.systems, "systems", strings.Join(systems.Names(), ","), "comma-separated systems")
	flag.StringVar(&o.sizes, "sizes", "", "comma-separated message sizes in bytes to keep (default: every size of each file)")
	flag.IntVar(&o.runs, "runs", 3, "runs of each workload on each system (the table shows medians)")
	flag.DurationVar(&o.warmup, "warmup", 0, "override every workload's warm-up")
	flag.DurationVar(&o.duration, "duration", 0, "override every workload's measured duration")
	flag.DurationVar(&o.drain, "drain", 30*time.Second, "how long to wait for the last acks and deliveries of a run")
	flag.StringVar(&o.dir, "dir", "workloads", "folder of workload files")
	flag.StringVar(&o.out, "out", "results", "folder for the results (JSON, Markdown, PNG charts)")
	flag.StringVar(&o.label, "label", "run", "name of the result files: LABEL-TIMESTAMP.json, .md and -WORKLOAD-SIZE-KIND.png")
	flag.StringVar(&o.ferryBin, "ferry-bin", "", "ferry binary to run as `ferry serve` (default: built from the enclosing Ferry module)")
	flag.BoolVar(&o.inProcess, "ferry-in-process", false, "run Ferry inside this process instead of as a child (no broker CPU figure)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write this process's CPU profile (the clients' side) to this file")
	flag.BoolVar(&o.install, "install", true, "install missing peers (nats-server, redis-server, rabbitmq-server) from Debian with apt-get (as root)")
	flag.StringVar(&o.report, "report", "", "run nothing: write the Markdown and the charts again from this JSON results file, next to it")
	flag.Parse()

	if o.report != "" {
		if err := rewriteReport(o.report); err != nil {
			fmt.Fprintln(os.Stderr, "ferrybench:", err)
			os.Exit(1)
		}
		return
	}

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "ferrybench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "ferrybench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	specs, err := selectSpecs(o)
	if err != nil {
		return err
	}
	names := splitList(o.systems)
	for _, n := range names {
		if !systems.Known(n) {
			return fmt.Errorf("unknown system %q (known: %s)", n, strings.Join(systems.Names(), ", "))
		}
	}
	if o.runs < 1 {
		return errors.New("-runs must be at least 1")
	}
	if o.install {
		var programs []string
		for _, n := range names {
			programs = append(programs, systems.Programs(n)...)
		}
		if err := peers.Install(programs...); err != nil {
			return err
		}
	}
	env, cleanup, err := ferryEnv(ctx, o, names)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}

	rep := newReport(o)
	// What a system cannot run (systems.Supports) is skipped, and listed
	// in the report, rather than started and failed.
	total, done := 0, 0
	for _, spec := range specs {
		for _, name := range names {
			if err := systems.Supports(name, spec); err != nil {
				rep.Skipped = append(rep.Skipped, report.Skipped{System: name, Spec: spec.Name, Reason: unsupportedReason(err)})
				fmt.Fprintf(os.Stderr, "skipping %s on %s: %v\n", spec.Name, name, err)
				continue
			}
			total += o.runs
		}
	}
	if total == 0 {
		return errors.New("nothing to run: the chosen systems cannot run the chosen workloads")
	}
	progress := newProgress()
	for _, spec := range specs {
		for _, name := range names {
			if systems.Supports(name, spec) != nil {
				continue
			}
			for r := 1; r <= o.runs; r++ {
				if ctx.Err() != nil {
					return writeReport(rep, o)
				}
				done++
				prefix := fmt.Sprintf("[%d/%d] ", done, total)
				res := runOne(ctx, env, name, spec, r, o, func(line string) { progress.update(prefix + line) })
				progress.done(prefix + summary(res))
				rep.Results = append(rep.Results, res)
			}
		}
	}
	return writeReport(rep, o)
}

// runOne starts a fresh broker, runs spec once, and stops the broker.
func runOne(ctx context.Context, env systems.Env, name string, spec workload.Spec, r int, o options, progress func(string)) runner.Result {
	in, err := systems.Start(ctx, name, env)
	if err != nil {
		return runner.Result{System: name, Workload: spec.Workload, Spec: spec.Name, Pattern: string(spec.Pattern),
			Size: spec.Size, Run: r, Error: "start: " + strings.ReplaceAll(err.Error(), "\n", " "), Started: time.Now().UTC()}
	}
	defer in.Stop()
	return runner.Run(ctx, in.Driver, spec, runner.Options{
		System: name, Run: r, Drain: o.drain, BrokerCPU: in.CPU, Progress: progress,
	})
}

// unsupportedReason is the why of a systems.Supports error, without the
// sentinel's own words.
func unsupportedReason(err error) string {
	return strings.TrimPrefix(err.Error(), driver.ErrUnsupported.Error()+": ")
}

func selectSpecs(o options) ([]workload.Spec, error) {
	files, err := workload.LoadDir(o.dir)
	if err != nil {
		return nil, err
	}
	want := splitList(o.workloads)
	all := slices.Contains(want, "all")
	var sizes []int
	for _, s := range splitList(o.sizes) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("-sizes: %q is not a number of bytes", s)
		}
		sizes = append(sizes, n)
	}
	var specs []workload.Spec
	found := map[string]bool{}
	for _, f := range files {
		if !all && !slices.Contains(want, f.Name) {
			continue
		}
		found[f.Name] = true
		for _, s := range f.Specs() {
			if len(sizes) > 0 && !slices.Contains(sizes, s.Size) {
				continue
			}
			if o.warmup > 0 {
				s.Warmup = o.warmup
			}
			if o.duration > 0 {
				s.Duration, s.Messages = o.duration, 0
			}
			specs = append(specs, s)
		}
	}
	for _, w := range want {
		if w != "all" && !found[w] {
			return nil, fmt.Errorf("no workload %q in %s", w, o.dir)
		}
	}
	if len(specs) == 0 {
		return nil, errors.New("nothing to run: no workload matches -workloads and -sizes")
	}
	return specs, nil
}

// ferryEnv builds the ferry binary once when a Ferry system runs as a
// child process.
func ferryEnv(ctx context.Context, o options, names []string) (systems.Env, func(), error) {
	nop := func() {}
	if o.inProcess || !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "ferry") }) {
		return systems.Env{}, nop, nil
	}
	if o.ferryBin != "" {
		return systems.Env{FerryBin: o.ferryBin}, nop, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return systems.Env{}, nop, err
	}
	root, err := peers.FerryRoot(wd)
	if err != nil {
		return systems.Env{}, nop, err
	}
	dir, err := os.MkdirTemp("", "ferrybench-bin-")
	if err != nil {
		return systems.Env{}, nop, err
	}
	fmt.Fprintf(os.Stderr, "building ferry from %s\n", root)
	bin, err := peers.BuildFerry(ctx, root, dir)
	if err != nil {
		os.RemoveAll(dir)
		return systems.Env{}, nop, err
	}
	return systems.Env{FerryBin: bin}, func() { os.RemoveAll(dir) }, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// progress rewrites one status line on a terminal and prints a line
// every 5 seconds otherwise.
type progress struct {
	tty  bool
	last time.Time
}

func newProgress() *progress {
	st, err := os.Stderr.Stat()
	return &progress{tty: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

func (p *progress) update(line string) {
	if p.tty {
		fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
	} else if time.Since(p.last) >= 5*time.Second {
		fmt.Fprintln(os.Stderr, line)
		p.last = time.Now()
	}
}

func (p *progress) done(line string) {
	if p.tty {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	fmt.Fprintln(os.Stderr, line)
}
