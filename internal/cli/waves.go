package cli

import (
	"context"
	"strings"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/cdn"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/release"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/settings"
)

// parseTargets reads --targets entries RESOURCE_GROUP/APP[/SLOT].
func parseTargets(entries []string, defaultSlot string) ([]appservice.Target, error) {
	var ts []appservice.Target
	for _, e := range entries {
		parts := strings.Split(strings.TrimSpace(e), "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, problem.Usagef("write each target as RESOURCE_GROUP/APP[/SLOT], e.g. rg-weu/shop-weu/staging",
				"target %q has no app", e)
		}
		t := appservice.Target{ResourceGroup: parts[0], App: parts[1], Slot: defaultSlot}
		if len(parts) == 3 && parts[2] != "" {
			t.Slot = parts[2]
		}
		if t.IsProduction() {
			return nil, problem.Usagef("name each target's deployment slot, e.g. "+parts[0]+"/"+parts[1]+"/staging",
				"target %q has no deployment slot", e)
		}
		ts = append(ts, t)
	}
	return ts, release.ValidateTargets(ts)
}

// runRollout releases to every --targets entry in order (release.RunWaves):
// one release setup for the first target, cloned per region with its own
// target and gates.
func runRollout(ctx context.Context, env *Env, vals *settings.Values, projectDir string, rep progress.Reporter) (*release.Rollout, error) {
	targets, err := parseTargets(vals.List("targets"), vals.String("slot"))
	if err != nil {
		return nil, err
	}
	first := targets[0]
	for name, v := range map[string]string{"resource-group": first.ResourceGroup, "app": first.App, "slot": first.Slot} {
		if err := vals.Set(name, v, settings.FromFlag); err != nil {
			return nil, err
		}
	}
	s, err := setupRelease(ctx, env, vals, projectDir, rep)
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	opts := []release.Options{s.opt}
	for _, t := range targets[1:] {
		o := s.opt
		o.Target = t
		if o.Progressive, err = progressiveOptions(ctx, vals, s.acc, s.deps.App, s.deps.HTTP, t, rep); err != nil {
			return nil, err
		}
		if vals.Bool("origin-rotation") {
			if o.Rotation, err = originRotation(ctx, s, vals, t); err != nil {
				return nil, err
			}
		}
		opts = append(opts, o)
	}
	ro, err := release.RunWaves(ctx, s.deps, opts, vals.String("on-wave-failure"), rep)
	for _, r := range ro.Regions {
		r.StaticURL = s.opt.StaticURL
	}
	return ro, err
}

// rolloutReport folds a rollout into one release report for the CI front
// ends: every region's steps, prefixed with its app.
func rolloutReport(ro *release.Rollout) *report.Release {
	out := &report.Release{ReleaseID: ro.ReleaseID, Started: ro.Started, Duration: ro.Duration, Outcome: ro.Outcome, Error: ro.Error, Live: len(ro.Regions) > 0}
	var apps []string
	for _, r := range ro.Regions {
		apps = append(apps, r.App)
		if out.URL == "" {
			out.URL, out.SlotURL, out.StaticURL = r.URL, r.SlotURL, r.StaticURL
		}
		for _, st := range r.Steps {
			st.Name = r.App + ": " + st.Name
			out.Steps = append(out.Steps, st)
		}
		if r.FailedStep != "" {
			out.FailedStep = r.App + ": " + r.FailedStep
		}
		out.Live = out.Live && r.Live
		out.StaticUploaded += r.StaticUploaded
		out.StaticChanged = union(out.StaticChanged, r.StaticChanged)
		out.PurgedPaths = append(out.PurgedPaths, r.PurgedPaths...)
		out.Gates = append(out.Gates, r.Gates...)
		out.Checks = r.Checks
	}
	out.App = strings.Join(apps, ",")
	return out
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range [][]string{a, b} {
		for _, s := range l {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// originRotation finds the target's origin in the Front Door profile (its
// production host name) before anything changes, and returns the function
// that takes it out of rotation and puts it back.
func originRotation(ctx context.Context, s *releaseSetup, vals *settings.Values, t appservice.Target) (func(context.Context, bool) error, error) {
	if s.deps.CDN == nil || s.opt.Purge.Kind != cdn.FrontDoor {
		return nil, problem.Usagef("set cdn-profile and cdn-endpoint to a Front Door profile, or leave out --origin-rotation",
			"--origin-rotation needs a Front Door profile")
	}
	site, err := s.deps.App.GetSite(ctx, appservice.Target{ResourceGroup: t.ResourceGroup, App: t.App})
	if err != nil {
		return nil, err
	}
	rg, profile := s.opt.Purge.ResourceGroup, s.opt.Purge.Profile
	o, err := s.deps.CDN.FindOrigin(ctx, rg, profile, site.DefaultHostName)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, enabled bool) error {
		return s.deps.CDN.SetOriginEnabled(ctx, rg, profile, o, enabled)
	}, nil
}
