package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	storagelog "github.com/ferrymq/ferry/storage/log"
	"github.com/ferrymq/ferry/storage/vfs"
)

func newLogCmd() *cobra.Command {
	group := commandGroup(&cobra.Command{
		Use:   "log",
		Short: "Examine a partition log on disk",
		Long: `Examine a partition log on disk: the folder of segment files that holds one
partition of a topic. These commands only read; they never change a file.`,
	})
	group.AddCommand(newLogInspectCmd())
	return group
}

const logInspectLong = `Inspect reads a partition log's folder and reports its segments, the record
batches in them and everything that is wrong with them. It never writes,
truncates or removes anything, so it is safe on a damaged log. Run it on a
stopped broker: on a live one the end of the active segment may be mid-append.

Every batch is read and checked: its header, its CRC-32C, and that offsets are
dense (each batch starts where the one before ended, each segment where the
one before ended). The .index and .timeindex files are checked against the
batches found. With --verify every record of every uncompressed batch is also
decoded.

Each finding has a severity:
  damage      data is lost or unreadable, or a file the broker trusts is
              wrong; the broker does not fix it: act on the message
  repairable  the broker repairs it when it next opens the log, without
              losing a whole batch: a torn tail of the active segment (an
              append a crash interrupted), a missing or malformed index of a
              sealed segment, leftover files
  notice      worth knowing, harmless

The summary ends in OK when nothing is damaged or repairable, else DAMAGED.
Without --verify the command exits 0 whatever it finds; with --verify it exits
1 when the log is DAMAGED, which makes it a check for scripts.`

const logInspectExample = `  # List the segments of a partition folder (files 00000000000000000000.log, ...)
  ferry log inspect path/to/partition

  # Check everything; exit 1 on damage
  ferry log inspect --verify path/to/partition

  # Every batch, as JSON, for a script
  ferry log inspect --batches --json path/to/partition | jq '.findings'`

func newLogInspectCmd() *cobra.Command {
	var (
		opts   storagelog.InspectOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "inspect DIR",
		Short:   "Check a partition log's files and report its segments, batches and damage",
		Long:    logInspectLong,
		Example: logInspectExample,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := storagelog.Inspect(cmd.Context(), vfs.Default, args[0], opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(rep)
			} else {
				err = printInspectReport(out, rep)
			}
			if err != nil {
				return err
			}
			if n := rep.Problems(); opts.Verify && n > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("damage found: %s", plural(n, "problem"))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.Verify, "verify", false, "also decode every record; exit 1 when anything is damaged or needs repair")
	f.BoolVar(&opts.Batches, "batches", false, "list every batch of every segment")
	f.BoolVar(&asJSON, "json", false, "print the report as a JSON object")
	f.IntVar(&opts.MaxRecordBytes, "max-record-bytes", 0, "with --verify, note records larger than this (0: no limit)")
	return cmd
}

// printInspectReport writes the report for a person: the segments, their
// batches when listed, the findings and a summary line.
func printInspectReport(w io.Writer, rep *storagelog.InspectReport) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "Log %s\n\n", rep.Dir)
	worst := worstBySegment(rep)
	if len(rep.Segments) > 0 {
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEGMENT\tSIZE\tOFFSETS\tBATCHES\tRECORDS\tFIRST TIMESTAMP\tMAX TIMESTAMP\tINDEX\tTIMEINDEX\tSTATUS")
		for _, s := range rep.Segments {
			status := "ok"
			if sev, ok := worst[s.BaseOffset]; ok {
				status = string(sev)
			}
			if s.Active {
				status += ", active"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
				storagelog.SegmentName(s.BaseOffset), s.Size, offsetRange(s.FirstOffset, s.LastOffset), s.Batches, s.Records,
				timestamp(s.FirstTimestamp), timestamp(s.MaxTimestamp), indexState(s.Index), indexState(s.TimeIndex), status)
		}
		tw.Flush()
	}
	for _, s := range rep.Segments {
		if len(s.BatchList) == 0 {
			continue
		}
		fmt.Fprintf(ew, "\nBatches of %s:\n", s.File)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "POSITION\tOFFSETS\tRECORDS\tSIZE\tFIRST TIMESTAMP\tMAX TIMESTAMP\tCOMPRESSION\tPRODUCER\tEPOCH\tLEADER EPOCH\tCRC")
		for _, b := range s.BatchList {
			crc := "ok"
			if !b.CRCOK {
				crc = "BAD"
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n",
				b.Position, offsetRange(b.BaseOffset, b.LastOffset), b.Records, b.Size, timestamp(b.FirstTimestamp),
				timestamp(b.MaxTimestamp), b.Compression, b.ProducerID, b.ProducerEpoch, b.LeaderEpoch, crc)
		}
		tw.Flush()
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintf(ew, "\nFindings:\n")
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEVERITY\tKIND\tFILE\tPOSITION\tOFFSET\tMESSAGE")
		for _, f := range rep.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
				f.Severity, f.Kind, orDash(f.File), orDashInt(f.Position), orDashInt(f.Offset), f.Message)
		}
		tw.Flush()
	}
	fmt.Fprintf(ew, "\n%s\n", summaryLine(rep))
	return ew.err
}

// summaryLine is the report's last line, e.g. "3 segments, 60 batches, 120
// records, 10.2 KiB, offsets 0..119: OK".
func summaryLine(rep *storagelog.InspectReport) string {
	line := fmt.Sprintf("%s, %s, %s, %s, offsets %s", plural(len(rep.Segments), "segment"), plural(rep.Batches, "batch"),
		plural(rep.Records, "record"), byteSize(rep.Bytes), offsetRange(rep.StartOffset, rep.EndOffset-1))
	if rep.Verified {
		line += ", records verified"
	}
	n := rep.Problems()
	if n == 0 {
		return line + ": OK"
	}
	counts := map[storagelog.Severity]int{}
	for _, f := range rep.Findings {
		counts[f.Severity]++
	}
	return fmt.Sprintf("%s: DAMAGED (%s: %d damage, %d repairable when the log is next opened)",
		line, plural(n, "problem"), counts[storagelog.SeverityDamage], counts[storagelog.SeverityRepairable])
}

// worstBySegment maps each segment with findings to its worst severity.
func worstBySegment(rep *storagelog.InspectReport) map[int64]storagelog.Severity {
	rank := map[storagelog.Severity]int{storagelog.SeverityNotice: 1, storagelog.SeverityRepairable: 2, storagelog.SeverityDamage: 3}
	worst := map[int64]storagelog.Severity{}
	for _, f := range rep.Findings {
		if f.Segment < 0 {
			continue
		}
		if rank[f.Severity] > rank[worst[f.Segment]] {
			worst[f.Segment] = f.Severity
		}
	}
	return worst
}

func indexState(ix storagelog.IndexInfo) string {
	if ix.State == storagelog.IndexOK {
		return fmt.Sprintf("ok (%d)", ix.Entries)
	}
	return string(ix.State)
}

func offsetRange(first, last int64) string {
	if first < 0 || last < first {
		return "-"
	}
	return fmt.Sprintf("%d..%d", first, last)
}

// timestamp prints milliseconds since the Unix epoch in UTC.
func timestamp(ms int64) string {
	if ms < 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orDashInt(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func plural[N int | int64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if noun == "batch" {
		return fmt.Sprintf("%d batches", n)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// byteSize prints a size in bytes, with binary units above 1 KiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return plural(n, "byte")
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}

// errWriter remembers the first write error, so a long run of prints checks
// it once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
