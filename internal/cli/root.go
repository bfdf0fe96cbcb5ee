// Package cli wires djdeploy's cobra commands to the domain packages. It
// parses flags and settings, calls the domain, prints results on stdout and
// progress on stderr, and turns errors into one message with a fix.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/redact"
	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// Version is set at build time with -ldflags "-X .../cli.Version=v1.2.3".
var Version = ""

// IO are the process's streams.
type IO struct {
	In  io.Reader
	Out io.Writer // results
	Err io.Writer // progress and errors
}

// Env is everything a command needs from its process.
type Env struct {
	IO
	Getenv func(string) string

	json jsonState // what the command hands to its --json envelope
}

// Progress returns the reporter for human progress on stderr: bars and
// spinners when stderr is a terminal, plain lines (with a heartbeat during
// long steps) in a log.
func (e *Env) Progress() progress.Reporter { return e.progressTo(e.Err) }

// progressTo is Progress writing through w (a redacting writer), deciding
// by stderr whether to draw.
func (e *Env) progressTo(w io.Writer) progress.Reporter {
	if f, ok := e.Err.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return progress.NewTerminal(w)
	}
	return progress.NewLines(w)
}

// commands are added by each command's file through register, so that
// commands live in their own files and never edit this one.
type commandFactory struct {
	order int
	make  func(env *Env) *cobra.Command
}

var factories []commandFactory

// orderCommands sorts factories and turns cobra's sorting off, once.
var orderCommands sync.Once

// register adds a top-level command; order sorts them in --help.
func register(order int, f func(env *Env) *cobra.Command) {
	factories = append(factories, commandFactory{order, f})
}

// NewRoot builds the command tree.
func NewRoot(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "djdeploy",
		Short: "Ship Django applications to Azure App Service, with zero downtime",
		Long: `djdeploy ships a Django application to Azure App Service from CI or a shell.

A release builds a reproducible zip, uploads only the changed static files to
Blob Storage, deploys the zip to a staging slot, warms it up, swaps it into
production, verifies it (swapping back on failure), and purges the CDN for
exactly the paths whose content changed. Production keeps serving the previous
release, with all of its static files, whatever step fails.

Settings come from flags, then DJDEPLOY_* (and standard AZURE_*) environment
variables, then djdeploy.yaml in the project, then defaults.
Run 'djdeploy settings' to list them all.

Exit codes: 0 success, 1 failure, 2 bad input (flags, settings, paths).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetIn(env.In)
	root.SetOut(env.Out)
	root.SetErr(env.Err)
	root.SetVersionTemplate("djdeploy {{.Version}}\n")
	root.SetFlagErrorFunc(flagError)

	// Commands appear in release order, not alphabetically. Both are
	// process-wide: set once, as tests run several roots at a time (the
	// race detector caught two parallel tests writing them).
	orderCommands.Do(func() {
		cobra.EnableCommandSorting = false
		sort.SliceStable(factories, func(i, j int) bool { return factories[i].order < factories[j].order })
	})
	for _, f := range factories {
		root.AddCommand(f.make(env))
	}
	root.AddCommand(newVersionCmd(env), newSettingsHelpCmd(env))
	addJSONFlag(root)
	return root
}

// Main runs djdeploy and returns the exit code.
func Main(ctx context.Context, args []string, streams IO, getenv func(string) string) int {
	env := &Env{IO: streams, Getenv: getenv}
	root := NewRoot(env)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		err = classify(err)
	}
	env.finishJSON(cmd, args, err)
	if err == nil {
		return problem.ExitOK
	}
	// The CI adapters (ci.go) report in their CI's own format already.
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	renderError(env.Err, err)
	return problem.ExitCode(err)
}

// renderError prints one message with its fix: never a stack trace.
func renderError(w io.Writer, err error) {
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "error: interrupted; nothing more was changed. Re-run the same command to resume.")
		return
	}
	if p, ok := problem.As(err); ok {
		// err, not p: the context wrapped around a problem (a release's
		// "static-sync step: ") says where it happened.
		fmt.Fprintf(w, "error: %s\n", cutLines(redact.SAS(err.Error())))
		if p.Fix != "" {
			fmt.Fprintf(w, "  fix: %s\n", cutLines(redact.SAS(p.Fix)))
		}
		return
	}
	fmt.Fprintf(w, "error: %s\n", cutLines(redact.SAS(err.Error())))
}

// maxLine is the longest line an error prints: a value quoted whole (a
// file pasted into a variable) would otherwise fill the terminal or log.
const maxLine = 2048

// cutLines cuts each line of s to maxLine bytes, saying how much went.
func cutLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if len(l) > maxLine {
			cut := maxLine
			for cut > 0 && !utf8.RuneStart(l[cut]) {
				cut--
			}
			lines[i] = fmt.Sprintf("%s... (%d more bytes)", l[:cut], len(l)-cut)
		}
	}
	return strings.Join(lines, "\n")
}

// classify turns cobra's own argument errors into usage errors (exit 2).
func classify(err error) error {
	if _, ok := problem.As(err); ok {
		return err
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires ", "invalid argument", "unknown flag", "unknown shorthand"} {
		if strings.HasPrefix(msg, p) {
			return problem.Usagef("run 'djdeploy --help' for the commands and flags", "%s", msg)
		}
	}
	return err
}

// renamedFlags are flags a command once had under another name, with the
// name to use now: a precise hint beats a guess by spelling.
var renamedFlags = map[string]map[string]string{
	"djdeploy emulator":     {"config": "resources"},
	"djdeploy static prune": {"keep": "static-keep", "grace": "static-grace"},
}

// flagError turns pflag's parse errors into one usage message with a fix:
// "did you mean --x?" when a flag of the command is close to the one typed,
// as djdeploy.yaml's unknown keys get.
func flagError(c *cobra.Command, err error) error {
	fix := "run '" + c.CommandPath() + " --help' for the accepted flags"
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		name, _, _ = strings.Cut(name, "=")
		if to, ok := renamedFlags[c.CommandPath()][name]; ok {
			fix = fmt.Sprintf("use --%s (--%s is not a flag of %s)", to, name, c.CommandPath())
		} else {
			var names []string
			c.Flags().VisitAll(func(f *pflag.Flag) {
				if !f.Hidden {
					names = append(names, f.Name)
				}
			})
			if n := settings.NearestOf(name, names); n != "" {
				fix = fmt.Sprintf("did you mean --%s? (run '%s --help' for the accepted flags)", n, c.CommandPath())
			}
		}
	}
	return problem.Usagef(fix, "%s", msg)
}

// bindSettings gives a command the flags of the settings it uses, and
// --config, the settings file those settings may also come from.
func bindSettings(cmd *cobra.Command, name string) {
	cmd.Flags().String("config", "", "settings file (default: djdeploy.yaml in the project folder)")
	settings.BindFlags(cmd.Flags(), settings.ForCommand(name))
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// versionResult is version's result.
type versionResult struct {
	Version string `json:"version"`
}

func newVersionCmd(env *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print djdeploy's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if env.Result(cmd, versionResult{Version: version()}) {
				fmt.Fprintf(env.Out, "djdeploy %s\n", version())
			}
			return nil
		},
	}
}

// LoadSettings resolves settings for a command: its flags, the environment,
// and the settings file (--config, else djdeploy.yaml in projectDir).
func (e *Env) LoadSettings(cmd *cobra.Command, projectDir string) (*settings.Values, error) {
	file, explicit := "", false
	if f := cmd.Flag("config"); f != nil && f.Value.String() != "" {
		file, explicit = f.Value.String(), true
	} else if projectDir != "" {
		file = filepath.Join(projectDir, settings.FileName)
	}
	return settings.LoadWithStdin(cmd.Flags(), e.Getenv, e.In, file, explicit)
}

// ProjectDir returns the --project flag, else DJDEPLOY_PROJECT, else ".".
func (e *Env) ProjectDir(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("project"); f != nil && f.Changed {
		return f.Value.String()
	}
	if p := e.getenv("DJDEPLOY_PROJECT"); p != "" {
		return p
	}
	return "."
}

func (e *Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}
