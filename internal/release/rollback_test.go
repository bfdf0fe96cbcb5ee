package release

import (
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/ledger"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

func TestPickRollback(t *testing.T) {
	const (
		a   = "aaaaaaaaaaaaaaaa"
		b   = "bbbbbbbbbbbbbbbb"
		c   = "cccccccccccccccc"
		run = "https://github.com/octo/shop/actions/runs/7"
	)
	hist := func(ids ...string) []staticsync.ProductionEntry {
		var out []staticsync.ProductionEntry
		for _, id := range ids {
			out = append(out, staticsync.ProductionEntry{ReleaseID: id})
		}
		return out
	}
	rolledBack := func(to, from, runURL string) ledger.Entry {
		return ledger.Entry{ReleaseID: to, From: from, Kind: ledger.KindRollback, Outcome: report.Succeeded, Live: true, RunURL: runURL}
	}
	for _, tc := range []struct {
		name    string
		hist    []staticsync.ProductionEntry
		ledger  []ledger.Entry // newest first
		want    string
		runURL  string
		to      string
		from    string
		errHas  string
		errCode int
	}{
		{name: "previous release", hist: hist(a, b, c), to: b, from: c},
		{name: "a release re-run twice in a row counts once", hist: hist(a, b, b, c), to: b, from: c},
		{name: "second rollback goes to N-2", hist: hist(a, b, c, b), ledger: []ledger.Entry{rolledBack(b, c, "")}, to: a, from: b},
		{name: "a failed rollback undoes nothing", hist: hist(a, b, c),
			ledger: []ledger.Entry{{ReleaseID: b, From: c, Kind: ledger.KindRollback, Outcome: report.Failed}}, to: b, from: c},
		{name: "the same CI run again goes nowhere further", hist: hist(a, b, c, b), ledger: []ledger.Entry{rolledBack(b, c, run)}, runURL: run, to: b, from: c},
		{name: "another CI run goes further", hist: hist(a, b, c, b), ledger: []ledger.Entry{rolledBack(b, c, run)}, runURL: run + "0", to: a, from: b},
		{name: "a shell's holder is not a run", hist: hist(a, b, c, b), ledger: []ledger.Entry{rolledBack(b, c, "me@host")}, runURL: "me@host", to: a, from: b},
		{name: "named", hist: hist(a, b, c), want: a, to: a, from: c},
		{name: "named, never in production", hist: hist(a, b), want: c, errHas: "never reached production", errCode: problem.ExitUsage},
		{name: "no history", errHas: "nothing to roll back to", errCode: problem.ExitUsage},
		{name: "only one release", hist: hist(a), errHas: "no earlier release", errCode: problem.ExitUsage},
		{name: "everything earlier was undone", hist: hist(a, b, a), ledger: []ledger.Entry{rolledBack(a, b, "")}, errHas: "no earlier release", errCode: problem.ExitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickRollback(tc.hist, tc.ledger, tc.want, tc.runURL, "static")
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) || problem.ExitCode(err) != tc.errCode {
					t.Fatalf("err = %v (exit %d), want %q, exit %d", err, problem.ExitCode(err), tc.errHas, tc.errCode)
				}
				return
			}
			if err != nil || got.To != tc.to || got.From != tc.from {
				t.Fatalf("got %+v, %v; want to %s from %s", got, err, tc.to, tc.from)
			}
		})
	}
}
