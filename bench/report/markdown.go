package report

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ferrymq/ferry/bench/workload"
)

// Markdown writes the report: the targets, Ferry's ratios to the best
// peer, the table of medians (over the runs that passed) and the charts.
func Markdown(r *Report, charts []Chart) string {
	var b strings.Builder
	rows := Rows(r.Results)
	fmt.Fprintf(&b, "# ferrybench: %s, %s\n\n", r.Label, r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	m := r.Machine
	fmt.Fprintf(&b, "Machine: %d CPUs, %s, Linux %s, %s", m.CPUs, m.OS, m.Kernel, m.Go)
	for _, k := range slices.Sorted(maps.Keys(m.Versions)) {
		fmt.Fprintf(&b, "; %s", m.Versions[k])
	}
	fmt.Fprintf(&b, ".\n\nCommand: `%s` (in bench/). Medians of %d run(s) per row, over the runs that passed "+
		"(failed runs are in the JSON with their error, and counted in the runs column); every run on a fresh broker "+
		"on 127.0.0.1, brokers and clients sharing the machine.\n\n", r.Command, r.Runs)

	writeTargets(&b, rows)
	writeRatios(&b, rows)
	writeTable(&b, rows)
	writeSkipped(&b, r.Skipped)
	writeCharts(&b, charts)
	return b.String()
}

func writeTargets(b *strings.Builder, rows []*Row) {
	fmt.Fprintf(b, "## Targets\n\nIssue 5's: Ferry at its default (`ferry`: fsync before ack); issue 6's: Ferry's Kafka door "+
		"driven by franz-go (`ferry-kafka`: acks=-1, fsync before ack). At %s, medians.\n\n", workload.SizeName(TargetSize))
	b.WriteString("| target | Ferry | peer | Ferry ÷ peer | result |\n| --- | ---: | ---: | ---: | --- |\n")
	for _, o := range Evaluate(rows, Targets) {
		ferry, peer, ratio := "–", "–", "–"
		if o.Ferry > 0 {
			ferry = num(o.Ferry)
			if o.Limit > 0 {
				ferry += " ms"
			}
		}
		if o.PeerValue > 0 {
			peer = fmt.Sprintf("%s (`%s`)", num(o.PeerValue), o.PeerSystem)
			ratio = fmt.Sprintf("%.2f×", o.Ratio)
		}
		result := o.Result
		if o.Why != "" {
			result += ": " + o.Why
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", o.Target, ferry, peer, ratio, result)
	}
	b.WriteString("\n")
}

func writeRatios(b *strings.Builder, rows []*Row) {
	fmt.Fprintf(b, "## Ferry against the best peer at %s\n\n", workload.SizeName(TargetSize))
	b.WriteString("For each workload, Ferry at its default (`ferry`) against the peer with the best median of each measure " +
		"(the highest throughput, the lowest latency or CPU). Above 1× Ferry is ahead on throughput; below 1× it is ahead on latency and CPU.\n\n")
	b.WriteString("| workload | measure | Ferry | best peer | peer's | Ferry ÷ peer |\n| --- | --- | ---: | --- | ---: | ---: |\n")
	var seen []string
	for _, rw := range rows {
		if rw.Size != TargetSize || slices.Contains(seen, rw.Workload) {
			continue
		}
		seen = append(seen, rw.Workload)
		ferry := find(rows, rw.Workload, TargetSize, "ferry")
		for _, m := range Headline(rw.Pattern) {
			fv, ferryCell := 0.0, "not run"
			if ferry != nil {
				if fv = ferry.Median(m); fv > 0 {
					ferryCell = num(fv)
				} else {
					ferryCell = "–"
				}
			}
			peer, pv := BestPeer(rows, rw.Workload, TargetSize, m)
			peerName, peerCell, ratio := "–", "–", "–"
			if peer != nil {
				peerName, peerCell = "`"+peer.System+"`", num(pv)
				if fv > 0 {
					ratio = fmt.Sprintf("%.2f×", fv/pv)
				}
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", rw.Workload, m.Name, ferryCell, peerName, peerCell, ratio)
		}
	}
	if len(seen) == 0 {
		fmt.Fprintf(b, "| no workload ran at %s | | | | | |\n", workload.SizeName(TargetSize))
	}
	b.WriteString("\n")
}

func writeTable(b *strings.Builder, rows []*Row) {
	b.WriteString("## Every row\n\n")
	b.WriteString("| workload | size | system | durability at ack | publish msgs/s | delivered msgs/s | replay msgs/s | p50 ms | p99 ms | p99.9 ms | max ms | broker CPU µs/msg | runs ok | check |\n")
	b.WriteString("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n")
	for _, rw := range rows {
		dur := rw.Durability
		if dur == "" {
			dur = "unknown: no run reached the driver"
		}
		cpu := dash(rw.Median(CPU), num)
		if rw.Stream() {
			cpu = dash(rw.Median(CPUAppend), num) + " append, " + dash(rw.Median(CPUReplay), num) + " replay"
		}
		ms := func(m Measure) string {
			return dash(rw.Median(m), func(v float64) string { return fmt.Sprintf("%.2f", v) })
		}
		rate := func(m Measure) string {
			return dash(rw.Median(m), func(v float64) string { return fmt.Sprintf("%.0f", v) })
		}
		delivered := rate(Delivered)
		if rw.Stream() {
			delivered = "–"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d of %d | %s |\n",
			rw.Workload, workload.SizeName(rw.Size), rw.System, cell(dur),
			rate(Published), delivered, rate(Replayed),
			ms(P50), ms(P99), ms(P999), ms(Max), cpu,
			len(rw.OK), len(rw.Runs), check(rw))
	}
	b.WriteString("\nLatency: end to end, from each message's scheduled send time (its send time at rate 0) to its consumer; " +
		"for stream-append-replay rows, from send to the append's acknowledgement. At rate 0 (as fast as possible) the latency " +
		"includes the queueing of a saturated system. Delivered: every subscription's copy counted. Broker CPU: the broker " +
		"process's CPU time in the window divided by the messages delivered in it, per subscription (stream rows: appended, and replayed; Ferry in process: not measured). " +
		"Runs ok: runs without an error whose count check passed (every acknowledged message received by every subscription; " +
		"duplicates, that is redeliveries, are allowed and counted); the medians are over those. –: not measured, or no run passed.\n\n")
}

// writeSkipped lists what was not run because the system cannot run the
// workload, one line per system and reason.
func writeSkipped(b *strings.Builder, skipped []Skipped) {
	if len(skipped) == 0 {
		return
	}
	b.WriteString("Not run, the system cannot run the workload:\n\n")
	type key struct{ system, reason string }
	var order []key
	specs := map[key][]string{}
	for _, s := range skipped {
		k := key{s.System, s.Reason}
		if _, ok := specs[k]; !ok {
			order = append(order, k)
		}
		if !slices.Contains(specs[k], s.Spec) {
			specs[k] = append(specs[k], s.Spec)
		}
	}
	for _, k := range order {
		fmt.Fprintf(b, "- `%s`, %s: %s\n", k.system, strings.Join(specs[k], ", "), cell(k.reason))
	}
	b.WriteString("\n")
}

func writeCharts(b *strings.Builder, charts []Chart) {
	if len(charts) == 0 {
		return
	}
	b.WriteString("## Charts\n\nMedians of the runs that passed.\n\n")
	for _, c := range charts {
		fmt.Fprintf(b, "![%s](%s)\n\n", c.Title, c.File)
	}
}

// check says what went wrong in a row's runs: missing and duplicated
// messages, and each failed run's error.
func check(rw *Row) string {
	var missing, dups int64
	var errs []string
	for _, r := range rw.Runs {
		missing += r.Counts.Missing
		dups += r.Counts.Duplicates
		if !passed(r) {
			e := r.Error
			if e == "" {
				e = "count check failed"
			}
			errs = append(errs, fmt.Sprintf("run %d: %s", r.Run, e))
		}
	}
	var parts []string
	if missing > 0 {
		parts = append(parts, fmt.Sprintf("%d missing", missing))
	}
	if dups > 0 {
		parts = append(parts, fmt.Sprintf("%d duplicates", dups))
	}
	parts = append(parts, errs...)
	if len(parts) == 0 {
		return "ok"
	}
	return cell(strings.Join(parts, "; "))
}

// cell makes text safe in a table cell.
func cell(s string) string {
	return strings.NewReplacer("|", "/", "\n", " ", "\r", " ").Replace(s)
}

func dash(v float64, f func(float64) string) string {
	if v == 0 {
		return "–"
	}
	return f(v)
}

// num writes a median with as many digits as it needs: rates whole,
// milliseconds and microseconds to two or three significant places.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// SI writes a rate as 1.23M, 456k or 789.
func SI(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
