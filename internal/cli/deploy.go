package cli

import (
	"archive/zip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/spf13/cobra"
)

func init() { register(30, newDeployCmd) }

// deployOutput is deploy's --json summary.
type deployOutput struct {
	*appservice.DeployResult
	Credential     string                    `json:"credential"`
	SettingChanges []appservice.ConfigChange `json:"setting_changes,omitempty"`
	SettingsFixed  bool                      `json:"settings_fixed"`
	StartupCommand string                    `json:"startup_command,omitempty"`
	ReleaseID      string                    `json:"release_id,omitempty"`
}

func newDeployCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy --resource-group RG --app APP [--slot SLOT] --package FILE",
		Short: "Zip-deploy a package to an App Service slot and wait for it",
		Long: `Deploy uploads a zip to an App Service deployment slot with Kudu OneDeploy
(signed in with Microsoft Entra ID; SCM basic auth can stay off) and waits
until App Service reports the app running, or failed.

Before anything is uploaded, the slot's configuration is checked against the
package: release.json beside the zip (from 'djdeploy build') says which app
settings it needs (SCM_DO_BUILD_DURING_DEPLOYMENT for a remote build,
DISABLE_COLLECTSTATIC when static files live in Blob Storage), its Python
version (linuxFxVersion PYTHON|X.Y) and its ASGI module for the startup
command. When they differ, deploy says exactly what to set and stops;
--fix-settings sets them instead (app settings in one write, the runtime and
startup command in another: each write restarts the slot). App setting
values are never printed.

--startup-command auto sets gunicorn with uvicorn workers on the release's
ASGI module, 2 x the plan's vCPUs + 1 workers (--workers overrides); keep
leaves the site's command; anything else is used as the command.

The wait is bounded by --deploy-timeout (default 20m). A deployment already
in progress (HTTP 409) is waited out within it. A failed build or start
prints the tail of the deployment log and exits 1.

--slot production deploys to the site itself; the default slot is staging.

With the static files' storage configured (as for 'djdeploy release'),
deploy holds the release lock while it writes, so it never lands in a slot
a running release is about to swap: it waits up to --lock-timeout for the
holder, then fails naming it.`,
		Example: `  djdeploy deploy -g my-rg --app my-site --package build/app.zip
  djdeploy deploy -g my-rg --app my-site --slot staging --package build/app.zip --fix-settings --json

  # a deployment from a shell, with your Azure CLI sign-in
  djdeploy deploy -g my-rg --app my-site --package app.zip --credential azure-cli`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := env.LoadSettings(cmd, env.ProjectDir(cmd))
			if err != nil {
				return err
			}
			if err := vals.Require("resource-group", "app", "package"); err != nil {
				return err
			}
			// The package is checked before any request: a wrong path is
			// exit 2 at once, not a minute of Resource Manager retries.
			pkg := vals.String("package")
			rel, err := checkPackage(pkg, vals.Bool("fix-settings"))
			if err != nil {
				return err
			}
			acc, err := env.Azure(vals)
			if err != nil {
				return err
			}
			log := env.azureProgress(vals)
			hc, err := acc.HTTPClient(30 * time.Second)
			if err != nil {
				return err
			}
			c, err := appservice.New(acc.Subscription, acc.Credential, acc.Options, hc, log)
			if err != nil {
				return err
			}
			t := appservice.Target{ResourceGroup: vals.String("resource-group"), App: vals.String("app"), Slot: vals.String("slot")}
			py := ""
			if vals.Get("python-version").Source != settings.FromDefault {
				py = vals.String("python-version")
			}
			lock, err := env.holdReleaseLock(cmd.Context(), vals, "deploy")
			if err != nil {
				return err
			}
			defer env.releaseLockWhenDone(cmd.Context(), lock)
			cfg, err := c.EnsureConfig(cmd.Context(), appservice.ConfigOptions{
				Target:         t,
				Release:        rel,
				PythonVersion:  py,
				StartupCommand: vals.String("startup-command"),
				Workers:        vals.Int("workers"),
				Fix:            vals.Bool("fix-settings"),
			})
			if err != nil {
				return err
			}
			if err := lock.Check(cmd.Context()); err != nil {
				return problem.Failf("re-run the deploy once the other release has finished", "lost the release lock before deploying: %v", err)
			}
			stop := progress.Long(log, "deploying "+filepath.Base(pkg)+" to "+t.String())
			res, err := c.Deploy(cmd.Context(), appservice.DeployOptions{Target: t, Package: pkg, Timeout: vals.Duration("deploy-timeout")})
			stop()
			if err != nil {
				return err
			}
			out := deployOutput{DeployResult: res, Credential: acc.CredentialKind(), SettingChanges: cfg.Changes,
				SettingsFixed: cfg.Applied, StartupCommand: cfg.StartupCommand}
			if rel != nil {
				out.ReleaseID = rel.ReleaseID
			}
			res.Warnings = append(res.Warnings, cfg.Warnings...)
			if !env.Result(cmd, out) {
				return nil
			}
			fmt.Fprintf(env.Out, "deployed %s to %s: deployment %s %s in %s\n", pkg, res.Target, res.DeploymentID, res.Status,
				time.Duration(res.Seconds*float64(time.Second)).Round(time.Second))
			if cfg.Applied {
				var names []string
				for _, ch := range cfg.Changes {
					names = append(names, ch.Name)
				}
				fmt.Fprintf(env.Out, "  settings set: %s\n", strings.Join(names, ", "))
			}
			return nil
		},
	}
	bindSettings(cmd, "deploy")
	return cmd
}

// checkPackage checks the zip to deploy, and reads release.json beside it:
// it must exist, be a file and a zip archive, and with fix (--fix-settings,
// which sets what release.json asks for) release.json must be there.
func checkPackage(pkg string, fix bool) (*appservice.Release, error) {
	fixPath := "give the app.zip that 'djdeploy build --out DIR' wrote (DIR/app.zip, release.json beside it)"
	st, err := os.Stat(pkg)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, problem.Usagef(fixPath, "package %s does not exist", pkg)
	case err != nil:
		return nil, problem.Usagef(fixPath, "cannot read package %s: %v", pkg, err)
	case st.IsDir():
		return nil, problem.Usagef(fixPath, "package %s is a folder, not a zip file", pkg)
	}
	zr, err := zip.OpenReader(pkg)
	if err != nil {
		return nil, problem.Usagef(fixPath, "package %s is not a zip archive: %v", pkg, err)
	}
	zr.Close()
	rel, err := appservice.ReadRelease(pkg)
	if err != nil {
		return nil, err
	}
	if rel == nil && fix {
		return nil, problem.Usagef("deploy the app.zip of a 'djdeploy build --out DIR' folder, or drop --fix-settings and set the slot's settings yourself",
			"--fix-settings sets what the release needs, from release.json beside the package, and there is none: %s", filepath.Join(filepath.Dir(pkg), "release.json"))
	}
	return rel, nil
}
