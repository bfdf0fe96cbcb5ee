package doctor

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report for people: one row per finding with its
// fix beneath, then what was not checked and a summary line.
func WriteTable(w io.Writer, r *Report, strict bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "doctor: %s\n\n", r.Target)
	if len(r.Findings) == 0 {
		b.WriteString("no findings\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "LEVEL\tCHECK\tWHERE\tFINDING")
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Level, f.ID, f.Where, f.Message)
			fmt.Fprintf(tw, "\t\t\t  fix: %s\n", f.Fix)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.NotChecked) > 0 {
		b.WriteString("\nnot checked:\n")
		for _, n := range r.NotChecked {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	verdict := "passed"
	if r.Failed(strict) {
		verdict = "failed"
	}
	mode := ""
	if strict {
		mode = ", strict: warnings fail too"
	}
	fmt.Fprintf(&b, "\n%d %s, %d %s, %d info: %s%s\n", r.Errors, plural(r.Errors, "error", "errors"), r.Warnings, plural(r.Warnings, "warning", "warnings"), r.Infos, verdict, mode)
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
