package appservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// Release is the part of release.json (written by `djdeploy build`) that
// deploy reads. It is declared here, not imported, so the two steps share
// only the file format.
type Release struct {
	DependencyMode string            `json:"dependency_mode"` // remote | local
	PythonVersion  string            `json:"python_version"`  // e.g. 3.12
	AppSettings    map[string]string `json:"app_settings"`
	StartupHint    struct {
		ASGIModule string `json:"asgi_module"`
		PythonPath string `json:"pythonpath"`
	} `json:"startup_hint"`
	ReleaseID string `json:"release_id"`
}

// ReadRelease reads release.json beside the package; (nil, nil) when there
// is none.
func ReadRelease(packagePath string) (*Release, error) {
	p := filepath.Join(filepath.Dir(packagePath), "release.json")
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, problem.Usagef("check the file's permissions", "cannot read %s: %v", p, err)
	}
	var r Release
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, problem.Usagef("rebuild with 'djdeploy build', or remove the file", "%s is not valid release JSON: %v", p, err)
	}
	return &r, nil
}

// ConfigOptions is what the slot must be configured with.
type ConfigOptions struct {
	Target
	Release *Release // nil: only PythonVersion, the startup command and ExtraSettings are checked
	// PythonVersion is used when the release does not name one ("" : not checked).
	PythonVersion string
	// StartupCommand is "auto" (gunicorn + uvicorn workers on the release's
	// ASGI module), "keep" or "" (leave the site's), or a literal command.
	StartupCommand string
	Workers        int // for auto; 0: from the plan's vCPUs
	// ExtraSettings are written in the same single app settings write, with
	// or without Fix (the release command's STATIC_URL, DJDEPLOY_RELEASE_ID).
	ExtraSettings map[string]string
	// Fix writes what differs; otherwise a difference is a usage error that
	// says exactly what to set, and nothing is changed.
	Fix bool
	// DryRun reports every change, extra settings included, and writes
	// nothing (release --plan).
	DryRun bool
}

// ConfigChange is one difference. Current values are never recorded: app
// settings are secrets.
type ConfigChange struct {
	Kind  string `json:"kind"` // app-setting, linux-fx-version, startup-command
	Name  string `json:"name"`
	Want  string `json:"want"`
	State string `json:"state"` // missing, different
}

// ConfigResult says what was found and done.
type ConfigResult struct {
	Changes        []ConfigChange `json:"changes,omitempty"`
	Applied        bool           `json:"applied"`
	StartupCommand string         `json:"startup_command,omitempty"`
	Warnings       []string       `json:"warnings,omitempty"`
}

const keyVaultPrefix = "@Microsoft.KeyVault("

// EnsureConfig checks the slot's app settings, Python version and startup
// command against the release and, with Fix, sets them: app settings as one
// list-merge-put (a PUT replaces the whole set, and each write restarts the
// slot), the site config as one PATCH. ExtraSettings are always written, in
// the same app settings write. Values are never printed.
func (c *Client) EnsureConfig(ctx context.Context, o ConfigOptions) (*ConfigResult, error) {
	res := &ConfigResult{}
	site, err := c.GetSite(ctx, o.Target)
	if err != nil {
		return nil, err
	}
	current, err := c.listAppSettings(ctx, o.Target)
	if err != nil {
		return nil, err
	}
	cfg, err := c.getSiteConfig(ctx, o.Target)
	if err != nil {
		return nil, err
	}

	required := map[string]string{}
	if o.Release != nil {
		for k, v := range o.Release.AppSettings {
			required[k] = v
		}
		switch o.Release.DependencyMode {
		case "remote":
			if _, ok := required["SCM_DO_BUILD_DURING_DEPLOYMENT"]; !ok {
				required["SCM_DO_BUILD_DURING_DEPLOYMENT"] = "true"
			}
		case "local":
			if _, ok := required["SCM_DO_BUILD_DURING_DEPLOYMENT"]; !ok {
				required["SCM_DO_BUILD_DURING_DEPLOYMENT"] = "false"
			}
		}
	}
	newSettings := map[string]string{}
	for _, k := range sortedKeys(required) {
		want := required[k]
		cur, ok := current[k]
		switch {
		case !ok:
			res.Changes = append(res.Changes, ConfigChange{Kind: "app-setting", Name: k, Want: want, State: "missing"})
			newSettings[k] = want
		case strings.HasPrefix(strings.TrimSpace(cur), keyVaultPrefix):
			res.Warnings = append(res.Warnings, fmt.Sprintf("app setting %s is a Key Vault reference; left as it is (the release expects %q)", k, want))
		case !sameSetting(cur, want):
			res.Changes = append(res.Changes, ConfigChange{Kind: "app-setting", Name: k, Want: want, State: "different"})
			newSettings[k] = want
		}
	}
	extras := map[string]string{}
	for k, v := range o.ExtraSettings {
		if cur, ok := current[k]; !ok || cur != v {
			extras[k] = v
		}
	}

	siteCfg := &armappservice.SiteConfig{}
	cfgChanged := false
	pyVersion := o.PythonVersion
	if o.Release != nil && o.Release.PythonVersion != "" {
		pyVersion = o.Release.PythonVersion
	}
	if pyVersion != "" {
		want := "PYTHON|" + pyVersion
		cur := deref(cfg.LinuxFxVersion)
		if !strings.EqualFold(strings.TrimSpace(cur), want) {
			state := "different"
			if cur == "" {
				state = "missing"
			}
			res.Changes = append(res.Changes, ConfigChange{Kind: "linux-fx-version", Name: "linuxFxVersion", Want: want, State: state})
			siteCfg.LinuxFxVersion = to.Ptr(want)
			cfgChanged = true
		}
	}

	startup := strings.TrimSpace(o.StartupCommand)
	switch strings.ToLower(startup) {
	case "", "keep":
		startup = ""
	case "auto":
		startup = ""
		if o.Release == nil || o.Release.StartupHint.ASGIModule == "" {
			res.Warnings = append(res.Warnings, "no ASGI module is known (no release.json startup_hint); the startup command is left as it is")
			break
		}
		workers := o.Workers
		if workers <= 0 {
			n := 1
			sku, err := c.PlanSKU(ctx, site)
			if err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("cannot read the plan's size (%v); sizing gunicorn for 1 vCPU", err))
			} else if v, ok := VCPUsForSKU(sku); ok {
				n = v
			} else {
				res.Warnings = append(res.Warnings, fmt.Sprintf("unknown plan SKU %s; sizing gunicorn for 1 vCPU (set --workers)", sku))
			}
			workers = WorkersForVCPUs(n)
		}
		pp := ""
		if o.Release.DependencyMode == "local" {
			pp = o.Release.StartupHint.PythonPath
		}
		startup = StartupCommand(o.Release.StartupHint.ASGIModule, workers, pp)
	}
	if startup != "" {
		res.StartupCommand = startup
		cur := strings.TrimSpace(deref(cfg.AppCommandLine))
		if cur != startup {
			state := "different"
			if cur == "" {
				state = "missing"
			}
			res.Changes = append(res.Changes, ConfigChange{Kind: "startup-command", Name: "appCommandLine", Want: startup, State: state})
			siteCfg.AppCommandLine = to.Ptr(startup)
			cfgChanged = true
		}
	}

	// Settings that move with the release must not be slot-sticky, or the
	// swap leaves production with its old values.
	written := map[string]bool{}
	for k := range newSettings {
		written[k] = true
	}
	for k := range extras {
		written[k] = true
	}
	for k := range required {
		written[k] = true
	}
	if len(written) > 0 {
		sticky, err := c.stickySettings(ctx, o.Target)
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("cannot read the slot-sticky setting names: %v", err))
		}
		for _, k := range sortedKeys(written) {
			if sticky[k] {
				res.Warnings = append(res.Warnings, fmt.Sprintf("app setting %s is a deployment slot setting (sticky): a swap leaves production's own value in place; untick \"Deployment slot setting\" for it", k))
			}
		}
	}
	for _, w := range res.Warnings {
		c.log.Warnf("%s", w)
	}

	if o.DryRun {
		for _, k := range sortedKeys(extras) {
			res.Changes = append(res.Changes, ConfigChange{Kind: "app-setting", Name: k, Want: extras[k], State: "release"})
		}
		return res, nil
	}
	if len(res.Changes) > 0 && !o.Fix {
		return res, configProblem(o.Target, res.Changes)
	}
	if len(res.Changes) > 0 {
		for _, ch := range res.Changes {
			c.log.Infof("setting %s %s (was %s)", ch.Kind, ch.Name, ch.State)
		}
	}
	if len(newSettings) > 0 || len(extras) > 0 {
		if !o.Fix {
			newSettings = map[string]string{}
		}
		merged := map[string]*string{}
		for k, v := range current {
			merged[k] = to.Ptr(v)
		}
		for k, v := range newSettings {
			merged[k] = to.Ptr(v)
		}
		for k, v := range extras {
			merged[k] = to.Ptr(v)
		}
		if err := c.putAppSettings(ctx, o.Target, merged); err != nil {
			return res, err
		}
		res.Applied = true
	}
	if cfgChanged && o.Fix {
		if err := c.patchSiteConfig(ctx, o.Target, siteCfg); err != nil {
			return res, err
		}
		res.Applied = true
	}
	return res, nil
}

// sameSetting compares app setting values; booleans case-insensitively
// (App Service reads "True" and "true" alike).
func sameSetting(cur, want string) bool {
	if cur == want {
		return true
	}
	lc, lw := strings.ToLower(cur), strings.ToLower(want)
	if (lc == "true" || lc == "false") && lc == lw {
		return true
	}
	return false
}

func configProblem(t Target, changes []ConfigChange) error {
	var what []string
	var settingsArgs []string
	var cfgArgs []string
	for _, ch := range changes {
		switch ch.Kind {
		case "app-setting":
			what = append(what, fmt.Sprintf("app setting %s is %s (needs %s)", ch.Name, ch.State, ch.Want))
			settingsArgs = append(settingsArgs, shellQuote(ch.Name+"="+ch.Want))
		case "linux-fx-version":
			what = append(what, fmt.Sprintf("runtime is %s (needs %s)", ch.State, ch.Want))
			cfgArgs = append(cfgArgs, "--linux-fx-version "+shellQuote(ch.Want))
		case "startup-command":
			what = append(what, fmt.Sprintf("startup command is %s (needs %s)", ch.State, ch.Want))
			cfgArgs = append(cfgArgs, "--startup-file "+shellQuote(ch.Want))
		}
	}
	slot := ""
	if !t.IsProduction() {
		slot = " --slot " + t.Slot
	}
	var fixes []string
	if len(settingsArgs) > 0 {
		fixes = append(fixes, fmt.Sprintf("az webapp config appsettings set -g %s -n %s%s --settings %s", t.ResourceGroup, t.App, slot, strings.Join(settingsArgs, " ")))
	}
	if len(cfgArgs) > 0 {
		fixes = append(fixes, fmt.Sprintf("az webapp config set -g %s -n %s%s %s", t.ResourceGroup, t.App, slot, strings.Join(cfgArgs, " ")))
	}
	return problem.Usagef("re-run with --fix-settings to set them, or run: "+strings.Join(fixes, " && "),
		"%s is not configured for this package (nothing was uploaded): %s", t, strings.Join(what, "; "))
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " '\"$|&;<>()*?`\\!#") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// AppSettings lists the slot's app settings. The values are secrets.
func (c *Client) AppSettings(ctx context.Context, t Target) (map[string]string, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	return c.listAppSettings(ctx, t)
}

func (c *Client) listAppSettings(ctx context.Context, t Target) (map[string]string, error) {
	var d armappservice.StringDictionary
	if t.IsProduction() {
		r, err := c.webApps.ListApplicationSettings(ctx, t.ResourceGroup, t.App, nil)
		if err != nil {
			return nil, armError(err, "listing the app settings of "+t.String())
		}
		d = r.StringDictionary
	} else {
		r, err := c.webApps.ListApplicationSettingsSlot(ctx, t.ResourceGroup, t.App, t.Slot, nil)
		if err != nil {
			return nil, armError(err, "listing the app settings of "+t.String())
		}
		d = r.StringDictionary
	}
	out := map[string]string{}
	for k, v := range d.Properties {
		out[k] = deref(v)
	}
	return out, nil
}

func (c *Client) putAppSettings(ctx context.Context, t Target, all map[string]*string) error {
	d := armappservice.StringDictionary{Properties: all}
	var err error
	if t.IsProduction() {
		_, err = c.webApps.UpdateApplicationSettings(ctx, t.ResourceGroup, t.App, d, nil)
	} else {
		_, err = c.webApps.UpdateApplicationSettingsSlot(ctx, t.ResourceGroup, t.App, t.Slot, d, nil)
	}
	return armError(err, "writing the app settings of "+t.String())
}

// SiteConfig is what the commands read from the site's configuration.
type SiteConfig struct {
	LinuxFxVersion  *string
	AppCommandLine  *string
	HealthCheckPath *string
}

func (c *Client) getSiteConfig(ctx context.Context, t Target) (*SiteConfig, error) {
	var sc *armappservice.SiteConfig
	if t.IsProduction() {
		r, err := c.webApps.GetConfiguration(ctx, t.ResourceGroup, t.App, nil)
		if err != nil {
			return nil, armError(err, "reading the configuration of "+t.String())
		}
		sc = r.Properties
	} else {
		r, err := c.webApps.GetConfigurationSlot(ctx, t.ResourceGroup, t.App, t.Slot, nil)
		if err != nil {
			return nil, armError(err, "reading the configuration of "+t.String())
		}
		sc = r.Properties
	}
	if sc == nil {
		return &SiteConfig{}, nil
	}
	return &SiteConfig{LinuxFxVersion: sc.LinuxFxVersion, AppCommandLine: sc.AppCommandLine, HealthCheckPath: sc.HealthCheckPath}, nil
}

func (c *Client) patchSiteConfig(ctx context.Context, t Target, sc *armappservice.SiteConfig) error {
	r := armappservice.SiteConfigResource{Properties: sc}
	var err error
	if t.IsProduction() {
		_, err = c.webApps.UpdateConfiguration(ctx, t.ResourceGroup, t.App, r, nil)
	} else {
		_, err = c.webApps.UpdateConfigurationSlot(ctx, t.ResourceGroup, t.App, t.Slot, r, nil)
	}
	return armError(err, "writing the configuration of "+t.String())
}

// stickySettings returns the app's slot-sticky app setting names.
func (c *Client) stickySettings(ctx context.Context, t Target) (map[string]bool, error) {
	r, err := c.webApps.ListSlotConfigurationNames(ctx, t.ResourceGroup, t.App, nil)
	if err != nil {
		return nil, armError(err, "reading the slot setting names")
	}
	out := map[string]bool{}
	if r.Properties != nil {
		for _, n := range r.Properties.AppSettingNames {
			out[deref(n)] = true
		}
	}
	return out, nil
}
