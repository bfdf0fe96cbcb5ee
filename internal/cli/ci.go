package cli

import (
	"context"
	"io"

	"github.com/djdeploy/djdeploy/internal/ci/azdo"
	"github.com/djdeploy/djdeploy/internal/ci/github"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/spf13/cobra"
)

func init() { register(80, newCICmd) }

// ciRunner runs the command the settings name (settings "command": release,
// build, static, deploy, swap or purge) for the CI front ends and returns its
// report. The release command's file sets it in its init, so that this file
// needs no knowledge of the domain packages.
var ciRunner func(ctx context.Context, env *Env, v *settings.Values, rep progress.Reporter) (*report.Release, error)

// ciRun runs the step for an adapter. With --json the report is cmd's
// result, and everything else the step prints (the CI's workflow commands,
// a part's own output) goes to stderr, which both CIs read commands from
// too, so that stdout is the one JSON document.
func ciRun(env *Env, cmd *cobra.Command) func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
	return func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
		if ciRunner == nil {
			return nil, problem.Failf("use a released djdeploy", "this djdeploy binary was built without the release command")
		}
		run := env
		if wantsJSON(cmd) {
			run = &Env{IO: IO{In: env.In, Out: env.Err, Err: env.Err}, Getenv: env.Getenv}
		}
		out, err := ciRunner(ctx, run, v, rep)
		if out != nil {
			env.Result(cmd, out)
		}
		return out, err
	}
}

// ciStdout is where an adapter writes its CI's workflow commands.
func ciStdout(env *Env, cmd *cobra.Command) io.Writer {
	if wantsJSON(cmd) {
		return env.Err
	}
	return env.Out
}

// ciExit turns an adapter's exit code into cmd's error.
func ciExit(env *Env, code int) error {
	if code == problem.ExitOK {
		return nil
	}
	e := exitError{code: code}
	if r, ok := env.json.result.(*report.Release); ok && r != nil && r.Error != "" {
		e.msg = r.Error
	}
	return e
}

// exitError carries an adapter's exit code, already reported in the CI's
// own format, through cobra. msg and fix are for the --json envelope only:
// stderr already says what went wrong.
type exitError struct {
	code     int
	msg, fix string
}

func (e exitError) Error() string { return "" }

func newCICmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "Run inside a CI step: the GitHub Action and the Azure Pipelines templates call this",
		Long: `djdeploy ci runs the command named by the "command" setting (release by
default) inside a CI step, speaking the CI's own language: masked secrets, a
log group per step, outputs, annotations, a job summary, and deployment
records or build tags.

You rarely call it yourself: the GitHub Action's image runs 'djdeploy ci
github', and the Azure Pipelines templates run 'djdeploy ci azure-pipelines'.
Settings come from the action's inputs (INPUT_*) or the templates'
parameters (mapped to DJDEPLOY_*/AZURE_* variables), then djdeploy.yaml.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "github",
		Short:   "Run as a GitHub Action step (inputs from INPUT_*)",
		Example: "  # what the action's entrypoint runs\n  djdeploy ci github",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			code := github.Run(c.Context(), github.Options{Getenv: env.getenv, Stdout: ciStdout(env, c)}, ciRun(env, c))
			return ciExit(env, code)
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "azure-pipelines",
		Aliases: []string{"azdo"},
		Short:   "Run as an Azure Pipelines script step (settings from the environment)",
		Example: "  # what pipelines/steps/djdeploy.yml runs\n  DJDEPLOY_COMMAND=release djdeploy ci azure-pipelines",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			code := azdo.Run(c.Context(), azdo.Options{Getenv: env.getenv, Stdout: ciStdout(env, c)}, ciRun(env, c))
			return ciExit(env, code)
		},
	})
	return cmd
}
