package cli

import (
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/doctor"
	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/spf13/cobra"
)

func init() { register(60, newDoctorCmd) }

// doctorResult is doctor's result: the report, and whether it fails.
type doctorResult struct {
	*doctor.Report
	Strict bool `json:"strict"`
	Failed bool `json:"failed"`
}

func newDoctorCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor --resource-group RG --app APP [--slot SLOT] [--project DIR]",
		Short: "Check an app's Azure and Django configuration against the deployment checklist",
		Long: `Doctor reads the app's configuration and reports what Django's deployment
checklist and the "Django on Azure" talk warn about, each finding with a
one-line fix. It changes nothing.

From Azure (the site, or --slot when one is given):
  https-only          HTTPS Only off                                   error
  scm-basic-auth      SCM (Kudu) basic auth allowed                    warning
  ftp-basic-auth      FTP basic auth allowed                           warning
  ftp-plain           plain FTP allowed (ftpsState AllAllowed)         warning
  health-check        no health check path                             warning
  always-on           Always On off on a production plan               warning (info on Basic)
  db-firewall-open    database firewall rule 0.0.0.0-255.255.255.255   error
  db-firewall-azure   "allow Azure services" rule 0.0.0.0-0.0.0.0      warning
  db-firewall-wide    a rule wider than 65536 addresses                warning

From the Django settings, loaded with the slot's app settings and connection
strings as environment, as App Service runs them (--project; --python picks
the interpreter, default the project's .venv, else python3):
  debug               DEBUG on                                         error
  allowed-hosts       ALLOWED_HOSTS empty                              error
                      ... not accepting the site's host name           warning
                      ... '*'                                          info
  secret-key-in-code  SECRET_KEY = '<literal>', or the key in effect is
                      a literal of the settings files (a fallback)     error
  secret-key-missing  SECRET_KEY empty                                 error
  secret-key-weak     short or django-insecure- key                    warning
  static-files        static files served by the app (whitenoise), a
                      relative STATIC_URL while a CDN is configured, or
                      nothing serving them                             warning
  django-settings     the settings could not be loaded                 warning
Without --project, an app setting DEBUG/DJANGO_DEBUG that is true is still
reported.

The database servers checked are --db-server (a resource id, or a name in
--db-resource-group), else those whose host names
(<name>.postgres.database.azure.com, <name>.mysql.database.azure.com) appear
in the app settings, connection strings or DATABASES.

App setting values are used, never printed.

Exit status: 0 when there is no error finding (with --strict, no warning
either), 1 otherwise, 2 on bad input.`,
		Example: `  djdeploy doctor -g my-rg --app my-site
  djdeploy doctor -g my-rg --app my-site --slot staging --project . --python .venv/bin/python
  djdeploy doctor -g my-rg --app my-site --db-server /subscriptions/.../providers/Microsoft.DBforPostgreSQL/flexibleServers/my-db
  djdeploy doctor -g my-rg --app my-site --strict --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := env.LoadSettings(cmd, env.ProjectDir(cmd))
			if err != nil {
				return err
			}
			if err := vals.Require("resource-group", "app"); err != nil {
				return err
			}
			// The slot setting defaults to the release's staging slot;
			// doctor checks production unless a slot is asked for.
			slot := ""
			if vals.Get("slot").Source != settings.FromDefault {
				slot = vals.String("slot")
			}
			project := ""
			if vals.Get("project").Source != settings.FromDefault {
				project = vals.String("project")
			}
			cdn := ""
			if p, e := vals.String("cdn-profile"), vals.String("cdn-endpoint"); p != "" || e != "" {
				cdn = strings.Trim(p+"/"+e, "/")
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
			app, err := appservice.New(acc.Subscription, acc.Credential, acc.Options, hc, log)
			if err != nil {
				return err
			}
			fw, err := doctor.NewARMFirewall(acc.Subscription, acc.Credential, acc.Options)
			if err != nil {
				return err
			}
			rep, err := doctor.Run(cmd.Context(), doctor.Options{
				Target:          appservice.Target{ResourceGroup: vals.String("resource-group"), App: vals.String("app"), Slot: slot},
				CDN:             cdn,
				ProjectDir:      project,
				Python:          vals.String("python"),
				DBServer:        vals.String("db-server"),
				DBResourceGroup: vals.String("db-resource-group"),
				Getenv:          env.getenv,
			}, app, fw, log)
			if err != nil {
				return err
			}
			strict := vals.Bool("strict")
			if env.Result(cmd, doctorResult{rep, strict, rep.Failed(strict)}) {
				if err := doctor.WriteTable(env.Out, rep, strict); err != nil {
					return err
				}
			}
			if rep.Failed(strict) {
				// The findings are the message; exit 1 without repeating them.
				return exitError{code: 1, msg: "doctor found problems that fail the check",
					fix: "fix the findings in the result (each has its fix), then run doctor again"}
			}
			return nil
		},
	}
	bindSettings(cmd, "doctor")
	// The slot setting's default (staging) is the release's slot; doctor
	// checks production unless a slot is given, and says so.
	if f := cmd.Flags().Lookup("slot"); f != nil {
		f.Usage = "deployment slot to check instead of production (default: production, the site itself) [$DJDEPLOY_SLOT]"
	}
	return cmd
}
