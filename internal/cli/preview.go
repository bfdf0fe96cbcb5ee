package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/release"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/spf13/cobra"
)

func init() { register(7, newPreviewCmd) }

// notForPreview are release settings that change nothing for a preview: it
// never swaps, purges, prunes or runs the pre-swap command, and its slot is
// always pr-<number>.
var notForPreview = map[string]bool{
	"slot": true, "swap-timeout": true, "verify-timeout": true, "no-rollback": true, "swap-back-after": true,
	"pre-swap-command": true, "pre-swap-where": true, "check-release": true,
	"domain": true, "purge-max-requests": true, "purge-timeout": true,
	"static-keep": true, "static-grace": true, "skip": true,
	// progressive delivery happens at the swap, which a preview never does
	"strategy": true, "canary-steps": true, "canary-interval": true, "max-failure-rate": true,
	"max-p95": true, "min-requests": true, "watch": true, "app-insights": true,
	"app-insights-endpoint": true, "targets": true, "on-wave-failure": true,
	// Front Door's origin is taken out of rotation for a swap only
	"origin-rotation": true,
}

func newPreviewCmd(env *Env) *cobra.Command {
	var del bool
	cmd := &cobra.Command{
		Use:   "preview --pr N [--delete]",
		Short: "Deploy a pull request to its own slot, pr-<number>, and check it serves that release",
		Long: `Preview deploys a pull request to its own deployment slot, pr-<number>, and
never swaps it: production and the release slot are not touched.

  1. slot      created on first use from production's configuration: its
               plan, runtime, startup command, health check path, and its
               app settings and connection strings except the slot settings
               (slotConfigNames: a production database stays production's).
               Free and Basic plans have no slots, and a plan's slot limit
               (Standard 5, Premium 20) is checked before anything is made.
  2. build, static-sync, deploy as a release does (static files only add).
  3. warm-up   the slot's health path must answer with this release's id
               (body or X-Release-Id, from DJDEPLOY_RELEASE_ID), so the URL
               reported serves this pull request's code, not an older one.

No pre-swap command runs (it would change the database production uses),
and nothing is purged or pruned.

--delete removes the pull request's slot (run it when the pull request
closes); the static files of its release are left to prune.

In CI, 'command: preview' does the same, takes the number from the event,
and comments the URL on the pull request (one comment, updated on every
push); a closed pull request's event deletes the slot.`,
		Example: `  djdeploy preview -g my-rg --app my-site --pr 42
  djdeploy preview -g my-rg --app my-site --pr 42 --delete`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			projectDir := env.ProjectDir(cmd)
			vals, err := env.LoadSettings(cmd, projectDir)
			if err != nil {
				return err
			}
			rep := env.azureProgress(vals)
			out, err := runPreview(cmd.Context(), env, vals, projectDir, rep, del || vals.Bool("preview-delete"))
			if out != nil && env.Result(cmd, out) && err == nil {
				printPreview(env, out, del)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&del, "delete", false, "delete the pull request's slot instead of deploying")
	cmd.Flags().String("config", "", "settings file (default: djdeploy.yaml in the project folder)")
	var ss []settings.Setting
	for _, s := range append(settings.ForCommand("release"), settings.ForCommand("preview")...) {
		if !notForPreview[s.Name] {
			ss = append(ss, s)
		}
	}
	settings.BindFlags(cmd.Flags(), ss)
	return cmd
}

func printPreview(env *Env, r *report.Release, deleted bool) {
	if deleted {
		fmt.Fprintf(env.Out, "preview slot %s of %s: %s\n", r.Slot, r.App, r.Steps[0].Detail)
		return
	}
	fmt.Fprintf(env.Out, "preview of release %s on slot %s: %s\n", r.ReleaseID, r.Slot, r.SlotURL)
}

// runPreview deploys a pull request to its slot (or deletes the slot) and
// returns the report the CI front ends comment from.
func runPreview(ctx context.Context, env *Env, vals *settings.Values, projectDir string, rep progress.Reporter, del bool) (*report.Release, error) {
	if err := vals.Require("resource-group", "app", "pr"); err != nil {
		return nil, err
	}
	// The slot's name is checked before any request: a bad number or a
	// name too long for App Service is exit 2 with nothing created.
	t, err := appservice.PreviewTarget(vals.String("resource-group"), vals.String("app"), vals.String("pr"))
	if err != nil {
		return nil, err
	}
	if del {
		return deletePreview(ctx, env, vals, t, rep)
	}
	s, err := setupReleaseTo(ctx, env, vals, projectDir, rep, t.Slot)
	if err != nil {
		return nil, err
	}
	defer s.cleanup()
	if err := applyCORS(ctx, s, vals, rep); err != nil {
		return nil, err
	}
	end := progress.Step(rep, "slot")
	ens, err := s.deps.App.EnsureSlot(ctx, t)
	end()
	if err != nil {
		return nil, err
	}
	if ens.Created {
		rep.Infof("slot %s created from production's configuration; slot settings left with production: %d", t, len(ens.Sticky))
	}
	s.opt.Preview = true
	s.opt.Progressive = release.Progressive{} // no canary or watch: nothing is swapped
	out, err := release.Run(ctx, s.deps, s.opt, rep)
	if out != nil {
		out.StaticURL = s.opt.StaticURL
	}
	return out, err
}

func deletePreview(ctx context.Context, env *Env, vals *settings.Values, t appservice.Target, rep progress.Reporter) (*report.Release, error) {
	started := time.Now()
	out := &report.Release{App: t.App, Slot: t.Slot, Started: started, Outcome: report.Succeeded,
		Steps: []report.Step{{Name: "delete-slot", Status: report.StepDone, Started: started}}}
	acc, err := env.Azure(vals)
	if err != nil {
		return nil, err
	}
	hc, err := acc.HTTPClient(30 * time.Second)
	if err != nil {
		return nil, err
	}
	c, err := appservice.New(acc.Subscription, acc.Credential, acc.Options, hc, rep)
	if err != nil {
		return nil, err
	}
	deleted, err := c.DeleteSlot(ctx, t)
	out.Duration = time.Since(started)
	out.Steps[0].Duration = out.Duration
	if err != nil {
		out.Outcome, out.FailedStep, out.Error = report.Failed, "delete-slot", err.Error()
		out.Steps[0].Status, out.Steps[0].Detail = report.StepFailed, err.Error()
		return out, err
	}
	if deleted {
		out.Steps[0].Detail = "deleted"
	} else {
		out.Steps[0].Status, out.Steps[0].Detail = report.StepSkipped, "already gone"
	}
	return out, nil
}
