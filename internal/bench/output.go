package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// Doc markers: UpdateDoc replaces what lies between them.
const (
	DocBegin = "<!-- bench:begin -->"
	DocEnd   = "<!-- bench:end -->"
)

// row is one result as table cells.
func (r Result) row() []string {
	if r.Skipped != "" {
		why := r.Skipped
		if len(why) > 100 {
			why = why[:100] + "…"
		}
		return []string{r.Scenario, "skipped: " + why, "", "", "", "", "", "", ""}
	}
	lat := func(v float64) string {
		if r.P50Ms == 0 && r.P99Ms == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f ms", v)
	}
	ratio := "–"
	if r.Ratio != nil {
		ratio = fmt.Sprintf("%.2f", *r.Ratio)
	}
	budget, pass := r.Budget, ""
	if budget == "" {
		budget = "–"
	}
	if r.Pass != nil {
		pass = "pass"
		if !*r.Pass {
			pass = "FAIL"
			if r.Shortfall != "" {
				pass += " (" + r.Shortfall + ")"
			}
		}
	}
	return []string{r.Scenario, num(r.Throughput) + " " + r.Unit, lat(r.P50Ms), lat(r.P90Ms), lat(r.P99Ms),
		fmt.Sprint(r.Errors), ratio, budget, pass}
}

var header = []string{"scenario", "result", "p50", "p90", "p99", "errors", "ratio to baseline", "budget", "pass/fail"}

// WriteTable writes the human table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, res := range r.Results {
		fmt.Fprintln(tw, strings.Join(res.row(), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, res := range r.Results {
		if res.FirstError != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", res.Scenario, res.FirstError)
		}
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteMarkdown writes the machine, the command line, the table and the
// notes as Markdown.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b bytes.Buffer
	m := r.Machine
	fmt.Fprintf(&b, "Run %s on %s/%s, %d CPUs (GOMAXPROCS %d)", r.Started.Format("2006-01-02 15:04 MST"), m.GOOS, m.GOARCH, m.NumCPU, m.GOMAXPROCS)
	if m.CPU != "" {
		fmt.Fprintf(&b, ", %s", m.CPU)
	}
	fmt.Fprintf(&b, ", %s", m.GoVersion)
	if m.Commit != "" {
		fmt.Fprintf(&b, ", commit `%s`", m.Commit)
	}
	fmt.Fprintf(&b, "; target: %s.\n\n", r.Target)
	if r.Command != "" {
		fmt.Fprintf(&b, "```sh\n%s\n```\n\n", r.Command)
	}
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	for _, res := range r.Results {
		cells := res.row()
		for i, c := range cells {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	b.WriteString("\n")
	for _, res := range r.Results {
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "- `%s`: %s\n", res.Scenario, n)
		}
		if res.FirstError != "" {
			fmt.Fprintf(&b, "- `%s`: first error: %s\n", res.Scenario, res.FirstError)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// ErrNoMarkers means a document lacks the bench:begin/bench:end pair.
var ErrNoMarkers = errors.New("bench: document has no " + DocBegin + " … " + DocEnd + " region")

// ReplaceRegion returns doc with the text between the markers replaced by
// generated, everything else kept byte for byte.
func ReplaceRegion(doc, generated []byte) ([]byte, error) {
	begin := bytes.Index(doc, []byte(DocBegin))
	if begin < 0 {
		return nil, ErrNoMarkers
	}
	start := begin + len(DocBegin)
	end := bytes.Index(doc[start:], []byte(DocEnd))
	if end < 0 {
		return nil, ErrNoMarkers
	}
	end += start
	var out bytes.Buffer
	out.Write(doc[:start])
	out.WriteString("\n")
	out.Write(bytes.TrimSpace(generated))
	out.WriteString("\n")
	out.Write(doc[end:])
	return out.Bytes(), nil
}

// UpdateDoc rewrites the marked region of the Markdown file at path with
// this report.
func (r *Report) UpdateDoc(path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var gen bytes.Buffer
	if err := r.WriteMarkdown(&gen); err != nil {
		return err
	}
	out, err := ReplaceRegion(doc, gen.Bytes())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}
