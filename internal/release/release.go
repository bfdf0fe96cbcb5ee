// Package release runs a whole zero-downtime release as ordered steps:
// lock, build, static sync, pre-swap command, deploy to the staging slot,
// warm-up, smoke gate, swap with verification and swap-back, CDN purge,
// prune, report.
//
// Production is never left broken: static sync only adds files, the deploy
// goes to a slot, the swap is verified and undone on failure, and prune
// deletes only files that no release that production or a slot runs, and
// none of the last N live releases, references.
//
// A re-run of the same release resumes: the release's state lives in the
// storage container beside its manifests and lock (a CI re-run starts on a
// fresh runner), and what the live site already shows (which release each
// slot runs, read from its DJDEPLOY_RELEASE_ID app setting) decides what is
// still to do.
package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/cdn"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/redact"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/smoke"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// ReleaseIDSetting is the app setting that tells which release a slot runs.
// It is not slot-sticky, so it moves with the content on a swap.
const ReleaseIDSetting = "DJDEPLOY_RELEASE_ID"

// Step names, in order. They are the keys of --skip and of the report.
const (
	StepLock    = "lock"
	StepBuild   = "build"
	StepStatic  = "static-sync"
	StepPreSwap = "pre-swap"
	StepDeploy  = "deploy"
	StepWarmUp  = "warm-up"
	StepSmoke   = "smoke"
	StepSwap    = "swap"
	// StepStaticFinish overwrites, after the swap, the un-hashed static
	// names (site.css, robots.txt) whose content the release changes:
	// before the swap their URLs keep what the live release serves.
	StepStaticFinish = "static-finish"
	StepPurge        = "purge"
	StepPrune        = "prune"
)

// Steps lists every step in order.
var Steps = []string{StepLock, StepBuild, StepStatic, StepPreSwap, StepDeploy, StepWarmUp, StepSmoke, StepSwap, StepStaticFinish, StepPurge, StepPrune}

// steps are this release's steps: Steps, with the canary before the swap
// and the watch after it when they are configured.
func (o Options) steps() []string {
	var out []string
	for _, s := range Steps {
		if s == StepSwap && o.Progressive.Strategy == StrategyCanary {
			out = append(out, StepCanary)
		}
		out = append(out, s)
		if s == StepSwap && o.Progressive.Watch > 0 {
			out = append(out, StepWatch)
		}
	}
	return out
}

// Skippable are the steps --skip accepts.
var Skippable = []string{StepStatic, StepPreSwap, StepSmoke, StepPurge, StepPrune}

// Deps are the clients a release drives, built by the caller from settings.
type Deps struct {
	Static *staticsync.Client
	App    *appservice.Client
	CDN    *cdn.Purger  // nil: no CDN configured; purge is skipped
	HTTP   *http.Client // smoke gate requests
}

// Options describe one release.
type Options struct {
	// Build is used when ArtifactDir is empty.
	Build artifact.Options
	// ArtifactDir is a prebuilt `djdeploy build --out` folder (app.zip,
	// static/, release.json) from an earlier CI job.
	ArtifactDir string

	Target appservice.Target // the staging slot

	Sync staticsync.SyncOptions // Headers, Concurrency, block sizes

	// StaticURL is the public URL of the static files, written to the slot
	// as StaticURLSetting so the pages it serves link the files just synced.
	StaticURL        string
	StaticURLSetting string // default STATIC_URL

	// Slot configuration (see appservice.ConfigOptions).
	StartupCommand string
	Workers        int
	PythonVersion  string
	FixSettings    bool
	// ExtraSettings are set on the slot with the release id and static URL.
	ExtraSettings map[string]string

	// PreSwapCommand (usually migrations) runs before the swap: in the CI
	// job ("ci", with the slot's app settings as its environment) or in the
	// slot when it starts ("slot", before gunicorn, on every instance start).
	PreSwapCommand string
	PreSwapWhere   string
	// ProjectDir is where a "ci" pre-swap command runs.
	ProjectDir string

	DeployTimeout time.Duration
	WarmUp        appservice.HealthCheck
	Verify        appservice.HealthCheck
	SwapTimeout   time.Duration
	NoRollback    bool
	// CheckRelease makes warm-up and verification require the release id
	// in the health answer (body or X-Release-Id): proof that the new code,
	// not a stale instance, answered. The app must report it.
	CheckRelease bool

	Smoke smoke.Options // BaseURL is filled in from the slot

	Purge cdn.Request // ResourceGroup, Profile, Endpoint, Domains, limits; Paths filled in
	// CDNOriginPath maps blob names to URL paths (Front Door routes keep
	// their origin path out of ARM's endpoint resource).
	CDNOriginPath string

	Prune staticsync.PruneOptions // Keep, Grace

	Skip     map[string]bool
	Holder   string
	LockWait time.Duration

	// Progressive is the canary strategy, the post-swap watch and release
	// annotations (progressive.go); Annotations are extra properties of
	// each annotation (commit, CI run URL).
	Progressive Progressive
	Annotations map[string]string

	// Lock, when set, is a release lock the caller already holds (a
	// rollout across regions holds one for all of them); the release uses
	// it and leaves it held.
	Lock *staticsync.Lock
	// Deferred steps are skipped with the given reason (a rollout purges
	// and prunes once, after its last region).
	Deferred map[string]string
	// Rotation takes the app's Front Door origin out of rotation (false)
	// for the swap and puts it back (true) after it, whatever its outcome
	// (nil: the origin is left alone).
	Rotation func(ctx context.Context, enabled bool) error

	// Preview deploys to Target, a pull request's preview slot (pr-<n>),
	// and stops once the slot answers with this release's id (warm-up
	// checks it whatever CheckRelease says): no pre-swap command (it would
	// change production's database), no swap, purge or prune, and no
	// resume state (it belongs to the releases of the release slot).
	Preview bool

	// RollbackFrom, set by Rollback, makes the run a rollback from that
	// release (the one production ran): the report and the ledger say so.
	RollbackFrom string
}

// state is what a release keeps in the container between runs.
type state struct {
	Schema     int                  `json:"schema"`
	ReleaseID  string               `json:"release_id"`
	Slot       string               `json:"slot"`
	Done       map[string]time.Time `json:"done"`
	PurgePaths []string             `json:"purge_paths"`
	Deployment string               `json:"deployment_id,omitempty"`
	Updated    time.Time            `json:"updated"`
	// CanaryPassed is the largest canary share whose gate passed (a
	// re-run after a killed runner resumes at the next step).
	CanaryPassed float64 `json:"canary_passed,omitempty"`
}

func stateName(id string) string { return "resume/" + id + ".json" }

// runner holds one release's progress.
type runner struct {
	deps Deps
	opt  Options
	rep  progress.Reporter
	out  *report.Release
	st   *state
	lock *staticsync.Lock
	art  *artifact.Result
	// venvDir holds the build virtualenv kept for the pre-swap command
	// until the release ends.
	venvDir string
}

// Run performs the release. The report is always returned, also with an
// error, and says which step failed, what was done and what was not.
func Run(ctx context.Context, deps Deps, opt Options, rep progress.Reporter) (*report.Release, error) {
	if rep == nil {
		rep = progress.Discard
	}
	r := &runner{deps: deps, opt: opt, rep: rep, out: &report.Release{
		App: opt.Target.App, Slot: opt.Target.Slot, Started: time.Now(), Outcome: report.Succeeded,
	}}
	for _, s := range opt.steps() {
		r.out.Steps = append(r.out.Steps, report.Step{Name: s, Status: report.StepNotRun})
	}
	if opt.Progressive.Strategy == StrategyCanary {
		r.out.Strategy = StrategyCanary
	}
	if opt.RollbackFrom != "" {
		r.out.Kind, r.out.From = "rollback", opt.RollbackFrom
	}
	var err error
	if opt.Preview != appservice.IsPreviewSlot(opt.Target.Slot) {
		// Releases never touch pull requests' slots, previews never the
		// release slot.
		err = problem.Usagef("previews use pr-<number> slots ('djdeploy preview'), releases any other slot",
			"slot %s is not for this: preview %t", opt.Target.Slot, opt.Preview)
	} else {
		err = r.run(ctx)
	}
	if r.venvDir != "" {
		_ = os.RemoveAll(r.venvDir)
	}
	if r.lock != nil && r.lock != opt.Lock {
		// Released even when ctx is cancelled, so the next release goes at once.
		if lerr := r.lock.Release(context.WithoutCancel(ctx)); lerr != nil {
			rep.Warnf("releasing the release lock: %v (it expires by itself within a minute)", lerr)
		}
	}
	r.out.Duration = time.Since(r.out.Started)
	if err != nil {
		r.out.Outcome = report.Failed
		r.out.Error = err.Error()
		if p, ok := problem.As(err); ok && p.Fix != "" {
			r.out.Error += " (fix: " + p.Fix + ")"
		}
	}
	if r.out.ReleaseID != "" {
		event := "release"
		if opt.RollbackFrom != "" {
			event = "rollback"
		}
		if err != nil {
			event += " failed"
		}
		r.annotate(context.WithoutCancel(ctx), event, nil)
	}
	r.record(context.WithoutCancel(ctx))
	return r.out, err
}

func (r *runner) step(name string) *report.Step {
	for i := range r.out.Steps {
		if r.out.Steps[i].Name == name {
			return &r.out.Steps[i]
		}
	}
	panic("release: unknown step " + name)
}

// do runs one step as a log group, timing it and recording its outcome.
// fn returns a detail line, or errSkip-wrapped reasons for typed skips.
func (r *runner) do(ctx context.Context, name string, fn func(ctx context.Context) (string, error)) error {
	s := r.step(name)
	if r.opt.Skip[name] {
		s.Status, s.Detail = report.StepSkipped, "skipped (--skip)"
		r.rep.Infof("%s: skipped (--skip %s)", name, name)
		return nil
	}
	if why, ok := r.opt.Deferred[name]; ok {
		s.Status, s.Detail = report.StepSkipped, why
		r.rep.Infof("%s: skipped: %s", name, why)
		return nil
	}
	end := progress.Step(r.rep, name)
	defer end()
	s.Started = time.Now()
	detail, err := "", r.stillLocked(ctx, name)
	if err == nil {
		detail, err = fn(ctx)
	}
	s.Duration = time.Since(s.Started)
	var sk skip
	switch {
	case errors.As(err, &sk):
		s.Status, s.Detail = report.StepSkipped, sk.reason
		r.rep.Infof("%s: skipped: %s", name, sk.reason)
		return nil
	case err != nil:
		s.Status, s.Detail = report.StepFailed, firstLine(err.Error())
		r.out.FailedStep = name
		return fmt.Errorf("%s step: %w", name, err)
	}
	s.Status, s.Detail = report.StepDone, detail
	if r.st != nil && r.st.ReleaseID != "" {
		r.markDone(ctx, name)
	}
	return nil
}

// stillLocked checks, before a step that may change the slot, production,
// the container or the CDN, that this release still holds the lock: a run
// paused past its lease (a frozen runner, SIGSTOP) may find that another
// release took the lock and changed production meanwhile, and must not
// swap its older code over it.
func (r *runner) stillLocked(ctx context.Context, step string) error {
	if r.lock == nil || step == StepLock || step == StepBuild {
		return nil
	}
	if err := r.lock.Check(ctx); err != nil {
		return problem.Failf("another release may have run meanwhile: check what production serves, then re-run this release if it should still go out",
			"lost the release lock, stopping before %s: %v", step, err)
	}
	return nil
}

// skip is a typed skip: the step had nothing to do, and says why.
type skip struct{ reason string }

func (s skip) Error() string { return s.reason }

func skipf(format string, args ...any) error { return skip{fmt.Sprintf(format, args...)} }

func (r *runner) markDone(ctx context.Context, name string) {
	r.st.Done[name] = time.Now().UTC()
	r.saveState(ctx)
}

func (r *runner) saveState(ctx context.Context) {
	if r.opt.Preview {
		return
	}
	r.st.Updated = time.Now().UTC()
	if err := r.deps.Static.Store().PutJSON(ctx, stateName(r.st.ReleaseID), r.st); err != nil {
		r.rep.Warnf("saving the release's resume state: %v (a re-run redoes more work, nothing else)", err)
	}
}

func (r *runner) run(ctx context.Context) error {
	if err := r.do(ctx, StepLock, r.acquireLock); err != nil {
		return err
	}
	if err := r.do(ctx, StepBuild, r.build); err != nil {
		return err
	}
	m := r.art.Manifest
	r.out.ReleaseID = m.ReleaseID
	for _, c := range m.Checks {
		r.out.Checks = append(r.out.Checks, report.Check{ID: c.ID, Level: c.Level, Message: c.Message, Hint: c.Hint, File: settingsFile(m.SettingsModule)})
	}
	if err := r.loadState(ctx); err != nil {
		return err
	}

	if err := r.do(ctx, StepStatic, r.syncStatic); err != nil {
		return err
	}
	live, err := r.liveReleases(ctx)
	if err != nil {
		return err
	}
	alreadyLive := !r.opt.Preview && live.production == m.ReleaseID && !r.st.Done[StepSwap].IsZero()
	if alreadyLive {
		for _, s := range []string{StepPreSwap, StepDeploy, StepWarmUp, StepSmoke, StepSwap} {
			st := r.step(s)
			st.Status, st.Detail = report.StepSkipped, "already done: production runs release "+m.ReleaseID
		}
		r.rep.Infof("production already runs release %s; resuming after the swap", m.ReleaseID)
		r.out.Live = true
		r.out.SlotRelease = live.slot
	} else {
		if r.opt.Preview {
			return r.preview(ctx, live)
		}
		if err := r.do(ctx, StepPreSwap, r.preSwapCI); err != nil {
			return err
		}
		if err := r.do(ctx, StepDeploy, func(ctx context.Context) (string, error) { return r.deploy(ctx, live) }); err != nil {
			return err
		}
		if err := r.do(ctx, StepWarmUp, r.warmUp); err != nil {
			return err
		}
		if err := r.do(ctx, StepSmoke, r.smoke); err != nil {
			return err
		}
		if r.opt.Progressive.Strategy == StrategyCanary {
			if err := r.do(ctx, StepCanary, r.canary); err != nil {
				return err
			}
		}
		err := r.swapInRotation(ctx)
		if r.out.Live {
			// The swap moved the slot's content to production and
			// production's to the slot: the slot now serves the release
			// that was live before, not this one.
			r.out.SlotRelease = live.production
		}
		if err != nil {
			return err
		}
		if r.opt.Progressive.Watch > 0 {
			if err := r.do(ctx, StepWatch, r.watch); err != nil {
				return err
			}
		}
	}
	// Production runs the release: keep its package for rollbacks when
	// the run ends, whatever the later steps do (after them, so visitors
	// get fresh files first; a re-run after a kill keeps it, if the first
	// run did not).
	defer r.retain(ctx)
	if err := r.do(ctx, StepStaticFinish, r.finishStatic); err != nil {
		return err
	}
	if err := r.do(ctx, StepPurge, r.purge); err != nil {
		return err
	}
	return r.do(ctx, StepPrune, r.prune)
}

func (r *runner) acquireLock(ctx context.Context) (string, error) {
	if r.opt.Lock != nil {
		r.lock = r.opt.Lock
		return "held by " + r.lock.Holder + " for the whole rollout", nil
	}
	l, err := staticsync.AcquireLock(ctx, r.deps.Static, r.opt.Holder, r.opt.LockWait, r.rep)
	if err != nil {
		return "", err
	}
	r.lock = l
	return "held by " + l.Holder, nil
}

func (r *runner) build(ctx context.Context) (string, error) {
	if r.opt.ArtifactDir != "" {
		res, err := ReadArtifact(r.opt.ArtifactDir)
		if err != nil {
			return "", err
		}
		r.art = res
		if r.opt.RollbackFrom != "" {
			return "the package kept for release " + res.Manifest.ReleaseID, nil
		}
		return "prebuilt artifact " + res.OutDir, nil
	}
	bo := r.opt.Build
	if strings.TrimSpace(r.opt.PreSwapCommand) != "" && r.opt.PreSwapWhere != "slot" && bo.KeepVenv == "" {
		// The pre-swap command (manage.py migrate) runs after the build
		// with the build's interpreter: a build virtualenv lasts until the
		// release ends.
		dir, err := os.MkdirTemp("", "djdeploy-release-venv-")
		if err != nil {
			return "", fmt.Errorf("creating a folder for the build virtualenv: %w", err)
		}
		r.venvDir = dir
		bo.KeepVenv = filepath.Join(dir, "venv")
	}
	res, err := artifact.Build(ctx, bo, r.rep)
	if err != nil {
		return "", err
	}
	r.art = res
	return fmt.Sprintf("release %s: %d static files, zip %d bytes", res.Manifest.ReleaseID, res.StaticFiles, res.Zip.Size), nil
}

// ReadArtifact opens a prebuilt build folder and checks it is whole.
func ReadArtifact(dir string) (*artifact.Result, error) {
	mpath := filepath.Join(dir, artifact.ManifestName)
	m, err := artifact.ReadManifest(mpath)
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(dir)
	res := &artifact.Result{Manifest: m, OutDir: abs, ZipPath: filepath.Join(abs, m.AppZip.Path),
		StaticDir: filepath.Join(abs, "static"), ManifestPath: mpath, StaticFiles: len(m.Static)}
	fi, err := os.Stat(res.ZipPath)
	if err != nil {
		return nil, problem.Usagef("pass the --out folder of 'djdeploy build' as --artifact", "artifact %s has no %s", dir, m.AppZip.Path)
	}
	if fi.Size() != m.AppZip.Size {
		return nil, problem.Usagef("rebuild, or copy the whole build folder between jobs", "artifact %s: %s is %d bytes but release.json says %d", dir, m.AppZip.Path, fi.Size(), m.AppZip.Size)
	}
	// The size alone lets a release.json from another build (or a zip
	// changed after the build) through: the slot would then run code the
	// release id does not describe.
	if sum, err := fileSHA256(res.ZipPath); err != nil {
		return nil, problem.Wrap(err, "check the artifact folder's permissions", "reading %s", res.ZipPath)
	} else if sum != m.AppZip.SHA256 {
		return nil, problem.Usagef("copy the whole build folder between jobs; never mix files of two builds",
			"artifact %s: %s does not match release.json (sha256 %s, release.json says %s)", dir, m.AppZip.Path, sum, m.AppZip.SHA256)
	}
	if _, err := os.Stat(res.StaticDir); err != nil && len(m.Static) > 0 {
		return nil, problem.Usagef("copy the whole build folder between jobs", "artifact %s has no static/ folder", dir)
	}
	res.Zip.Size = fi.Size()
	return res, nil
}

func (r *runner) loadState(ctx context.Context) error {
	id := r.art.Manifest.ReleaseID
	if r.opt.Preview {
		r.st = &state{Schema: 1, ReleaseID: id, Slot: r.opt.Target.Slot, Done: map[string]time.Time{}}
		return nil
	}
	st := &state{}
	found, err := r.deps.Static.Store().GetJSON(ctx, stateName(id), st)
	if err != nil {
		return fmt.Errorf("reading the release's resume state: %w", err)
	}
	if !found || st.Slot != r.opt.Target.Slot {
		st = &state{Schema: 1, ReleaseID: id, Slot: r.opt.Target.Slot}
	} else {
		var done []string
		for k := range st.Done {
			done = append(done, k)
		}
		sort.Strings(done)
		r.rep.Infof("resuming release %s (done before: %s)", id, strings.Join(done, ", "))
	}
	if st.Done == nil {
		st.Done = map[string]time.Time{}
	}
	r.st = st
	return nil
}

// syncStatic uploads, before the swap, the release's new names and its
// content-hashed files: URLs the live release never served. Changes to
// names without a hash wait for static-finish, after the swap, so a
// release that fails leaves every static URL as it was.
func (r *runner) syncStatic(ctx context.Context) (string, error) {
	res, err := r.syncFiles(ctx, true)
	if err != nil {
		return "", err
	}
	detail := fmt.Sprintf("%d uploaded, %d unchanged, %d to purge", res.Uploaded, res.Skipped, len(res.PurgePaths))
	if n := len(res.Deferred); n > 0 {
		detail += fmt.Sprintf(", %d un-hashed name(s) left for after the swap", n)
	}
	return detail, nil
}

// finishStatic overwrites the un-hashed names syncStatic left alone, now
// that production runs the release (a rollout: after its last region).
func (r *runner) finishStatic(ctx context.Context) (string, error) {
	if r.opt.Skip[StepStatic] {
		return "", skipf("static-sync skipped (--skip static-sync)")
	}
	res, err := r.syncFiles(ctx, false)
	if err != nil {
		return "", err
	}
	if res.Uploaded+res.HeadersUpdated == 0 {
		return "", skipf("no un-hashed name changed")
	}
	return fmt.Sprintf("%d overwritten, %d to purge", res.Uploaded+res.HeadersUpdated, len(res.PurgePaths)), nil
}

func (r *runner) syncFiles(ctx context.Context, deferOverwrites bool) (*staticsync.Result, error) {
	src, err := staticsync.ReadSource(ctx, r.art.StaticDir, r.art.ManifestPath)
	if err != nil {
		return nil, err
	}
	so := r.opt.Sync
	so.Lock = r.lock
	so.ReleaseID = r.art.Manifest.ReleaseID
	so.DeferOverwrites = deferOverwrites
	if r.deps.CDN != nil {
		// The un-hashed paths this sync changes are owed to the CDN from
		// the moment they upload. Recorded in the container first, for the
		// next release whatever its id: after a failure (half-way through
		// the upload, or at deploy), the next sync finds them unchanged and
		// could not tell the CDN still caches their old content.
		dry := so
		dry.DryRun = true
		planned, err := r.deps.Static.Sync(ctx, src, dry, progress.Discard)
		if err != nil {
			return nil, err
		}
		if err := r.owe(ctx, planned.PurgePaths); err != nil {
			return nil, err
		}
	}
	res, err := r.deps.Static.Sync(ctx, src, so, r.rep)
	if err != nil {
		return nil, err
	}
	r.out.StaticUploaded += res.Uploaded
	if deferOverwrites {
		r.out.StaticSkipped = res.Skipped
	}
	r.out.StaticBytes += res.UploadedBytes
	r.out.StaticChanged = union(r.out.StaticChanged, res.Changed)
	// Kept in the state: a re-run's sync finds nothing changed, but the
	// purge still owes these paths.
	r.st.PurgePaths = union(r.st.PurgePaths, res.PurgePaths)
	return res, nil
}

type liveState struct{ production, slot string }

// liveReleases reads which release production and the slot run now.
func (r *runner) liveReleases(ctx context.Context) (liveState, error) {
	var ls liveState
	prod := r.opt.Target
	prod.Slot = "production"
	ps, err := r.deps.App.AppSettings(ctx, prod)
	if err != nil {
		return ls, fmt.Errorf("reading production's app settings: %w", err)
	}
	ss, err := r.deps.App.AppSettings(ctx, r.opt.Target)
	if err != nil {
		return ls, fmt.Errorf("reading slot %s's app settings: %w", r.opt.Target.Slot, err)
	}
	ls.production, ls.slot = ps[ReleaseIDSetting], ss[ReleaseIDSetting]
	return ls, nil
}

// preSwapCI runs the pre-swap command in the CI job, with the slot's app
// settings as its environment (the slot runs the new release against the
// same database production uses).
func (r *runner) preSwapCI(ctx context.Context) (string, error) {
	cmdline := strings.TrimSpace(r.opt.PreSwapCommand)
	if cmdline == "" {
		return "", skipf("no pre-swap-command set")
	}
	if r.opt.PreSwapWhere == "slot" {
		return "", skipf("runs in the slot before gunicorn starts (pre-swap-where slot)")
	}
	if !r.st.Done[StepPreSwap].IsZero() {
		return "", skipf("already ran for release %s", r.art.Manifest.ReleaseID)
	}
	appEnv, err := r.deps.App.AppSettings(ctx, r.opt.Target)
	if err != nil {
		return "", err
	}
	// The slot's connection strings, named as App Service names them for
	// the app (POSTGRESQLCONNSTR_DEFAULT, ...): settings.py reads its
	// database from them on App Service, so migrate must see them too.
	cs, err := r.deps.App.ConnectionStrings(ctx, r.opt.Target)
	if err != nil {
		return "", err
	}
	csEnv := appservice.ConnectionStringEnv(cs)
	path, err := r.preSwapPath()
	if err != nil {
		return "", err
	}
	env := []string{"PATH=" + path, "HOME=" + os.Getenv("HOME"), "LANG=C.UTF-8"}
	if r.art != nil && r.art.Venv != "" {
		env = append(env, "VIRTUAL_ENV="+r.art.Venv)
	}
	for k, v := range csEnv {
		env = append(env, k+"="+v)
	}
	for k, v := range appEnv {
		env = append(env, k+"="+v)
	}
	for k, v := range r.opt.ExtraSettings {
		env = append(env, k+"="+v)
	}
	dir := r.opt.ProjectDir
	if dir == "" {
		dir = r.opt.Build.ProjectDir
	}
	if r.art.Manifest != nil && r.opt.Build.Python != "" {
		env = append(env, "PYTHON="+r.opt.Build.Python)
	}
	// The command runs with the slot's app settings (a database password,
	// SECRET_KEY); what it prints is shown only with their values hidden,
	// and a CI log is told to mask them too.
	hide := redact.Maskable(appEnv)
	hide = append(hide, redact.Maskable(r.opt.ExtraSettings)...)
	for _, v := range csEnv {
		// Every connection string is a secret, whatever its name.
		if v = strings.TrimSpace(v); v != "" {
			hide = append(hide, v)
		}
	}
	progress.Mask(r.rep, hide...)
	c := exec.CommandContext(ctx, "sh", "-c", cmdline)
	c.Dir, c.Env = dir, env
	out, err := c.CombinedOutput()
	tail := redact.SAS(redact.Values(tailLines(string(out), 15), hide))
	for _, l := range strings.Split(strings.TrimSpace(tail), "\n") {
		if l != "" {
			r.rep.Infof("  | %s", l)
		}
	}
	if err != nil {
		return "", problem.Failf("fix the command or the database; production was not touched and still runs the previous release",
			"pre-swap command %q failed: %v", cmdline, err)
	}
	return "ran " + cmdline, nil
}

func (r *runner) deploy(ctx context.Context, live liveState) (string, error) {
	id := r.art.Manifest.ReleaseID
	if live.slot == id && !r.st.Done[StepDeploy].IsZero() && r.st.Deployment != "" {
		// The label says so and an earlier run deployed it: skip only if
		// Kudu's active deployment is still the one that run made. Anyone's
		// deploy since (a preview, a person) leaves the label in place.
		active, err := r.deps.App.ActiveDeployment(ctx, r.opt.Target)
		if err != nil {
			return "", err
		}
		if active == r.st.Deployment {
			return "", skipf("slot %s already runs release %s (deployment %s)", r.opt.Target.Slot, id, active)
		}
		r.rep.Infof("slot %s is labelled release %s but runs deployment %s, not %s that deployed it: deploying again", r.opt.Target.Slot, id, orNone(active), r.st.Deployment)
	}
	rel, err := appservice.ReadRelease(r.art.ZipPath)
	if err != nil {
		return "", err
	}
	extra := map[string]string{ReleaseIDSetting: id}
	if r.opt.StaticURL != "" {
		name := r.opt.StaticURLSetting
		if name == "" {
			name = "STATIC_URL"
		}
		extra[name] = r.opt.StaticURL
	}
	for k, v := range r.opt.ExtraSettings {
		extra[k] = v
	}
	startup := r.opt.StartupCommand
	if r.opt.PreSwapWhere == "slot" && strings.TrimSpace(r.opt.PreSwapCommand) != "" {
		startup, err = r.slotStartup(ctx, rel)
		if err != nil {
			return "", err
		}
	}
	cres, err := r.deps.App.EnsureConfig(ctx, appservice.ConfigOptions{
		Target: r.opt.Target, Release: rel, PythonVersion: r.opt.PythonVersion,
		StartupCommand: startup, Workers: r.opt.Workers, ExtraSettings: extra, Fix: r.opt.FixSettings,
	})
	if err != nil {
		return "", err
	}
	for _, w := range cres.Warnings {
		r.rep.Warnf("%s", w)
	}
	if err := r.stillLocked(ctx, StepDeploy); err != nil {
		return "", err
	}
	dres, err := r.deps.App.Deploy(ctx, appservice.DeployOptions{Target: r.opt.Target, Package: r.art.ZipPath, Timeout: r.opt.DeployTimeout})
	if err != nil {
		return "", err
	}
	r.out.DeploymentID = dres.DeploymentID
	r.st.Deployment = dres.DeploymentID
	return fmt.Sprintf("deployment %s: %s", dres.DeploymentID, dres.Status), nil
}

// preview runs a preview's steps after the static sync: deploy to the pull
// request's slot and warm it up until it answers with this release's id, so
// the URL it reports serves this pull request's code. The steps that would
// touch production are typed skips.
func (r *runner) preview(ctx context.Context, live liveState) error {
	why := "a preview stays on slot " + r.opt.Target.Slot
	if err := r.do(ctx, StepPreSwap, func(context.Context) (string, error) {
		return "", skipf("previews never run the pre-swap command: it would change the database production uses")
	}); err != nil {
		return err
	}
	if err := r.do(ctx, StepDeploy, func(ctx context.Context) (string, error) { return r.deploy(ctx, live) }); err != nil {
		return err
	}
	if err := r.do(ctx, StepWarmUp, r.warmUp); err != nil {
		return err
	}
	if err := r.do(ctx, StepSmoke, r.smoke); err != nil {
		return err
	}
	for _, s := range []string{StepSwap, StepPurge, StepPrune} {
		if err := r.do(ctx, s, func(context.Context) (string, error) { return "", skipf("%s", why) }); err != nil {
			return err
		}
	}
	return nil
}

// slotStartup is the startup command that runs the pre-swap command before
// gunicorn. It runs on every instance start (swaps restart instances too),
// so the command must be idempotent, as `manage.py migrate` is.
func (r *runner) slotStartup(ctx context.Context, rel *appservice.Release) (string, error) {
	base := r.opt.StartupCommand
	if base == "" || base == "auto" || base == "keep" {
		if rel == nil || rel.StartupHint.ASGIModule == "" {
			return "", problem.Usagef("set startup-command explicitly", "pre-swap-where slot needs the startup command, and release.json names no ASGI module")
		}
		workers := r.opt.Workers
		if workers == 0 {
			site, err := r.deps.App.GetSite(ctx, r.opt.Target)
			if err != nil {
				return "", err
			}
			workers = 3
			if sku, err := r.deps.App.PlanSKU(ctx, site); err == nil {
				if n, ok := appservice.VCPUsForSKU(sku); ok {
					workers = appservice.WorkersForVCPUs(n)
				}
			}
		}
		base = appservice.StartupCommand(rel.StartupHint.ASGIModule, workers, rel.StartupHint.PythonPath)
	}
	// In local dependency mode the vendored packages are only on the path
	// of the command the PYTHONPATH prefix precedes; the pre-swap command
	// (python manage.py migrate) needs them as much as gunicorn does.
	if rel != nil && rel.DependencyMode == "local" && rel.StartupHint.PythonPath != "" {
		return "export PYTHONPATH=" + rel.StartupHint.PythonPath + ":$PYTHONPATH && " + r.opt.PreSwapCommand + " && " + base, nil
	}
	return r.opt.PreSwapCommand + " && " + base, nil
}

func (r *runner) warmUp(ctx context.Context) (string, error) {
	hc := r.opt.WarmUp
	if r.opt.CheckRelease || r.opt.Preview {
		hc.ExpectRelease = r.art.Manifest.ReleaseID
	}
	res, err := r.deps.App.WarmUp(ctx, r.opt.Target, hc)
	if err != nil {
		return "", err
	}
	r.out.SlotURL = baseURL(res.URL)
	r.out.SlotRelease = r.art.Manifest.ReleaseID
	return fmt.Sprintf("%s answered %d after %d attempt(s)", res.URL, res.Status, res.Attempts), nil
}

func (r *runner) smoke(ctx context.Context) (string, error) {
	so := r.opt.Smoke
	if so.Requests <= 0 {
		return "", skipf("smoke-requests is 0")
	}
	if so.BaseURL == "" {
		so.BaseURL = r.out.SlotURL
	}
	client := r.deps.HTTP
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	res, err := smoke.Run(ctx, client, so)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d requests, p50 %s, p95 %s", res.Requests, res.P50.Round(time.Millisecond), res.P95.Round(time.Millisecond)), nil
}

// swapInRotation runs the swap step, with the app's Front Door origin out
// of rotation while it swaps when Rotation is set: Front Door sends its
// visitors to the other regions meanwhile.
func (r *runner) swapInRotation(ctx context.Context) error {
	if r.opt.Rotation == nil {
		return r.do(ctx, StepSwap, r.swap)
	}
	if err := r.opt.Rotation(ctx, false); err != nil {
		s := r.step(StepSwap)
		s.Status, s.Detail = report.StepFailed, firstLine(err.Error())
		r.out.FailedStep = StepSwap
		return fmt.Errorf("%s step: taking the Front Door origin out of rotation: %w", StepSwap, err)
	}
	swapErr := r.do(ctx, StepSwap, r.swap)
	if err := r.opt.Rotation(context.WithoutCancel(ctx), true); err != nil {
		err = problem.Wrap(err, "put the origin back: az afd origin update --enabled-state Enabled (its app serves "+
			map[bool]string{true: "the new release", false: "the previous release"}[r.out.Live]+")",
			"putting the Front Door origin back into rotation failed")
		if swapErr != nil {
			return fmt.Errorf("%w; also: %v", swapErr, err)
		}
		r.out.FailedStep = StepSwap
		return err
	}
	return swapErr
}

func (r *runner) swap(ctx context.Context) (string, error) {
	if err := r.slotRunsThisRelease(ctx); err != nil {
		return "", err
	}
	verify := r.opt.Verify
	if r.opt.CheckRelease {
		verify.ExpectRelease = r.art.Manifest.ReleaseID
	}
	rep, err := r.deps.App.RunSwap(ctx, appservice.SwapPlan{
		Swap:       appservice.SwapSpec{Target: r.opt.Target, Timeout: r.opt.SwapTimeout},
		SkipWarmUp: true, // the warm-up step already ran
		Verify:     verify,
		NoRollback: r.opt.NoRollback,
	})
	if rep != nil && rep.Verify != nil {
		r.out.URL = baseURL(rep.Verify.URL)
	}
	// Swapped and not swapped back (verified, --no-rollback, or the swap
	// back failed): production serves this release, whatever comes next.
	r.out.Live = rep != nil && rep.Swapped && !rep.RolledBack
	if rep != nil && rep.RolledBack {
		r.out.ProductionFailureSeconds = rep.FailureSeconds
	}
	if err != nil {
		if rep != nil && rep.RolledBack && !strings.Contains(err.Error(), "swapped back") {
			return "", fmt.Errorf("%w (swapped back: production serves the previous release)", err)
		}
		return "", err
	}
	if err := r.deps.Static.MarkProduction(ctx, r.art.Manifest.ReleaseID); err != nil {
		// The site is live; only prune's memory of it is missing.
		r.rep.Warnf("recording release %s as live: %v", r.art.Manifest.ReleaseID, err)
	}
	r.st.Done[StepSwap] = time.Now().UTC()
	return fmt.Sprintf("%s swapped into production and verified", r.opt.Target.Slot), nil
}

func (r *runner) purge(ctx context.Context) (string, error) {
	if r.deps.CDN == nil {
		return "", skipf("no CDN profile and endpoint configured")
	}
	owed, err := r.owed(ctx)
	if err != nil {
		return "", err
	}
	// Paths owed by earlier releases that failed after uploading go too.
	all := union(r.st.PurgePaths, owed)
	if !r.st.Done[StepPurge].IsZero() {
		// Purged before; but a re-run of an older release (a rollback)
		// re-uploads the un-hashed files a later release changed, and
		// those are owed again.
		if len(owed) == 0 {
			return "", skipf("already purged for release %s", r.art.Manifest.ReleaseID)
		}
		all = owed
	}
	if len(all) == 0 {
		return "", skipf("no changed file without a content hash: nothing cached is stale")
	}
	req := r.opt.Purge
	names := make([]string, len(all))
	for i, p := range all {
		// Sync reports URL paths below the container ("/prefix/name").
		names[i] = strings.TrimPrefix(p, "/")
	}
	paths, skipped := cdn.BlobNamesToPaths(names, r.deps.Static.Container(), r.opt.CDNOriginPath)
	for _, s := range skipped {
		r.rep.Warnf("not purged: %s is outside the CDN origin path %q", s, r.opt.CDNOriginPath)
	}
	if len(paths) == 0 {
		r.clearOwed(ctx)
		return "", skipf("no changed path is served by the CDN endpoint")
	}
	req.Paths = paths
	res, err := r.deps.CDN.Purge(ctx, req)
	if err != nil {
		return "", err
	}
	r.clearOwed(ctx)
	r.out.PurgedPaths = res.Paths
	return fmt.Sprintf("%d path(s) in %d request(s)", len(res.Paths), res.Requests), nil
}

// owedName is where the un-hashed paths uploaded but not yet purged are
// kept, across releases (the lock serialises their writers).
const owedName = "purge-owed.json"

type owedPurge struct {
	Schema  int       `json:"schema"`
	Paths   []string  `json:"paths"`
	Updated time.Time `json:"updated"`
}

func (r *runner) owed(ctx context.Context) ([]string, error) {
	var o owedPurge
	if _, err := r.deps.Static.Store().GetJSON(ctx, owedName, &o); err != nil {
		return nil, fmt.Errorf("reading the paths owed to the CDN: %w", err)
	}
	return o.Paths, nil
}

// owe adds paths to the owed purge before they upload.
func (r *runner) owe(ctx context.Context, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	prev, err := r.owed(ctx)
	if err != nil {
		return err
	}
	o := owedPurge{Schema: 1, Paths: union(prev, paths), Updated: time.Now().UTC()}
	if err := r.deps.Static.Store().PutJSON(ctx, owedName, o); err != nil {
		return fmt.Errorf("recording the paths owed to the CDN: %w", err)
	}
	return nil
}

// clearOwed forgets the owed paths once purged. Failing to is harmless:
// the next release purges them once more.
func (r *runner) clearOwed(ctx context.Context) {
	if err := r.deps.Static.Store().Delete(ctx, owedName); err != nil {
		r.rep.Warnf("clearing the paths owed to the CDN: %v (the next release purges them again)", err)
	}
}

func (r *runner) prune(ctx context.Context) (string, error) {
	live, err := r.liveReleases(ctx)
	if err != nil {
		return "", err
	}
	po := r.opt.Prune
	po.Lock = r.lock
	po.Protect = append(po.Protect, r.art.Manifest.ReleaseID)
	for _, id := range []string{live.production, live.slot} {
		if id != "" {
			po.Protect = append(po.Protect, id)
		}
	}
	res, err := r.deps.Static.Prune(ctx, po, r.rep)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d file(s) deleted, %d release(s) pruned", res.Deleted, len(res.PrunedReleases)), nil
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// baseURL strips the path from a probe URL.
func baseURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.IndexByte(u[i+3:], '/'); j >= 0 {
			return u[:i+3+j]
		}
	}
	return u
}

// settingsFile is the settings module's file, where CI annotates check
// --deploy findings (Django's messages carry no line).
func settingsFile(module string) string {
	if module == "" {
		return ""
	}
	return strings.ReplaceAll(module, ".", "/") + ".py"
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// preSwapPath is the pre-swap command's PATH: the interpreter the build ran
// manage.py with comes first (as python and python3, and its virtualenv's
// bin with the project's requirements), then the runner's PATH. The
// runner's own python3 (the action's image has no Django) would fail
// `python manage.py migrate`.
func (r *runner) preSwapPath() (string, error) {
	path := os.Getenv("PATH")
	if r.art == nil || r.art.Python == "" {
		return path, nil
	}
	if r.venvDir == "" {
		dir, err := os.MkdirTemp("", "djdeploy-release-venv-")
		if err != nil {
			return "", fmt.Errorf("creating a folder for the interpreter: %w", err)
		}
		r.venvDir = dir
	}
	py := r.art.Python
	if !filepath.IsAbs(py) {
		// A name found on PATH: resolved now, as the shim comes first.
		p, err := exec.LookPath(py)
		if err != nil {
			return path, nil
		}
		if py, err = filepath.Abs(p); err != nil {
			return path, nil
		}
	}
	shim := filepath.Join(r.venvDir, "bin")
	if err := os.MkdirAll(shim, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", shim, err)
	}
	// Scripts, not symlinks: a virtualenv's python started through a
	// symlink elsewhere would not find its pyvenv.cfg, nor its packages.
	for _, name := range []string{"python", "python3"} {
		body := "#!/bin/sh\nexec '" + strings.ReplaceAll(py, "'", `'\''`) + "' \"$@\"\n"
		if err := os.WriteFile(filepath.Join(shim, name), []byte(body), 0o755); err != nil {
			return "", fmt.Errorf("writing %s: %w", name, err)
		}
	}
	dirs := []string{shim}
	if r.art.Venv != "" {
		dirs = append(dirs, filepath.Join(r.art.Venv, "bin"))
	}
	return strings.Join(append(dirs, path), string(os.PathListSeparator)), nil
}

// slotRunsThisRelease re-reads, just before production changes, which
// deployment the slot runs: a deploy to the slot after this release's own
// (another pipeline, a person, a preview) must not be swapped into
// production under this release's name, whatever app setting it left.
func (r *runner) slotRunsThisRelease(ctx context.Context) error {
	want := r.st.Deployment
	if want == "" {
		r.rep.Warnf("Kudu gave the deployment no id: cannot check that slot %s still runs release %s before the swap", r.opt.Target.Slot, r.art.Manifest.ReleaseID)
		return nil
	}
	got, err := r.deps.App.ActiveDeployment(ctx, r.opt.Target)
	if err != nil {
		return err
	}
	if got != want {
		return problem.Failf(fmt.Sprintf("find who deployed to the slot (az webapp log deployment list -g %s -n %s --slot %s), then run the release again: it deploys and swaps its own code",
			r.opt.Target.ResourceGroup, r.opt.Target.App, r.opt.Target.Slot),
			"slot %s runs deployment %s, not deployment %s that release %s made: something deployed to the slot since; nothing was swapped, production is unchanged",
			r.opt.Target.Slot, orNone(got), want, r.art.Manifest.ReleaseID)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
