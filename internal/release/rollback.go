package release

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/ledger"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// RollbackTarget is what a rollback goes back to, and from.
type RollbackTarget struct {
	To   string `json:"to"`
	From string `json:"from"`
}

// ResolveRollback picks the release a rollback puts back: want when given
// (it must have reached production), else the newest release production
// ran before the current one that no rollback has left since: a second
// rollback goes to N-2, not back to the release the first one undid.
// runURL makes a CI re-run of a rollback that already succeeded resolve to
// the same release again, not one further back.
func ResolveRollback(ctx context.Context, static *staticsync.Client, want, runURL string) (RollbackTarget, error) {
	hist, err := static.History(ctx)
	if err != nil {
		return RollbackTarget{}, err
	}
	entries, err := ledger.New(static.Store()).Entries(ctx)
	if err != nil {
		return RollbackTarget{}, err
	}
	return pickRollback(hist, entries, want, runURL, static.Container())
}

// pickRollback is ResolveRollback's choice, from the production history
// (oldest first) and the ledger (newest first).
func pickRollback(hist []staticsync.ProductionEntry, entries []ledger.Entry, want, runURL, container string) (RollbackTarget, error) {
	if len(hist) == 0 {
		return RollbackTarget{}, problem.Usagef("release first ('djdeploy release'); a rollback puts back a release that production ran before",
			"no release of this app has reached production yet (no history in storage container %s): nothing to roll back to", container)
	}
	current := hist[len(hist)-1].ReleaseID
	if want != "" {
		if !artifact.IsReleaseID(want) {
			return RollbackTarget{}, problem.Usagef("pass a release id as 'djdeploy releases' lists it (16 hex digits)", "%q is not a release id", want)
		}
		for _, h := range hist {
			if h.ReleaseID == want {
				return RollbackTarget{To: want, From: current}, nil
			}
		}
		return RollbackTarget{}, problem.Usagef("pick a release 'djdeploy releases' lists as having reached production",
			"release %s never reached production of this app, so there is nothing to roll back to", want)
	}
	undone := map[string]bool{}
	for _, e := range entries { // newest first
		if e.Kind != ledger.KindRollback || !outcomeLive(e) {
			continue
		}
		if isURL(runURL) && e.RunURL == runURL && e.ReleaseID == current && len(undone) == 0 {
			// This CI run rolled back already (a re-run of the job): go
			// nowhere further.
			return RollbackTarget{To: current, From: e.From}, nil
		}
		undone[e.From] = true
	}
	for i := len(hist) - 2; i >= 0; i-- {
		id := hist[i].ReleaseID
		if id != current && !undone[id] {
			return RollbackTarget{To: id, From: current}, nil
		}
	}
	return RollbackTarget{}, problem.Usagef("name the release with 'djdeploy rollback <id>', or release the fix",
		"production runs %s and no earlier release is left to roll back to (the earlier ones were rolled back from)", current)
}

// Rollback puts release t.To back into production: its kept package is
// deployed to the slot unless the slot already runs it (the deployment
// that release made, checked by content), warmed up, swapped in and
// verified, with the swap-back rules of a release; its un-hashed static
// files come back after the swap and are purged. It needs no checkout.
// opt is a release's options; Build, ArtifactDir and the pre-swap command
// are not used.
func Rollback(ctx context.Context, deps Deps, opt Options, t RollbackTarget, rep progress.Reporter) (*report.Release, error) {
	if rep == nil {
		rep = progress.Discard
	}
	dir, err := os.MkdirTemp("", "djdeploy-rollback-")
	if err != nil {
		return nil, fmt.Errorf("creating a folder for the kept package: %w", err)
	}
	defer os.RemoveAll(dir)
	stop := progress.Long(rep, "downloading release "+t.To+"'s kept package")
	_, found, err := FetchArtifact(ctx, deps.Static, t.To, dir)
	stop()
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, problem.Usagef(fmt.Sprintf("run 'djdeploy release --artifact <build folder of %s>' if you still have it; raise --static-keep to keep more releases' packages", t.To),
			"release %s has no kept package in the state container (pruned, or released by a djdeploy that kept none); nothing was changed", t.To)
	}
	rep.Infof("rolling back production from %s to %s", orNone(t.From), t.To)
	opt.ArtifactDir = dir
	opt.RollbackFrom = t.From
	if opt.RollbackFrom == "" || opt.RollbackFrom == t.To {
		opt.RollbackFrom = t.To
	}
	opt.PreSwapCommand, opt.PreSwapWhere = "", ""
	return Run(ctx, deps, opt, rep)
}

// isURL: only a CI run's URL identifies a run; a shell's user@host is the
// same for every rollback its user starts.
func isURL(s string) bool { return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") }
