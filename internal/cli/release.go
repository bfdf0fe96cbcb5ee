package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/cdn"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/release"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/djdeploy/djdeploy/internal/smoke"
	"github.com/djdeploy/djdeploy/internal/staticsync"
	"github.com/spf13/cobra"
)

func init() {
	register(5, newReleaseCmd)
	ciRunner = runForCI
}

func newReleaseCmd(env *Env) *cobra.Command {
	var plan bool
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Build, sync static files, deploy to a slot, swap, purge: the whole release",
		Long: `Release runs the whole zero-downtime release of a Django project to App Service:

   1. lock        take the release lock (a blob lease beside the static files)
   2. build       the reproducible zip and the collected static files
                  (or --artifact: a prebuilt 'djdeploy build --out' folder)
   3. static-sync upload new names and content-hashed files; nothing is
                  deleted or overwritten, so every static URL keeps serving
                  what it served
   4. pre-swap    optional command such as migrations (--pre-swap-command),
                  in this job or in the slot before gunicorn starts
   5. deploy      set STATIC_URL and DJDEPLOY_RELEASE_ID on the slot, zip-deploy
   6. warm-up     the slot's health path answers; smoke gate if configured
   7. swap        swap the slot into production, verify, swap back on failure
   8. static-finish overwrite the changed names without a content hash
                  (site.css, robots.txt, staticfiles.json), now that
                  production runs the release
   9. purge       purge the CDN for changed files without a content hash
  10. prune       delete static files no live or recent release references
  11. report      what changed, how long each step took, the URLs

A failure at any step leaves production serving the previous release with all
of its static files, byte for byte: every static URL answers what it answered
before the release. Re-running the same release resumes: the state lives in
the storage container, so a CI re-run on a fresh runner skips what is done.

Migrations must stay backward compatible with the release that is still live
until the swap: add columns and tables first, remove them a release later.

--plan prints what would happen and changes nothing.`,
		Example: `  # against the local emulator (or make demo); it runs until stopped, so
  # start it in the background and wait for its settings file
  djdeploy emulator --env-file .emulator.env & until [ -s .emulator.env ]; do sleep 1; done
  . ./.emulator.env
  djdeploy release --project examples/django-app --python .venv/bin/python --fix-settings

  # what would happen, changing nothing
  djdeploy release --plan

  # with migrations and a smoke gate
  djdeploy release --pre-swap-command "python manage.py migrate --noinput" \
    --smoke-requests 200 --smoke-max-p95 800ms`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			projectDir := env.ProjectDir(cmd)
			vals, err := env.LoadSettings(cmd, projectDir)
			if err != nil {
				return err
			}
			rep := env.azureProgress(vals)
			if plan {
				p, err := planRelease(cmd.Context(), env, vals, projectDir, rep)
				if err != nil {
					return err
				}
				env.Outcome(OutcomePlanned)
				if env.Result(cmd, p) {
					printPlan(env, p)
				}
				return nil
			}
			if len(vals.List("targets")) > 0 && wantsJSON(cmd) {
				ro, err := runRollout(cmd.Context(), env, vals, projectDir, rep)
				if ro != nil {
					env.Result(cmd, ro)
				}
				return err
			}
			out, err := runRelease(cmd.Context(), env, vals, projectDir, rep)
			if out != nil && env.Result(cmd, out) {
				fmt.Fprint(env.Out, report.Markdown(out, report.MarkdownOptions{}))
			}
			return err
		},
	}
	bindSettings(cmd, "release")
	cmd.Flags().BoolVar(&plan, "plan", false, "print what the release would do and change nothing")
	return cmd
}

// releaseSetup is everything a release or a plan needs, from settings.
type releaseSetup struct {
	deps release.Deps
	opt  release.Options
	tmp  string
	acc  *AzureAccess
}

func (s *releaseSetup) cleanup() {
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
}

func setupRelease(ctx context.Context, env *Env, vals *settings.Values, projectDir string, rep progress.Reporter) (*releaseSetup, error) {
	if err := vals.Require("resource-group", "app"); err != nil {
		return nil, err
	}
	if vals.String("slot") == "" || strings.EqualFold(vals.String("slot"), "production") {
		return nil, problem.Usagef("set --slot to a deployment slot such as staging (create one with az webapp deployment slot create)",
			"a release deploys to a staging slot and swaps it in; slot %q is not a deployment slot", vals.String("slot"))
	}
	if appservice.IsPreviewSlot(vals.String("slot")) {
		return nil, problem.Usagef("release through a slot such as staging; pr-<number> slots belong to pull request previews ('djdeploy preview')",
			"slot %s is a pull request's preview slot", vals.String("slot"))
	}
	return setupReleaseTo(ctx, env, vals, projectDir, rep, vals.String("slot"))
}

// setupReleaseTo is setupRelease for slot: the release slot, or a pull
// request's preview slot.
func setupReleaseTo(ctx context.Context, env *Env, vals *settings.Values, projectDir string, rep progress.Reporter, slot string) (*releaseSetup, error) {
	// Bad names fail here, before a build or an upload (exit 2).
	if err := (appservice.Target{ResourceGroup: vals.String("resource-group"), App: vals.String("app"), Slot: slot}).Validate(); err != nil {
		return nil, err
	}
	skip := map[string]bool{}
	for _, s := range vals.List("skip") {
		if !slices.Contains(release.Skippable, s) {
			return nil, problem.Usagef("skip one of: "+strings.Join(release.Skippable, ", "), "--skip %q is not a step that can be skipped", s)
		}
		skip[s] = true
	}
	// Settings only the last steps use are checked here: found at prune or
	// purge, they would fail the release after production was swapped.
	if !skip[release.StepPrune] && vals.Int("static-keep") < 1 {
		return nil, problem.Usagef("set --static-keep to 1 or more (the releases whose files prune keeps), or --skip prune",
			"static-keep must be 1 or more, not %d", vals.Int("static-keep"))
	}
	s := &releaseSetup{}
	buildOpt, err := buildOptions(env, vals, projectDir)
	if err != nil {
		return nil, err
	}

	acc, err := env.Azure(vals)
	if err != nil {
		return nil, err
	}
	static, err := openStatic(ctx, vals)
	if err != nil {
		return nil, err
	}
	hc, err := acc.HTTPClient(30 * time.Second)
	if err != nil {
		return nil, err
	}
	app, err := appservice.New(acc.Subscription, acc.Credential, acc.Options, hc, rep)
	if err != nil {
		return nil, err
	}
	headers, err := staticHeaders(vals)
	if err != nil {
		return nil, err
	}
	warm, verify, err := healthChecks(vals)
	if err != nil {
		return nil, err
	}
	s.deps = release.Deps{Static: static, App: app, HTTP: hc}
	s.acc = acc
	s.opt = release.Options{
		Build:            buildOpt,
		ArtifactDir:      vals.String("artifact"),
		Target:           appservice.Target{ResourceGroup: vals.String("resource-group"), App: vals.String("app"), Slot: slot},
		Sync:             staticsync.SyncOptions{Headers: headers, Concurrency: vals.Int("static-concurrency")},
		StaticURL:        vals.String("static-url"),
		StaticURLSetting: vals.String("static-url-setting"),
		StartupCommand:   vals.String("startup-command"),
		Workers:          vals.Int("workers"),
		PythonVersion:    vals.String("python-version"),
		FixSettings:      releaseFixesSettings(vals),
		PreSwapCommand:   vals.String("pre-swap-command"),
		PreSwapWhere:     vals.String("pre-swap-where"),
		ProjectDir:       projectDir,
		DeployTimeout:    vals.Duration("deploy-timeout"),
		WarmUp:           warm,
		Verify:           verify,
		SwapTimeout:      vals.Duration("swap-timeout"),
		NoRollback:       vals.Bool("no-rollback"),
		CheckRelease:     vals.Bool("check-release"),
		Smoke: smoke.Options{Paths: vals.List("smoke-paths"), Requests: vals.Int("smoke-requests"),
			Concurrency: vals.Int("smoke-concurrency"), MaxP95: vals.Duration("smoke-max-p95")},
		Prune:    staticsync.PruneOptions{Keep: vals.Int("static-keep"), Grace: vals.Duration("static-grace")},
		Skip:     skip,
		Holder:   staticLockHolder(env.getenv),
		LockWait: vals.Duration("lock-timeout"),
	}

	s.opt.Progressive, err = progressiveOptions(ctx, vals, acc, app, hc, s.opt.Target, rep)
	if err != nil {
		return nil, err
	}
	s.opt.Annotations = annotationProps(env.getenv)

	// The CDN is optional: without a profile and endpoint, purge is a typed skip.
	if vals.String("cdn-profile") != "" && vals.String("cdn-endpoint") != "" {
		purger, err := cdn.New(acc.Subscription, acc.Credential, acc.Options, rep)
		if err != nil {
			return nil, err
		}
		rg := vals.String("cdn-resource-group")
		if rg == "" {
			rg = vals.String("resource-group")
		}
		ep, err := purger.GetEndpoint(ctx, rg, vals.String("cdn-profile"), vals.String("cdn-endpoint"))
		if err != nil {
			return nil, err
		}
		if ep.Kind != cdn.FrontDoor && len(vals.List("domain")) > 0 && !skip[release.StepPurge] {
			return nil, problem.Usagef("remove --domain; it applies to Front Door profiles only",
				"profile %s is a classic CDN profile, which purges every domain", vals.String("cdn-profile"))
		}
		origin := vals.String("cdn-origin-path")
		if origin == "" {
			origin = ep.OriginPath
		}
		if origin == "" && ep.Kind == cdn.FrontDoor {
			// Front Door keeps the origin path on its route, out of ARM's
			// endpoint resource; the usual setup routes to the container.
			origin = "/" + static.Container()
		}
		s.deps.CDN = purger
		s.opt.CDNOriginPath = origin
		s.opt.Purge = cdn.Request{ResourceGroup: rg, Profile: vals.String("cdn-profile"), Endpoint: vals.String("cdn-endpoint"),
			Kind: ep.Kind, Domains: vals.List("domain"), MaxRequests: vals.Int("purge-max-requests"), Timeout: vals.Duration("purge-timeout")}
		if s.opt.StaticURL == "" {
			s.opt.StaticURL = cdnStaticURL(ep, static, origin)
		}
	}
	if s.opt.StaticURL == "" {
		s.opt.StaticURL = static.URL() + "/" + static.Prefix()
	}
	if vals.Bool("origin-rotation") {
		if s.opt.Rotation, err = originRotation(ctx, s, vals, s.opt.Target); err != nil {
			return nil, err
		}
	}
	if s.opt.Build.OutDir == "" && s.opt.ArtifactDir == "" {
		// A release builds into a temporary folder: inside the project it
		// would end up in the next zip. Made last, so no earlier failure
		// has a folder to clean up.
		tmp, err := os.MkdirTemp("", "djdeploy-release-")
		if err != nil {
			return nil, err
		}
		s.tmp, s.opt.Build.OutDir = tmp, tmp
	}
	return s, nil
}

// applyCORS sets static-cors-origins on the storage account, as static sync
// does, before anything is uploaded: pages of this release may load fonts
// and module scripts cross-origin. The rule only adds origins, so the live
// release is unaffected whatever happens next.
func applyCORS(ctx context.Context, s *releaseSetup, vals *settings.Values, rep progress.Reporter) error {
	origins := vals.List("static-cors-origins")
	if len(origins) == 0 {
		return nil
	}
	changed, err := s.deps.Static.SetCORS(ctx, origins)
	if err != nil {
		return err
	}
	if changed {
		rep.Infof("storage account CORS now allows %s", strings.Join(origins, ", "))
	}
	return nil
}

// cdnStaticURL maps the container's prefix through the endpoint's origin
// path, the same mapping purge uses, so pages link what purge evicts.
func cdnStaticURL(ep *cdn.Endpoint, static *staticsync.Client, origin string) string {
	const probe = "djdeploy-probe"
	paths, _ := cdn.BlobNamesToPaths([]string{static.Prefix() + probe}, static.Container(), origin)
	if len(paths) == 0 {
		return ""
	}
	return ep.URL() + strings.TrimSuffix(paths[0], probe)
}

func runRelease(ctx context.Context, env *Env, vals *settings.Values, projectDir string, rep progress.Reporter) (*report.Release, error) {
	if len(vals.List("targets")) > 0 {
		ro, err := runRollout(ctx, env, vals, projectDir, rep)
		if ro == nil {
			return nil, err
		}
		return rolloutReport(ro), err
	}
	s, err := setupRelease(ctx, env, vals, projectDir, rep)
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	if err := applyCORS(ctx, s, vals, rep); err != nil {
		return nil, err
	}
	out, err := release.Run(ctx, s.deps, s.opt, rep)
	if out != nil {
		out.StaticURL = s.opt.StaticURL
	}
	return out, err
}

// runForCI runs the command the CI step names and returns its report.
// Parts other than release run their own command with the same settings.
func runForCI(ctx context.Context, env *Env, vals *settings.Values, rep progress.Reporter) (*report.Release, error) {
	projectDir := vals.String("project")
	if projectDir == "" {
		projectDir = "."
	}
	command := strings.ToLower(vals.String("command"))
	if command == "" || command == "release" {
		return runRelease(ctx, env, vals, projectDir, rep)
	}
	if command == "preview" {
		return runPreview(ctx, env, vals, projectDir, rep, vals.Bool("preview-delete"))
	}
	if command == "rollback" {
		return rollbackWith(ctx, env, vals, projectDir, strings.TrimSpace(vals.String("rollback-to")))
	}
	started := time.Now()
	args := []string{command}
	if command == "static" {
		src := vals.String("static-source")
		for _, dir := range []string{vals.String("artifact"), vals.String("out")} {
			if src == "" && dir != "" {
				src = filepath.Join(dir, artifact.StaticDir)
			}
		}
		if src == "" {
			return nil, problem.Usagef("set the static-source input to the folder collectstatic wrote (command: build's out/static), or artifact to a build folder",
				"command static has no static files to upload")
		}
		args = append(args, "sync", "--source", src)
	}
	// The part reads the same settings: the CI front end already put them in
	// the environment the sub-command reads.
	sub := &Env{IO: IO{In: env.In, Out: env.Out, Err: env.Err}, Getenv: settingsGetenv(vals, env.getenv)}
	root := NewRoot(sub)
	root.SetArgs(args)
	end := progress.Step(rep, command)
	err := root.ExecuteContext(ctx)
	end()
	out := &report.Release{Started: started, Duration: time.Since(started), Outcome: report.Succeeded, App: vals.String("app"), Slot: vals.String("slot"),
		Steps: []report.Step{{Name: command, Status: report.StepDone, Started: started, Duration: time.Since(started)}}}
	if err != nil {
		out.Outcome, out.FailedStep, out.Error = report.Failed, command, err.Error()
		out.Steps[0].Status = report.StepFailed
	}
	if command == "build" && err == nil {
		// The release-id output: the id the build wrote into release.json.
		if m, merr := artifact.ReadManifest(filepath.Join(vals.String("out"), artifact.ManifestName)); merr == nil {
			out.ReleaseID = m.ReleaseID
		} else {
			rep.Warnf("reading the build's release id: %v", merr)
		}
	}
	return out, err
}

// settingsGetenv serves resolved settings through their environment names,
// so a sub-command run from CI sees exactly what the step was given.
func settingsGetenv(vals *settings.Values, fallback func(string) string) func(string) string {
	byEnv := map[string]string{}
	for _, s := range settings.All() {
		if v := vals.Get(s.Name); v.Source != settings.FromDefault {
			byEnv[s.EnvName()] = v.Raw
		}
	}
	return func(k string) string {
		if v, ok := byEnv[k]; ok {
			return v
		}
		return fallback(k)
	}
}

func planRelease(ctx context.Context, env *Env, vals *settings.Values, projectDir string, rep progress.Reporter) (*release.PlanResult, error) {
	s, err := setupRelease(ctx, env, vals, projectDir, rep)
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	return release.Plan(ctx, s.deps, s.opt, rep)
}

func printPlan(env *Env, p *release.PlanResult) {
	w := env.Out
	fmt.Fprintf(w, "release %s → slot %s, then production (nothing was changed)\n", p.ReleaseID, p.Slot)
	if p.AlreadyLive {
		fmt.Fprintf(w, "  production already runs %s: only purge and prune would run\n", p.ReleaseID)
	} else if p.Production != "" {
		fmt.Fprintf(w, "  production runs %s now\n", p.Production)
	}
	fmt.Fprintf(w, "  static files: %d to upload (%d bytes), %d unchanged\n", len(p.Upload), p.UploadBytes, p.Unchanged)
	for _, u := range p.Upload {
		fmt.Fprintf(w, "    + %s\n", u)
	}
	fmt.Fprintf(w, "  slot settings to change: %d\n", len(p.Settings))
	for _, c := range p.Settings {
		fmt.Fprintf(w, "    %s %s = %s (%s)\n", c.Kind, c.Name, c.Want, c.State)
	}
	fmt.Fprintf(w, "  STATIC_URL: %s\n", p.StaticURL)
	fmt.Fprintf(w, "  CDN paths to purge: %d\n", len(p.PurgePaths))
	for _, u := range p.PurgePaths {
		fmt.Fprintf(w, "    - %s\n", u)
	}
	if len(p.Canary) > 0 {
		fmt.Fprintf(w, "  canary before the swap: %s\n", strings.Join(p.Canary, ", then "))
	}
	if p.Watch != "" {
		fmt.Fprintf(w, "  watch production for %s after the swap, swapping back at the first breach\n", p.Watch)
	}
	if len(p.Skipped) > 0 {
		fmt.Fprintf(w, "  skipped steps: %s\n", strings.Join(p.Skipped, ", "))
	}
}

// releaseFixesSettings: a release writes the settings its package needs
// (with STATIC_URL and the release id, in one write) unless fix-settings is
// set to false. A swap moves production's previous settings into the slot,
// so a release that only checked them failed every other time on a new
// app. An explicit false keeps the check for settings managed elsewhere
// (Bicep, Terraform): the release then fails naming what differs.
func releaseFixesSettings(vals *settings.Values) bool {
	v := vals.Get("fix-settings")
	return v.Source == settings.FromDefault || vals.Bool("fix-settings")
}
