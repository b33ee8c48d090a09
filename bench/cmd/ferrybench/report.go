package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ferrymq/ferry/bench/peers"
	"github.com/ferrymq/ferry/bench/report"
	"github.com/ferrymq/ferry/bench/runner"
	"github.com/ferrymq/ferry/bench/workload"
)

func newReport(o options) *report.Report {
	m := report.Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(),
		Versions: map[string]string{}}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	for _, p := range []string{"nats-server", "redis-server"} {
		if path, err := peers.Find(p); err == nil {
			if out, err := exec.Command(path, "--version").Output(); err == nil {
				m.Versions[p] = strings.TrimSpace(string(out))
			}
		}
	}
	// rabbitmq-server has no --version that does not start a node: ask
	// the package manager.
	if _, err := peers.Find("rabbitmq-server"); err == nil {
		if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "rabbitmq-server").Output(); err == nil {
			m.Versions["rabbitmq-server"] = "rabbitmq-server " + strings.TrimSpace(string(out))
		}
	}
	return &report.Report{Label: o.label, Started: time.Now().UTC(),
		Command: strings.Join(append([]string{"go run ./cmd/ferrybench"}, os.Args[1:]...), " "), Machine: m, Runs: o.runs}
}

// writeReport writes the JSON, the Markdown and the charts into o.out.
func writeReport(r *report.Report, o options) error {
	if len(r.Results) == 0 {
		return nil
	}
	return write(r, o.out, "")
}

// rewriteReport writes the Markdown and the charts again from a JSON
// results file, next to it.
func rewriteReport(path string) error {
	r, err := report.Load(path)
	if err != nil {
		return err
	}
	return write(r, filepath.Dir(path), path)
}

func write(r *report.Report, dir, jsonPath string) error {
	md, f, err := report.Write(r, dir, jsonPath)
	if err != nil {
		return err
	}
	fmt.Print(md)
	fmt.Fprintf(os.Stderr, "wrote %s, %s and %d charts\n", f.JSON, f.Markdown, len(f.Charts))
	return nil
}

func summary(r runner.Result) string {
	status := "ok"
	if !r.OK {
		status = "FAILED " + r.Error
	}
	s := fmt.Sprintf("%s on %s, run %d: publish %s/s", r.Spec, r.System, r.Run, report.SI(r.PublishRate))
	if r.Pattern == string(workload.Stream) {
		s += fmt.Sprintf(", replay %s/s, append ack p99 %.2f ms", report.SI(r.ReplayRate), r.AckLatency.P99)
	} else {
		s += fmt.Sprintf(", deliver %s/s, p50 %.2f ms, p99 %.2f ms", report.SI(r.DeliveryRate), r.Latency.P50, r.Latency.P99)
	}
	return s + ", " + status
}
