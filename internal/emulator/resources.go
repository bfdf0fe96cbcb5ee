package emulator

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Resources are the Azure resources the emulator pretends exist. They come
// from a small YAML file (djdeploy emulator --resources) or DefaultResources.
//
//	subscription: 6a2f1d9e-4c1b-4c8e-9a53-0d5e2f7b8c11
//	resourceGroup: demo-rg
//	apps:
//	  - name: demo-app
//	    slots: [staging]
//	    plan: {name: demo-plan, sku: P1v3, capacity: 1}
//	    appSettings: {DJANGO_DEBUG: "0"}
//	    stickySettings: [DJANGO_DEBUG]
//	cdn:
//	  - name: demo-fd
//	    sku: Standard_AzureFrontDoor
//	    endpoints: [{name: demo-fd-ep}]
type Resources struct {
	Subscription  string `yaml:"subscription"`
	Tenant        string `yaml:"tenant"`
	ResourceGroup string `yaml:"resourceGroup"` // default for apps and profiles
	Location      string `yaml:"location"`
	// StaticContainer is the Blob container created at start and used as
	// the CDN endpoints' default origin; StaticPrefix is the folder in it
	// that the export block names (DJDEPLOY_STATIC_PREFIX).
	StaticContainer string          `yaml:"staticContainer"`
	StaticPrefix    string          `yaml:"staticPrefix"`
	Apps            []AppConfig     `yaml:"apps"`
	CDN             []ProfileConfig `yaml:"cdn"`
	// Databases are flexible servers with firewall rules (posture.go).
	Databases []DatabaseConfig `yaml:"databases"`
	// FederatedCredentials of the emulator's service principal (issuer and
	// subject of the CI's OIDC tokens); see Config.FederatedCredentials.
	FederatedCredentials []FederatedCredential `yaml:"federatedCredentials"`
}

// AppConfig is one web app and its deployment slots.
type AppConfig struct {
	Name            string            `yaml:"name"`
	ResourceGroup   string            `yaml:"resourceGroup"`
	Slots           []string          `yaml:"slots"` // besides production
	Plan            PlanConfig        `yaml:"plan"`
	PythonVersion   string            `yaml:"pythonVersion"` // linuxFxVersion PYTHON|X.Y
	AppCommandLine  string            `yaml:"appCommandLine"`
	HealthCheckPath string            `yaml:"healthCheckPath"`
	AppSettings     map[string]string `yaml:"appSettings"`    // every slot starts with these
	StickySettings  []string          `yaml:"stickySettings"` // slotConfigNames.appSettingNames
	// Security posture (posture.go): httpsOnly (default false, as ARM),
	// basic auth policies (default both off), siteConfig.alwaysOn (default
	// true) and ftpsState (default Disabled), connection strings.
	HTTPSOnly         *bool                       `yaml:"httpsOnly"`
	BasicAuth         *BasicAuthConfig            `yaml:"basicAuth"`
	AlwaysOn          *bool                       `yaml:"alwaysOn"`
	FTPSState         string                      `yaml:"ftpsState"`
	ConnectionStrings map[string]ConnStringConfig `yaml:"connectionStrings"`
}

// PlanConfig is the App Service plan (server farm) the app runs on.
type PlanConfig struct {
	Name     string `yaml:"name"`
	SKU      string `yaml:"sku"`  // e.g. P1v3, B1, S1
	Tier     string `yaml:"tier"` // e.g. PremiumV3; derived from sku when empty
	Capacity int    `yaml:"capacity"`
}

// ProfileConfig is a CDN or Front Door profile.
type ProfileConfig struct {
	Name          string `yaml:"name"`
	ResourceGroup string `yaml:"resourceGroup"`
	// SKU tells the kind: Standard_AzureFrontDoor / Premium_AzureFrontDoor
	// are Front Door (afdEndpoints); anything else (Standard_Microsoft,
	// Standard_Verizon, ...) is classic CDN (endpoints).
	SKU       string           `yaml:"sku"`
	Endpoints []EndpointConfig `yaml:"endpoints"`
	// OriginGroups (Front Door only) put apps behind the profile: its
	// endpoints route every path outside the static prefix to the group's
	// enabled origins by priority and weight (frontdoor.go).
	OriginGroups []OriginGroupConfig `yaml:"originGroups"`
}

// OriginGroupConfig is a Front Door origin group of web apps.
type OriginGroupConfig struct {
	Name    string         `yaml:"name"`
	Origins []OriginConfig `yaml:"origins"`
}

// OriginConfig is one origin: an emulated app's production host.
type OriginConfig struct {
	Name     string `yaml:"name"`
	App      string `yaml:"app"`
	Weight   int    `yaml:"weight"`   // default 50, as Front Door
	Priority int    `yaml:"priority"` // default 1
	Disabled bool   `yaml:"disabled"`
}

// EndpointConfig is a CDN endpoint whose origin is a Blob container:
// origin URL = blob endpoint + "/" + container + originPath + request path.
type EndpointConfig struct {
	Name       string `yaml:"name"`
	Container  string `yaml:"container"`  // default: Resources.StaticContainer
	OriginPath string `yaml:"originPath"` // e.g. "" or "/v2"
}

// Fixed identifiers of the default resources, so scripts and docs can rely on them.
const (
	DefaultSubscription = "6a2f1d9e-4c1b-4c8e-9a53-0d5e2f7b8c11"
	DefaultTenant       = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	DefaultClientID     = "0c3b9a52-7e7a-4d6e-9d1f-5b2a0e6c4d10"
)

// DefaultResources is one app (demo-app in demo-rg) with a staging slot, a
// Front Door Standard profile (demo-fd/demo-fd-ep, the one the export block
// names) and a classic CDN profile (demo-cdn/demo-cdn-ep).
func DefaultResources() *Resources {
	return &Resources{
		Subscription:    DefaultSubscription,
		Tenant:          DefaultTenant,
		ResourceGroup:   "demo-rg",
		Location:        "West Europe",
		StaticContainer: "static",
		StaticPrefix:    "static/",
		Apps: []AppConfig{{
			Name:          "demo-app",
			Slots:         []string{"staging"},
			Plan:          PlanConfig{Name: "demo-plan", SKU: "P1v3", Capacity: 1},
			PythonVersion: "3.12",
		}},
		CDN: []ProfileConfig{
			{Name: "demo-fd", SKU: "Standard_AzureFrontDoor", Endpoints: []EndpointConfig{{Name: "demo-fd-ep"}}},
			{Name: "demo-cdn", SKU: "Standard_Microsoft", Endpoints: []EndpointConfig{{Name: "demo-cdn-ep"}}},
		},
	}
}

// LoadResources reads a resources YAML file. Unknown keys are errors, so a
// typo is reported instead of silently ignored.
func LoadResources(path string) (*Resources, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading emulator config: %w", err)
	}
	return ParseResources(b)
}

// ParseResources parses resources YAML and fills defaults.
func ParseResources(b []byte) (*Resources, error) {
	var r Resources
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("parsing emulator config: %w", err)
	}
	if err := r.normalize(); err != nil {
		return nil, err
	}
	return &r, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,58}$`)

// normalize fills defaults and checks names.
func (r *Resources) normalize() error {
	if r.Subscription == "" {
		r.Subscription = DefaultSubscription
	}
	if r.Tenant == "" {
		r.Tenant = DefaultTenant
	}
	if r.ResourceGroup == "" {
		r.ResourceGroup = "demo-rg"
	}
	if r.Location == "" {
		r.Location = "West Europe"
	}
	if r.StaticContainer == "" {
		r.StaticContainer = "static"
	}
	if len(r.Apps) == 0 {
		return fmt.Errorf("emulator config: no apps (add apps: [{name: my-app, slots: [staging]}])")
	}
	seen := map[string]bool{}
	for i := range r.Apps {
		a := &r.Apps[i]
		if !nameRE.MatchString(a.Name) {
			return fmt.Errorf("emulator config: app name %q: use letters, digits and hyphens", a.Name)
		}
		if seen[strings.ToLower(a.Name)] {
			return fmt.Errorf("emulator config: app %q declared twice", a.Name)
		}
		seen[strings.ToLower(a.Name)] = true
		if a.ResourceGroup == "" {
			a.ResourceGroup = r.ResourceGroup
		}
		for _, s := range a.Slots {
			if !nameRE.MatchString(s) || strings.EqualFold(s, "production") {
				return fmt.Errorf("emulator config: app %s: bad slot name %q", a.Name, s)
			}
		}
		if a.Plan.Name == "" {
			a.Plan.Name = a.Name + "-plan"
		}
		if a.Plan.SKU == "" {
			a.Plan.SKU = "P1v3"
		}
		if a.Plan.Tier == "" {
			a.Plan.Tier = tierOf(a.Plan.SKU)
		}
		if a.Plan.Capacity <= 0 {
			a.Plan.Capacity = 1
		}
		if a.PythonVersion == "" {
			a.PythonVersion = "3.12"
		}
		switch a.FTPSState {
		case "", "AllAllowed", "FtpsOnly", "Disabled":
		default:
			return fmt.Errorf("emulator config: app %s: ftpsState %q is not AllAllowed, FtpsOnly or Disabled", a.Name, a.FTPSState)
		}
	}
	if err := r.normalizeDatabases(); err != nil {
		return err
	}
	for i := range r.CDN {
		p := &r.CDN[i]
		if !nameRE.MatchString(p.Name) {
			return fmt.Errorf("emulator config: CDN profile name %q: use letters, digits and hyphens", p.Name)
		}
		if p.ResourceGroup == "" {
			p.ResourceGroup = r.ResourceGroup
		}
		if p.SKU == "" {
			p.SKU = "Standard_AzureFrontDoor"
		}
		for j := range p.Endpoints {
			e := &p.Endpoints[j]
			if !nameRE.MatchString(e.Name) {
				return fmt.Errorf("emulator config: CDN endpoint name %q: use letters, digits and hyphens", e.Name)
			}
			if e.Container == "" {
				e.Container = r.StaticContainer
			}
			if e.OriginPath != "" && !strings.HasPrefix(e.OriginPath, "/") {
				e.OriginPath = "/" + e.OriginPath
			}
			e.OriginPath = strings.TrimRight(e.OriginPath, "/")
		}
	}
	return nil
}

// tierOf maps an App Service SKU name to its tier, as ARM reports it.
func tierOf(sku string) string {
	s := strings.ToUpper(sku)
	switch {
	case strings.HasPrefix(s, "F"):
		return "Free"
	case strings.HasPrefix(s, "B"):
		return "Basic"
	case strings.HasPrefix(s, "S"):
		return "Standard"
	case strings.HasSuffix(s, "V3"):
		return "PremiumV3"
	case strings.HasSuffix(s, "V2"):
		return "PremiumV2"
	case strings.HasPrefix(s, "P"):
		return "Premium"
	}
	return "Standard"
}

// coresOf is the vCPU count of a plan SKU (one instance), so clients can
// size gunicorn workers from the plan as they would on Azure.
func coresOf(sku string) int {
	s := strings.ToUpper(sku)
	switch s {
	case "F1", "D1", "B1", "S1", "P1", "P0V3", "P1V2":
		return 1
	case "B2", "S2", "P2", "P1V3", "P2V2", "P1MV3":
		return 2
	case "B3", "S3", "P3", "P2V3", "P3V2", "P2MV3":
		return 4
	case "P3V3", "P3MV3":
		return 8
	}
	return 1
}

func isFrontDoorSKU(sku string) bool {
	return strings.HasSuffix(strings.ToLower(sku), "_azurefrontdoor")
}
