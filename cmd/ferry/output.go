package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// Output formats of the client commands: text for people, json for
// scripts. Commands that print one thing print one indented JSON value;
// commands that print messages print one JSON object a line.
const (
	outputText = "text"
	outputJSON = "json"
)

// addOutputFlag adds -o/--output to cmd.
func addOutputFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVarP(format, "output", "o", outputText, "output format: text or json")
	cmd.RegisterFlagCompletionFunc("output", fixedCompletion(outputText, outputJSON))
}

// checkOutput rejects an unknown --output value as a usage error.
func checkOutput(cmd *cobra.Command, format string) error {
	if format != outputText && format != outputJSON {
		return usageError(cmd, fmt.Errorf("bad --output %q: want text or json", format))
	}
	return nil
}

// writeJSON prints v as one indented JSON value.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable starts a table for people; Flush it at the end.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// messageView is a message as `ferry consume`, `tail` and `read` print it
// with --output json. Key, value and header values that are valid UTF-8
// are printed as text, others in base64 in the *_base64 field instead.
type messageView struct {
	Topic         string       `json:"topic"`
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	Timestamp     string       `json:"timestamp,omitempty"`
	Key           *string      `json:"key,omitempty"`
	KeyBase64     string       `json:"key_base64,omitempty"`
	Value         *string      `json:"value,omitempty"`
	ValueBase64   string       `json:"value_base64,omitempty"`
	Headers       []headerView `json:"headers,omitempty"`
	ID            string       `json:"id,omitempty"`
	DeliverAt     string       `json:"deliver_at,omitempty"`
	DeliveryCount int32        `json:"delivery_count,omitempty"`
}

type headerView struct {
	Name        string  `json:"name"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 string  `json:"value_base64,omitempty"`
}

// textOrBase64 splits b into the text or base64 form messageView uses.
// Empty bytes are the empty text.
func textOrBase64(b []byte) (*string, string) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

func newMessageView(m *ferryv1.Message, deliveries int32) messageView {
	v := messageView{
		Topic:         m.GetTopic(),
		Partition:     m.GetPartition(),
		Offset:        m.GetOffset(),
		Timestamp:     formatTime(m.GetTimestamp()),
		ID:            m.GetId(),
		DeliverAt:     formatTime(m.GetDeliverAt()),
		DeliveryCount: deliveries,
	}
	if len(m.GetKey()) > 0 {
		v.Key, v.KeyBase64 = textOrBase64(m.GetKey())
	}
	v.Value, v.ValueBase64 = textOrBase64(m.GetValue())
	for _, h := range m.GetHeaders() {
		hv := headerView{Name: h.GetKey()}
		hv.Value, hv.ValueBase64 = textOrBase64(h.GetValue())
		v.Headers = append(v.Headers, hv)
	}
	return v
}

// messagePrinter prints messages: the value alone on a line for people and
// pipes, or a JSON object a line.
type messagePrinter struct {
	w      io.Writer
	format string
	enc    *json.Encoder
}

func newMessagePrinter(w io.Writer, format string) *messagePrinter {
	p := &messagePrinter{w: w, format: format}
	if format == outputJSON {
		p.enc = json.NewEncoder(w)
		p.enc.SetEscapeHTML(false)
	}
	return p
}

// print writes one message; deliveries is the delivery count of a queue
// delivery, 0 otherwise.
func (p *messagePrinter) print(m *ferryv1.Message, deliveries int32) error {
	if p.enc != nil {
		return p.enc.Encode(newMessageView(m, deliveries))
	}
	b := make([]byte, 0, len(m.GetValue())+1)
	b = append(append(b, m.GetValue()...), '\n')
	_, err := p.w.Write(b)
	return err
}

// formatTime prints a protobuf time in RFC 3339 (UTC, milliseconds); an
// unset one as "".
func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// formatDuration prints a protobuf duration as Go does ("1h0m0s"); an unset
// one as "".
func formatDuration(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	return d.AsDuration().String()
}

// humanDuration prints d for a table: days when it is whole days.
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

// humanBytes prints a size for a table: "512 B", "1.5 MiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	s := fmt.Sprintf("%.1f", float64(n)/float64(div))
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return fmt.Sprintf("%s %ciB", s, "KMGTPE"[exp])
}

// isTerminal reports whether w is a terminal, where progress lines help
// rather than clutter a log.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
