package cli

import (
	"fmt"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/spf13/cobra"
)

func init() { register(40, newSwapCmd) }

func newSwapCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "swap --resource-group RG --app APP --slot SLOT",
		Short: "Warm up a slot, swap it into production, verify, swap back on failure",
		Long: `Swap moves a deployment slot into production (or --target slot) without
downtime, and makes sure production still works afterwards.

  1. warm-up: the slot's health path is requested until it answers with an
     accepted status (--health-statuses, default 200-399; a redirect to a
     sign-in page never counts), for at most --warmup-timeout (5m). If it
     never does, nothing is swapped and production is untouched.
  2. swap: Azure's slot swap, waited for within --swap-timeout (30m).
  3. verify: production's health path must answer healthy (and, with
     --expect-release, report that release id in its body or an X-Release-Id
     header) within --verify-timeout (2m).
  4. if verification fails, the swap is undone at once (unless --no-rollback)
     and the command exits 1.

The health path is --health-path, else the site's health check path, else
WEBSITE_SWAP_WARMUP_PING_PATH, else /.

--action preview applies production's slot settings to the slot and warms
it up (swap with preview, phase 1); --action complete finishes it; --action
cancel restores the slot's own settings.

With the static files' storage configured (as for 'djdeploy release'), swap
holds the release lock, waiting up to --lock-timeout for a running release.`,
		Example: `  djdeploy swap -g my-rg --app my-site --slot staging
  djdeploy swap -g my-rg --app my-site --slot staging --expect-release 2024-05-01.3 --json

  # swap with preview
  djdeploy swap -g my-rg --app my-site --slot staging --action preview
  djdeploy swap -g my-rg --app my-site --slot staging --action complete`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := env.LoadSettings(cmd, env.ProjectDir(cmd))
			if err != nil {
				return err
			}
			if err := vals.Require("resource-group", "app", "slot"); err != nil {
				return err
			}
			warm, verify, err := healthChecks(vals)
			if err != nil {
				return err
			}
			acc, err := env.Azure(vals)
			if err != nil {
				return err
			}
			hc, err := acc.HTTPClient(30 * time.Second)
			if err != nil {
				return err
			}
			log := env.azureProgress(vals)
			c, err := appservice.New(acc.Subscription, acc.Credential, acc.Options, hc, log)
			if err != nil {
				return err
			}
			plan := appservice.SwapPlan{
				Swap: appservice.SwapSpec{
					Target:  appservice.Target{ResourceGroup: vals.String("resource-group"), App: vals.String("app"), Slot: vals.String("slot")},
					With:    vals.String("target"),
					Timeout: vals.Duration("swap-timeout"),
				},
				Action:     vals.String("action"),
				WarmUp:     warm,
				Verify:     verify,
				NoRollback: vals.Bool("no-rollback"),
			}
			if plan.Swap.Target.IsProduction() {
				return problem.Usagef("give the deployment slot with --slot (e.g. staging)", "swap needs a deployment slot, not production")
			}
			lock, err := env.holdReleaseLock(cmd.Context(), vals, "swap")
			if err != nil {
				return err
			}
			defer env.releaseLockWhenDone(cmd.Context(), lock)
			stop := progress.Long(log, plan.Action+" "+plan.Swap.Target.String())
			rep, err := c.RunSwap(cmd.Context(), plan)
			stop()
			// The result goes out on failure too: it says whether the swap
			// happened and whether it was undone.
			human := true
			if rep != nil {
				human = env.Result(cmd, rep)
				if rep.RolledBack {
					env.Outcome(OutcomeRolledBack)
				}
			}
			if err != nil {
				return err
			}
			if human {
				switch rep.Action {
				case "preview":
					fmt.Fprintf(env.Out, "swap with preview started: %s runs with %s's settings and answers %s\n", rep.Slot, rep.Target, rep.WarmUp.URL)
				case "cancel":
					fmt.Fprintf(env.Out, "swap with preview cancelled: %s has its own settings again\n", rep.Slot)
				default:
					fmt.Fprintf(env.Out, "swapped %s into %s; %s answers %d\n", rep.Slot, rep.Target, rep.Verify.URL, rep.Verify.Status)
				}
			}
			return nil
		},
	}
	bindSettings(cmd, "swap")
	return cmd
}
