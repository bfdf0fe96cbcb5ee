package release

import (
	"context"
	"fmt"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/cdn"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// PlanResult is what a release would do. Making it reads Azure and builds
// locally; it writes nothing remote and takes no lock.
type PlanResult struct {
	ReleaseID   string                    `json:"release_id"`
	Slot        string                    `json:"slot"`
	Production  string                    `json:"production_release,omitempty"`
	SlotRelease string                    `json:"slot_release,omitempty"`
	AlreadyLive bool                      `json:"already_live"`
	Upload      []string                  `json:"upload"`
	UploadBytes int64                     `json:"upload_bytes"`
	Unchanged   int                       `json:"unchanged"`
	Settings    []appservice.ConfigChange `json:"settings"`
	StaticURL   string                    `json:"static_url"`
	PurgePaths  []string                  `json:"purge_paths"`
	Skipped     []string                  `json:"skipped_steps,omitempty"`
	// Canary is the traffic the canary would route, step by step, and
	// Watch how long production would be watched after the swap.
	Canary []string `json:"canary_steps,omitempty"`
	Watch  string   `json:"watch,omitempty"`
}

// Plan works out what Run would do and changes nothing.
func Plan(ctx context.Context, deps Deps, opt Options, rep progress.Reporter) (*PlanResult, error) {
	if rep == nil {
		rep = progress.Discard
	}
	r := &runner{deps: deps, opt: opt, rep: rep}
	if _, err := r.build(ctx); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	m := r.art.Manifest
	p := &PlanResult{ReleaseID: m.ReleaseID, Slot: opt.Target.Slot, StaticURL: opt.StaticURL}
	if pr := opt.Progressive; pr.Strategy == StrategyCanary {
		for _, pct := range pr.Steps {
			p.Canary = append(p.Canary, fmt.Sprintf("%g%% of new visitors for %s", pct, pr.Interval))
		}
	}
	if opt.Progressive.Watch > 0 {
		p.Watch = opt.Progressive.Watch.String()
	}
	for _, s := range Skippable {
		if opt.Skip[s] {
			p.Skipped = append(p.Skipped, s)
		}
	}
	live, err := r.liveReleases(ctx)
	if err != nil {
		return nil, err
	}
	p.Production, p.SlotRelease = live.production, live.slot
	p.AlreadyLive = live.production == m.ReleaseID

	if !opt.Skip[StepStatic] {
		src, err := staticsync.ReadSource(ctx, r.art.StaticDir, r.art.ManifestPath)
		if err != nil {
			return nil, err
		}
		so := opt.Sync
		so.DryRun, so.ReleaseID = true, m.ReleaseID
		res, err := deps.Static.Sync(ctx, src, so, rep)
		if err != nil {
			return nil, err
		}
		p.Upload, p.UploadBytes, p.Unchanged = res.Changed, res.UploadedBytes, res.Skipped
		if deps.CDN != nil && !opt.Skip[StepPurge] {
			// Paths earlier failed releases uploaded and still owe go too.
			owed, err := r.owed(ctx)
			if err != nil {
				return nil, err
			}
			all := union(res.PurgePaths, owed)
			names := make([]string, len(all))
			for i, s := range all {
				names[i] = trimSlash(s)
			}
			p.PurgePaths, _ = cdn.BlobNamesToPaths(names, deps.Static.Container(), opt.CDNOriginPath)
		}
	}
	if !p.AlreadyLive {
		rel, err := appservice.ReadRelease(r.art.ZipPath)
		if err != nil {
			return nil, err
		}
		extra := map[string]string{ReleaseIDSetting: m.ReleaseID}
		if opt.StaticURL != "" {
			name := opt.StaticURLSetting
			if name == "" {
				name = "STATIC_URL"
			}
			extra[name] = opt.StaticURL
		}
		cres, err := deps.App.EnsureConfig(ctx, appservice.ConfigOptions{Target: opt.Target, Release: rel,
			PythonVersion: opt.PythonVersion, StartupCommand: opt.StartupCommand, Workers: opt.Workers,
			ExtraSettings: extra, DryRun: true})
		if err != nil {
			return nil, err
		}
		p.Settings = cres.Changes
	}
	return p, nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	return s
}
