package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/ledger"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/release"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/djdeploy/djdeploy/internal/staticsync"
	"github.com/spf13/cobra"
)

func init() {
	register(8, newStatusCmd)
	register(9, newReleasesCmd)
	register(6, newRollbackCmd)
	describeResult("status", release.Status{})
	describeResult("releases", releasesOutput{})
	describeResult("rollback", report.Release{})
}

// releasesOutput is the result of `djdeploy releases`.
type releasesOutput struct {
	App      string         `json:"app"`
	Releases []ledger.Entry `json:"releases"` // newest first
}

// readSetup is what status and releases read with: the app's slots and
// the state container. Neither takes the lock nor changes anything.
func readSetup(ctx context.Context, env *Env, cmd *cobra.Command, needApp bool) (*settings.Values, *appservice.Client, *staticsync.Client, error) {
	vals, err := env.LoadSettings(cmd, env.ProjectDir(cmd))
	if err != nil {
		return nil, nil, nil, err
	}
	if err := vals.Require("resource-group", "app"); err != nil {
		return nil, nil, nil, err
	}
	if err := (appservice.Target{ResourceGroup: vals.String("resource-group"), App: vals.String("app"), Slot: "production"}).Validate(); err != nil {
		return nil, nil, nil, err
	}
	static, err := openStatic(ctx, vals)
	if err != nil {
		return nil, nil, nil, err
	}
	if !needApp {
		return vals, nil, static, nil
	}
	acc, err := env.Azure(vals)
	if err != nil {
		return nil, nil, nil, err
	}
	hc, err := acc.HTTPClient(30 * time.Second)
	if err != nil {
		return nil, nil, nil, err
	}
	app, err := appservice.New(acc.Subscription, acc.Credential, acc.Options, hc, env.azureProgress(vals))
	if err != nil {
		return nil, nil, nil, err
	}
	return vals, app, static, nil
}

func newStatusCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "What production and each slot run now, by content, and who put it there",
		Long: `Status reads what production and every deployment slot run now, and
names each by what was deployed to it: the Kudu deployment a slot runs is
looked up in the release ledger (kept beside the release lock in the state
container), so a slot's DJDEPLOY_RELEASE_ID label that disagrees with its
content is shown as such. A slot whose deployment no release recorded (a
deploy by other means) is flagged.

It also shows a canary in progress (the share of visitors routed to the
slot, and the share whose gate passed) and who holds the release lock.
Nothing is changed.`,
		Example: `  djdeploy status -g my-rg --app my-site --storage-account mysitestatic
  djdeploy status --json | jq -r .result.production.release_id`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, app, static, err := readSetup(cmd.Context(), env, cmd, true)
			if err != nil {
				return err
			}
			st, err := release.ReadStatus(cmd.Context(), app, static,
				appservice.Target{ResourceGroup: vals.String("resource-group"), App: vals.String("app")})
			if err != nil {
				return err
			}
			if env.Result(cmd, st) {
				printStatus(env, st)
			}
			return nil
		},
	}
	bindSettings(cmd, "status")
	return cmd
}

func printStatus(env *Env, st *release.Status) {
	w := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "SLOT\tRELEASE\tDEPLOYMENT\tCOMMIT\tWHEN\tTRAFFIC\n")
	for _, s := range append([]release.SlotStatus{st.Production}, st.Slots...) {
		id := s.ReleaseID
		if id == "" {
			id = "unrecorded"
		}
		when := ""
		if s.When != nil {
			when = s.When.Local().Format("2006-01-02 15:04")
		}
		traffic := ""
		if s.TrafficPercent > 0 {
			traffic = fmt.Sprintf("%g%%", s.TrafficPercent)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Slot, id, orDash(s.Deployment), orDash(shortCommit(s.Commit)), orDash(when), traffic)
	}
	w.Flush()
	for _, s := range append([]release.SlotStatus{st.Production}, st.Slots...) {
		if s.Warning != "" {
			fmt.Fprintf(env.Out, "warning: %s %s\n", s.Slot, s.Warning)
		}
		if s.RunURL != "" && s.Slot == "production" {
			fmt.Fprintf(env.Out, "production was released by %s\n", s.RunURL)
		}
	}
	if st.Canary != nil {
		fmt.Fprintf(env.Out, "canary in progress: release %s on %s gets %g%% of new visitors (gates passed up to %g%%)\n",
			st.Canary.ReleaseID, st.Canary.Slot, st.Canary.Percent, st.Canary.PassedPercent)
	}
	if st.Lock != "" {
		fmt.Fprintf(env.Out, "release lock held by %s\n", st.Lock)
	}
}

func newReleasesCmd(env *Env) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "releases",
		Short: "The release history, newest first: id, commit, trigger, outcome",
		Long: `Releases lists the release ledger, newest first: every release and
rollback that got as far as a release id, with its commit, the CI run that
triggered it, when it started, how long it took, its outcome, the step that
failed, and who held the release lock. The ledger lives in the private state
container beside the lock, so any runner can read it. Nothing is changed.`,
		Example: `  djdeploy releases -g my-rg --app my-site --storage-account mysitestatic
  djdeploy releases --limit 5 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return problem.Usagef("pass --limit 1 or more", "--limit must be 1 or more, not %d", limit)
			}
			vals, _, static, err := readSetup(cmd.Context(), env, cmd, false)
			if err != nil {
				return err
			}
			entries, err := ledger.New(static.Store()).Entries(cmd.Context())
			if err != nil {
				return err
			}
			out := releasesOutput{App: vals.String("app"), Releases: []ledger.Entry{}}
			for _, e := range entries {
				if e.App != "" && !strings.EqualFold(e.App, out.App) {
					continue // another app releasing through the same container and prefix
				}
				if len(out.Releases) < limit {
					out.Releases = append(out.Releases, e)
				}
			}
			if env.Result(cmd, out) {
				printReleases(env, out)
			}
			return nil
		},
	}
	bindSettings(cmd, "releases")
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most this many entries")
	return cmd
}

func printReleases(env *Env, out releasesOutput) {
	if len(out.Releases) == 0 {
		fmt.Fprintf(env.Out, "no release of %s recorded yet\n", out.App)
		return
	}
	w := tabwriter.NewWriter(env.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "RELEASE\tKIND\tOUTCOME\tSTARTED\tDURATION\tCOMMIT\tTRIGGER\n")
	for _, e := range out.Releases {
		outcome := e.Outcome
		if e.FailedStep != "" {
			outcome += " at " + e.FailedStep
		}
		kind := e.Kind
		if e.Kind == ledger.KindRollback && e.From != "" {
			kind += " from " + e.From
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ReleaseID, kind, outcome, e.Start.Local().Format("2006-01-02 15:04"),
			(time.Duration(e.DurationSeconds * float64(time.Second))).Round(time.Second), orDash(shortCommit(e.Commit)), orDash(e.RunURL))
	}
	w.Flush()
}

func newRollbackCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollback [RELEASE]",
		Short: "Put production back on the previous (or a named) release",
		Long: `Rollback puts production back on an earlier release: the one production
ran before the current one, or RELEASE when given (an id 'djdeploy releases'
lists as having reached production). A second rollback goes one further back
(N-2), never to the release the first one undid; a CI re-run of a rollback
that succeeded changes nothing.

Every release keeps its package (app.zip, release.json, its static files)
in the state container beside the ledger, for the last --static-keep
releases that reached production, so a rollback needs no checkout and no
build. When the slot still runs the release's own deployment (checked by
content, not by label), the rollback is a swap; otherwise the package is
deployed to the slot first. Then, as for a release: warm-up, swap, verify,
swap back on failure; the release's un-hashed static files (site.css,
robots.txt) come back after the swap and are purged from the CDN.

The pre-swap command does not run: migrations are not undone (keep them
backward compatible, as for any release). A rollback holds the release lock
and is resumable like a release.`,
		Example: `  # production back to the release before the current one
  djdeploy rollback -g my-rg --app my-site --storage-account mysitestatic

  # to a named release
  djdeploy releases
  djdeploy rollback 3f2a9c0d1e4b5a67`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			want := ""
			if len(args) == 1 {
				want = strings.TrimSpace(args[0])
			}
			out, err := runRollback(cmd.Context(), env, cmd, want)
			if out != nil {
				if out.Outcome == report.Failed && out.ProductionFailureSeconds > 0 {
					env.Outcome(OutcomeRolledBack)
				}
				if env.Result(cmd, out) {
					fmt.Fprint(env.Out, report.Markdown(out, report.MarkdownOptions{}))
				}
			}
			return err
		},
	}
	bindSettings(cmd, "rollback")
	return cmd
}

func runRollback(ctx context.Context, env *Env, cmd *cobra.Command, want string) (*report.Release, error) {
	projectDir := env.ProjectDir(cmd)
	vals, err := env.LoadSettings(cmd, projectDir)
	if err != nil {
		return nil, err
	}
	return rollbackWith(ctx, env, vals, projectDir, want)
}

// rollbackWith is the rollback for the CLI and the CI front ends.
func rollbackWith(ctx context.Context, env *Env, vals *settings.Values, projectDir, want string) (*report.Release, error) {
	if want != "" && !artifact.IsReleaseID(want) {
		return nil, problem.Usagef("pass a release id as 'djdeploy releases' lists it (16 hex digits)", "%q is not a release id", want)
	}
	if len(vals.List("targets")) > 0 {
		return nil, problem.Usagef("roll back each region's app on its own: djdeploy rollback -g RG --app APP",
			"rollback takes one app; targets lists a multi-region rollout")
	}
	rep := env.azureProgress(vals)
	s, err := setupRelease(ctx, env, vals, projectDir, rep)
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	// A rollback is a plain swap: no canary or watch from djdeploy.yaml.
	s.opt.Progressive.Strategy, s.opt.Progressive.Steps, s.opt.Progressive.Watch = "", nil, 0
	t, err := release.ResolveRollback(ctx, s.deps.Static, want, s.opt.Annotations["RunURL"])
	if err != nil {
		return nil, err
	}
	out, err := release.Rollback(ctx, s.deps, s.opt, t, rep)
	if out != nil {
		out.StaticURL = s.opt.StaticURL
	}
	return out, err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
