package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/spf13/cobra"
)

func init() { register(90, newEmulatorCmd) }

func newEmulatorCmd(env *Env) *cobra.Command {
	var (
		python, envFile, stateDir, storageConn, resources string
		storageConnFile                                   string
		faults                                            []string
		noAzurite                                         bool
		armPort, workers                                  int
		startTimeout                                      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "emulator",
		Short: "Run a local App Service, Resource Manager and CDN that really run the app",
		Long: `Run a local stand-in for Azure on 127.0.0.1: Resource Manager (sites, slots,
app settings, swaps, deployment status, CDN and Front Door purges), Kudu
(zip deploy / OneDeploy) for every slot, an app host per slot that runs the
deployed Django app with gunicorn + uvicorn, a caching CDN host per endpoint in
front of Blob Storage (Azurite), and a token authority (TLS, its own CA).

It prints what it serves and a block of 'export NAME=value' lines; 'djdeploy
release' run with them needs no other setting. It runs until Ctrl-C, then
stops the app processes and Azurite it started.

Without --resources it serves demo-app (group demo-rg) with a staging slot, a
Front Door Standard profile demo-fd (endpoint demo-fd-ep) and a classic CDN
profile demo-cdn (endpoint demo-cdn-ep). A resources file is YAML:

  resourceGroup: my-rg
  apps:
    - name: my-app
      slots: [staging]
      plan: {sku: P1v3}
      appSettings: {DJANGO_SETTINGS_MODULE: mysite.settings}
      stickySettings: [DJANGO_SETTINGS_MODULE]
  cdn:
    - name: my-fd
      sku: Standard_AzureFrontDoor
      endpoints: [{name: my-ep, originPath: ""}]

The admin API under /_emulator/ wants "Authorization: Bearer
$DJDEPLOY_EMULATOR_ADMIN_SECRET" (in the export block only), a loopback Host
and JSON bodies.

Faults (--fault ROUTE=SPEC, repeatable; also POST /_emulator/faults):
  'POST */slotsswap=429,retry-after=1,count=2'   throttle the next 2 swaps
  '/api/publish=drop'                            drop the next publish
  '*/purge=503,count=-1'                         every purge fails
  'GET */sites/*=delay=3s'                       slow site reads`,
		Example: `  djdeploy emulator --env-file .emulator.env &
  . ./.emulator.env && djdeploy release --project examples/django-app

  djdeploy emulator --resources emulator.yaml --fault 'POST */slotsswap=409'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case workers < 1 || workers > 128:
				return problem.Usagef("give --workers from 1 to 128", "--workers %d is out of range (1 to 128)", workers)
			case startTimeout < time.Second || startTimeout > time.Hour:
				return problem.Usagef("give --start-timeout from 1s to 1h", "--start-timeout %s is out of range (1s to 1h)", startTimeout)
			case armPort < 0 || armPort > 65535:
				return problem.Usagef("give --arm-port from 1 to 65535, or 0 for any free port", "--arm-port %d is not a port", armPort)
			}
			if cmd.Flags().Changed("storage-connection-string") {
				return problem.Usagef("put it in a file and pass --storage-connection-string-file FILE (- reads stdin)",
					"--storage-connection-string is a secret and is not taken on the command line, where other users and shell history see it")
			}
			if storageConnFile != "" {
				b, err := readFileOrStdin(storageConnFile, env.In)
				if err != nil {
					return problem.Wrap(err, "give a readable file", "reading --storage-connection-string-file")
				}
				storageConn = strings.TrimSpace(string(b))
			}
			cfg := emulator.Config{
				Python: python, StateDir: stateDir, ARMPort: armPort, Workers: workers,
				StartTimeout: startTimeout, Log: env.Err,
				StartAzurite: !noAzurite && storageConn == "", AzuriteConnectionString: storageConn,
			}
			if resources != "" {
				res, err := emulator.LoadResources(resources)
				if err != nil {
					return problem.Usagef("fix the emulator's resources file (see 'djdeploy emulator --help')", "%v", err)
				}
				cfg.Resources = res
			}
			for _, s := range faults {
				f, err := emulator.ParseFault(s)
				if err != nil {
					return problem.Usagef("see 'djdeploy emulator --help' for the fault syntax", "%v", err)
				}
				cfg.Faults = append(cfg.Faults, f)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			emu, err := emulator.Start(ctx, cfg)
			if err != nil {
				return problem.Wrap(err, "check --python, --state-dir and that Azurite is installed ('make deps')", "starting the emulator")
			}
			defer emu.Close()
			printServing(env, emu)
			block := emu.ExportBlock()
			if envFile != "" {
				if err := os.WriteFile(envFile, []byte(block), 0o600); err != nil {
					return problem.Wrap(err, "give a writable --env-file path", "writing %s", envFile)
				}
				fmt.Fprintf(env.Err, "wrote the export block to %s\n", envFile)
			}
			// With --json the settings are printed as soon as the emulator
			// is ready, as the export block is: it runs until stopped.
			env.Outcome(OutcomeRunning)
			if env.Result(cmd, emulatorResult{Env: emu.Env(), StateDir: emu.StateDir(), ARMEndpoint: emu.ARMTLSEndpoint(), EnvFile: envFile}) {
				fmt.Fprint(env.Out, block)
			} else if err := env.EmitNow(cmd); err != nil {
				return err
			}
			fmt.Fprintln(env.Err, "emulator ready; Ctrl-C stops it")
			<-ctx.Done()
			fmt.Fprintln(env.Err, "stopping the emulator (app processes, Azurite)")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&python, "python", "", "Python of the apps: makes the build's antenv, and runs packages deployed without a build (default python3 on PATH)")
	f.StringVar(&resources, "resources", "", "YAML file of the apps, slots and CDN profiles to serve (see above; default: the demo resources)")
	f.StringVar(&envFile, "env-file", "", "also write the export block to this file")
	f.StringVar(&stateDir, "state-dir", "", "folder for app releases, logs and the CA file (default: a temporary folder removed at exit)")
	f.StringVar(&storageConn, "storage-connection-string", "", "refused: a secret on the command line")
	_ = f.MarkHidden("storage-connection-string")
	f.StringVar(&storageConnFile, "storage-connection-string-file", "", "file holding the connection string of a Blob service to use instead of starting Azurite ('-' reads stdin)")
	f.BoolVar(&noAzurite, "no-azurite", false, "run without Blob storage (no CDN origin, no static files)")
	f.StringArrayVar(&faults, "fault", nil, "inject a fault: ROUTE=SPEC (repeatable; see above)")
	f.IntVar(&armPort, "arm-port", 0, "fixed port for Resource Manager (default: any free port)")
	f.IntVar(&workers, "workers", 1, "gunicorn workers of the default startup command")
	f.DurationVar(&startTimeout, "start-timeout", 90*time.Second, "how long a deployed app may take to answer HTTP")
	return cmd
}

// emulatorResult is what the emulator serves, printed when it is ready.
type emulatorResult struct {
	// Env is the export block as data: the settings 'djdeploy release'
	// needs to use the emulator (the admin secret among them).
	Env         map[string]string `json:"env"`
	ARMEndpoint string            `json:"arm_endpoint"`
	StateDir    string            `json:"state_dir"`
	EnvFile     string            `json:"env_file"`
}

// readFileOrStdin reads path, or r for "-" (at most 1 MiB).
func readFileOrStdin(path string, r io.Reader) ([]byte, error) {
	if path != "-" {
		return os.ReadFile(path)
	}
	if r == nil {
		return nil, fmt.Errorf("no standard input")
	}
	return io.ReadAll(io.LimitReader(r, 1<<20))
}

func printServing(env *Env, emu *emulator.Emulator) {
	w := env.Err
	res := emu.Resources()
	fmt.Fprintf(w, "djdeploy emulator (subscription %s, tenant %s)\n", res.Subscription, res.Tenant)
	fmt.Fprintf(w, "  Resource Manager  %s (also plain http on the same port)\n", emu.ARMTLSEndpoint())
	fmt.Fprintf(w, "  token authority   %s (CA %s; client %s)\n", emu.AuthorityHost(), emu.CAFile(), emu.ClientID())
	fmt.Fprintf(w, "  admin             %s/state\n", emu.AdminURL())
	for _, a := range res.Apps {
		for _, s := range append([]string{"production"}, a.Slots...) {
			fmt.Fprintf(w, "  %s/%-10s  app %s  kudu %s\n", a.Name, s, emu.SlotURL(a.Name, s), emu.SCMURL(a.Name, s))
		}
	}
	for _, p := range res.CDN {
		for _, ep := range p.Endpoints {
			fmt.Fprintf(w, "  %s/%s (%s)  %s\n", p.Name, ep.Name, p.SKU, emu.CDNURL(p.Name, ep.Name))
		}
	}
	if c := emu.StorageConnectionString(); c != "" {
		fmt.Fprintf(w, "  blob storage      container %q\n", res.StaticContainer)
	}
	fmt.Fprintf(w, "  app state         %s\n", emu.StateDir())
}
