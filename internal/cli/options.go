package cli

import (
	"strconv"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/settings"
)

// buildOptions turns the build settings into artifact options; build and
// release share it.
func buildOptions(env *Env, vals *settings.Values, projectDir string) (artifact.Options, error) {
	buildEnv, err := parseBuildEnv(vals.List("build-env"))
	if err != nil {
		return artifact.Options{}, err
	}
	opt := artifact.Options{
		ProjectDir:     projectDir,
		OutDir:         vals.String("out"),
		Python:         vals.String("python"),
		PythonVersion:  vals.String("python-version"),
		SettingsModule: vals.String("settings-module"),
		DependencyMode: strings.ToLower(vals.String("dependency-mode")),
		BuildVenv:      strings.ToLower(vals.String("build-venv")),
		WheelDir:       vals.String("wheel-dir"),
		PipIndexURL:    vals.String("pip-index-url"),
		FailOnCheck:    vals.Bool("fail-on-check"),
		Env:            buildEnv,
		Getenv:         env.getenv,
	}
	if sde := env.getenv("SOURCE_DATE_EPOCH"); sde != "" {
		n, err := strconv.ParseInt(sde, 10, 64)
		if err != nil {
			return opt, problem.Usagef("set it to seconds since 1970, e.g. $(git log -1 --format=%ct)", "SOURCE_DATE_EPOCH %q is not a number", sde)
		}
		opt.ModTime = time.Unix(n, 0).UTC()
	}
	return opt, nil
}

// healthChecks turns the health settings into the warm-up and verification
// probes; swap and release share it.
func healthChecks(vals *settings.Values) (warm, verify appservice.HealthCheck, err error) {
	statuses, err := appservice.ParseStatuses(vals.List("health-statuses"))
	if err != nil {
		return warm, verify, err
	}
	warm = appservice.HealthCheck{Path: vals.String("health-path"), Statuses: statuses, Timeout: vals.Duration("warmup-timeout")}
	verify = appservice.HealthCheck{Path: vals.String("health-path"), Statuses: statuses, Timeout: vals.Duration("verify-timeout"), ExpectRelease: vals.String("expect-release"), MaxServerErrors: vals.Int("swap-back-after")}
	return warm, verify, nil
}
