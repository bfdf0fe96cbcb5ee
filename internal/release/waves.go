package release

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// Multi-region waves: one build and one static sync (one artifact, one
// release id), then region by region in the given order the release's
// deploy, warm-up, canary or swap and watch (the bake time). A failing
// region stops the rollout: later regions are never touched, the failed
// region is swapped back, earlier regions are kept or swapped back
// (OnWaveFailure), and the CDN is purged only after the last region, so a
// stopped rollout purges nothing.

// On-wave-failure policies.
const (
	WaveKeep     = "keep"
	WaveRollback = "rollback"
)

// Rollout is the result of a release across regions.
type Rollout struct {
	ReleaseID string        `json:"release_id"`
	Outcome   string        `json:"outcome"`
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"duration_ns"`
	Error     string        `json:"error,omitempty"`
	Failed    string        `json:"failed_region,omitempty"`
	Untouched []string      `json:"untouched_regions"`
	// RolledBack are the regions swapped back after the failure.
	RolledBack []string          `json:"rolled_back_regions"`
	Regions    []*report.Release `json:"regions"`
}

// region names a target in messages: its app (regions are apps).
func region(t appservice.Target) string { return t.ResourceGroup + "/" + t.App }

// ValidateTargets refuses a rollout that names a target twice or without
// an app, before anything changes.
func ValidateTargets(ts []appservice.Target) error {
	seen := map[string]bool{}
	for i, t := range ts {
		if t.App == "" || t.ResourceGroup == "" {
			return problem.Usagef("write each target as RESOURCE_GROUP/APP[/SLOT], e.g. rg-weu/shop-weu/staging",
				"target %d has no resource group or app", i+1)
		}
		if err := t.Validate(); err != nil {
			return err
		}
		k := strings.ToLower(region(t))
		if seen[k] {
			return problem.Usagef("list each app once in targets", "target %s is listed twice", region(t))
		}
		seen[k] = true
	}
	return nil
}

// RunWaves releases to each region's options in order (opts differ only in
// Target and what depends on it: gates, annotations). It holds one release
// lock for the whole rollout.
func RunWaves(ctx context.Context, deps Deps, opts []Options, onFailure string, rep progress.Reporter) (*Rollout, error) {
	if rep == nil {
		rep = progress.Discard
	}
	ro := &Rollout{Outcome: report.Succeeded, Started: time.Now(), Untouched: []string{}, RolledBack: []string{}, Regions: []*report.Release{}}
	targets := make([]appservice.Target, len(opts))
	for i, o := range opts {
		targets[i] = o.Target
	}
	if err := ValidateTargets(targets); err != nil {
		return ro, err
	}
	if !slices.Contains([]string{WaveKeep, WaveRollback}, onFailure) {
		return ro, problem.Usagef("use --on-wave-failure keep or rollback", "unknown on-wave-failure %q", onFailure)
	}
	fail := func(err error) (*Rollout, error) {
		ro.Outcome = report.Failed
		ro.Error = err.Error()
		if p, ok := problem.As(err); ok && p.Fix != "" {
			ro.Error += " (fix: " + p.Fix + ")"
		}
		ro.Duration = time.Since(ro.Started)
		return ro, err
	}
	lock, err := staticsync.AcquireLock(ctx, deps.Static, opts[0].Holder, opts[0].LockWait, rep)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
			rep.Warnf("releasing the release lock: %v (it expires by itself within a minute)", err)
		}
	}()

	artifactDir := opts[0].ArtifactDir
	for i, o := range opts {
		o.Lock = lock
		last := i == len(opts)-1
		if !last {
			o.Deferred = map[string]string{StepStaticFinish: "after the last region", StepPurge: "after the last region", StepPrune: "after the last region"}
		}
		if artifactDir != "" {
			o.ArtifactDir = artifactDir // one build for every region
		}
		rep.Infof("== region %d of %d: %s", i+1, len(opts), region(o.Target))
		out, err := Run(ctx, deps, o, rep)
		if out != nil {
			ro.Regions = append(ro.Regions, out)
			if ro.ReleaseID == "" {
				ro.ReleaseID = out.ReleaseID
			}
		}
		if i == 0 && artifactDir == "" && out != nil && out.ReleaseID != "" {
			artifactDir = o.Build.OutDir
		}
		if err == nil {
			continue
		}
		ro.Failed = region(o.Target)
		for _, later := range opts[i+1:] {
			ro.Untouched = append(ro.Untouched, region(later.Target))
		}
		uctx := context.WithoutCancel(ctx)
		// The failed region: a failure after its swap (and not swapped back
		// by the release itself) leaves it live; swap it back.
		if out != nil && out.Live {
			if berr := deps.App.SwapBack(uctx, appservice.SwapSpec{Target: o.Target, Timeout: o.SwapTimeout}); berr != nil {
				return fail(fmt.Errorf("region %s failed (%w) and its swap back failed: %v", region(o.Target), err, berr))
			}
			out.Live = false
			ro.RolledBack = append(ro.RolledBack, region(o.Target))
		}
		if onFailure == WaveRollback {
			for j := i - 1; j >= 0; j-- {
				t := opts[j].Target
				rep.Infof("on-wave-failure rollback: swapping %s back", region(t))
				if berr := deps.App.SwapBack(uctx, appservice.SwapSpec{Target: t, Timeout: opts[j].SwapTimeout}); berr != nil {
					return fail(fmt.Errorf("region %s failed (%w); swapping %s back failed: %v", region(o.Target), err, region(t), berr))
				}
				ro.Regions[j].Live = false
				ro.RolledBack = append(ro.RolledBack, region(t))
			}
		}
		kept := "earlier regions keep the new release"
		if onFailure == WaveRollback || i == 0 {
			kept = "every region serves the previous release"
		}
		return fail(problem.Wrap(err, "fix the release and run the rollout again; the CDN was not purged",
			"region %s failed: %s; later regions untouched", region(o.Target), kept))
	}
	ro.Duration = time.Since(ro.Started)
	return ro, nil
}
