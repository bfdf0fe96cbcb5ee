package cli

import (
	"fmt"
	"strings"

	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/spf13/cobra"
)

func init() { register(10, newBuildCmd) }

// buildSummary is `djdeploy build --json`.
type buildSummary struct {
	ReleaseID      string           `json:"release_id"`
	OutDir         string           `json:"out_dir"`
	ReleaseJSON    string           `json:"release_json"`
	AppZip         buildZipSummary  `json:"app_zip"`
	Static         buildStatSummary `json:"static"`
	Checks         int              `json:"checks"`
	DependencyMode string           `json:"dependency_mode"`
	DjangoVersion  string           `json:"django_version"`
	SettingsModule string           `json:"settings_module"`
	Python         string           `json:"python"`
}

type buildZipSummary struct {
	Path   string `json:"path"`
	Files  int    `json:"files"`
	Bytes  int64  `json:"bytes"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type buildStatSummary struct {
	Dir    string `json:"dir"`
	Files  int    `json:"files"`
	Bytes  int64  `json:"bytes"`
	Hashed int    `json:"hashed"`
}

func newBuildCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "build --out DIR [--project DIR]",
		Short: "Build the zip App Service runs and collect the static files",
		Long: `Build turns a Django project folder into what App Service runs, plus the
static files that go to Blob Storage. In --out it writes:

  app.zip       the project, reproducible (same input, same bytes), without
                .git, __pycache__, virtualenvs, node_modules, .env files, the
                collected static files, and whatever .djdeployignore names;
                the hashing storage's staticfiles.json ships at STATIC_ROOT
  static/       the output of 'manage.py collectstatic'
  release.json  the manifest later steps read: release id, zip digest, app
                settings the release needs, check --deploy findings, and every
                static file with its MD5 and content type

manage.py runs with your settings module through a generated shim that only
moves STATIC_ROOT; your files are never edited. It sees the environment the
app will have (build-env), not the CI runner's. check --deploy findings are
reported, and fatal with --fail-on-check.

Dependencies: with dependency-mode remote (default) App Service installs
requirements.txt during deployment; with local, wheels for App Service's
Linux and Python version are vendored into .python_packages/lib/site-packages.`,
		Example: `  # the example app, with the Django of a virtualenv
  djdeploy build --project examples/django-app --out /tmp/build --python .venv/bin/python

  # vendor dependencies from a wheel folder, tell collectstatic the CDN URL
  djdeploy build --out dist --dependency-mode local --wheel-dir wheels \
    --build-env STATIC_URL=https://cdn.example.net/static/

  # machine-readable summary on stdout
  djdeploy build --out dist --json | jq .result.release_id`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			projectDir := env.ProjectDir(cmd)
			vals, err := env.LoadSettings(cmd, projectDir)
			if err != nil {
				return err
			}
			if err := vals.Require("out"); err != nil {
				return err
			}
			opt, err := buildOptions(env, vals, projectDir)
			if err != nil {
				return err
			}
			rep := env.Progress()
			stop := progress.Long(rep, "building "+projectDir)
			res, err := artifact.Build(cmd.Context(), opt, rep)
			stop()
			if err != nil {
				return err
			}
			for _, c := range res.Manifest.Checks {
				rep.Warnf("check --deploy %s (%s): %s", c.ID, c.Level, c.Message)
			}
			sum := summarize(res)
			if !env.Result(cmd, sum) {
				return nil
			}
			fmt.Fprintf(env.Out, "release %s\n", sum.ReleaseID)
			fmt.Fprintf(env.Out, "  %s  %d files, %d bytes\n", res.ZipPath, sum.AppZip.Files, sum.AppZip.Size)
			fmt.Fprintf(env.Out, "  %s/  %d files (%d hashed), %d bytes\n", res.StaticDir, sum.Static.Files, sum.Static.Hashed, sum.Static.Bytes)
			fmt.Fprintf(env.Out, "  %s  %d check finding(s)\n", res.ManifestPath, sum.Checks)
			return nil
		},
	}
	bindSettings(cmd, "build")
	return cmd
}

func summarize(res *artifact.Result) buildSummary {
	m := res.Manifest
	hashed := 0
	for _, f := range m.Static {
		if f.Hashed {
			hashed++
		}
	}
	return buildSummary{
		ReleaseID:   m.ReleaseID,
		OutDir:      res.OutDir,
		ReleaseJSON: res.ManifestPath,
		AppZip: buildZipSummary{Path: res.ZipPath, Files: res.Zip.Files, Bytes: res.Zip.Bytes,
			Size: res.Zip.Size, SHA256: res.Zip.SHA256},
		Static:         buildStatSummary{Dir: res.StaticDir, Files: res.StaticFiles, Bytes: res.StaticBytes, Hashed: hashed},
		Checks:         len(m.Checks),
		DependencyMode: m.DependencyMode,
		DjangoVersion:  m.DjangoVersion,
		SettingsModule: m.SettingsModule,
		Python:         res.Python,
	}
}

// parseBuildEnv reads KEY=VALUE items. The list setting splits on commas, so
// an item without "=" continues the previous value
// (ALLOWED_HOSTS=a.example,b.example).
func parseBuildEnv(items []string) (map[string]string, error) {
	env := map[string]string{}
	last := ""
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || strings.ContainsAny(k, " \t") || k == "" {
			if last == "" {
				return nil, problem.Usagef("write each item as KEY=VALUE, e.g. --build-env STATIC_URL=https://cdn.example.net/static/",
					"build-env item %q is not KEY=VALUE", it)
			}
			env[last] += "," + it
			continue
		}
		env[k] = v
		last = k
	}
	return env, nil
}
