package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// site is a web app: its production slot and deployment slots.
type site struct {
	cfg    AppConfig
	slots  map[string]*slot // lower(name); "production" included
	order  []string         // production first
	sticky slotConfigNames
	// swapping is set while a swap involving this app runs (ARM answers 409
	// to a second one).
	swapping bool
}

type slotConfigNames struct {
	AppSettingNames         []string `json:"appSettingNames"`
	ConnectionStringNames   []string `json:"connectionStringNames"`
	AzureStorageConfigNames []string `json:"azureStorageConfigNames"`
}

// slot is a deployment slot (production is the slot named "production").
// Its host always routes to inst; a swap exchanges inst between two slots.
type slot struct {
	site     *site
	name     string
	host     string // 127.0.0.1:port of the app host (defaultHostName)
	scmHost  string // 127.0.0.1:port of Kudu
	dir      string // state folder for this slot
	settings map[string]string
	config   map[string]any // siteConfig (config/web properties)
	inst     atomic.Pointer[instance]
	starting []*instance // processes being started by a deployment

	deployments  []*deployment // oldest first
	busy         *deployment   // the deployment in progress, if any
	failNext     FailAt
	lastSwap     *slotSwapStatus
	modified     time.Time
	previewFrom  string            // applySlotConfig pending: the other slot's name
	previewSaved map[string]string // settings before applySlotConfig
	// posture.go: httpsOnly, basic auth policies ("scm", "ftp"), connection strings
	httpsOnly   bool
	basicAuth   map[string]bool
	connStrings map[string]ConnStringConfig
}

type slotSwapStatus struct {
	TimestampUtc        string `json:"timestampUtc"`
	SourceSlotName      string `json:"sourceSlotName"`
	DestinationSlotName string `json:"destinationSlotName"`
}

func (s *slot) isProduction() bool { return s.name == "production" }

// resourceName is "app" for production and "app/slot" for a slot, as ARM names them.
func (s *slot) resourceName() string {
	if s.isProduction() {
		return s.site.cfg.Name
	}
	return s.site.cfg.Name + "/" + s.name
}

func (s *slot) appCommandLine() string {
	v, _ := s.config["appCommandLine"].(string)
	return v
}

func (s *slot) healthCheckPath() string {
	v, _ := s.config["healthCheckPath"].(string)
	return v
}

func siteKey(rg, name string) string { return strings.ToLower(rg) + "/" + strings.ToLower(name) }

// addSite creates an app's slots, each with an app host and a Kudu host.
func (e *Emulator) addSite(ac AppConfig) error {
	s := &site{cfg: ac, slots: map[string]*slot{}}
	s.sticky = slotConfigNames{AppSettingNames: append([]string{}, ac.StickySettings...), ConnectionStringNames: []string{}, AzureStorageConfigNames: []string{}}
	names := append([]string{"production"}, ac.Slots...)
	for _, n := range names {
		sl := &slot{site: s, name: n, settings: map[string]string{}, modified: time.Now().UTC()}
		maps.Copy(sl.settings, ac.AppSettings)
		sl.config = defaultSiteConfig(ac)
		applyPosture(sl, ac)
		sl.dir = filepath.Join(e.stateDir, "apps", ac.Name, n)
		if err := os.MkdirAll(sl.dir, 0o755); err != nil {
			return err
		}
		sl.inst.Store(emptyInstance())
		hl, err := listenLoopback(0)
		if err != nil {
			return err
		}
		sl.host = hl.Addr().String()
		kl, err := listenLoopback(0)
		if err != nil {
			hl.Close()
			return err
		}
		sl.scmHost = kl.Addr().String()
		e.serve(hl, "site", e.trafficHandler(sl))
		e.serve(kl, "scm", e.kuduAuth(sl, e.kuduHandler(sl)))
		s.slots[strings.ToLower(n)] = sl
		s.order = append(s.order, n)
	}
	e.mu.Lock()
	e.sites[siteKey(ac.ResourceGroup, ac.Name)] = s
	e.mu.Unlock()
	return nil
}

// findSlot finds a slot by app name in any group ("" slot = production).
func (e *Emulator) findSlot(app, slotName string) *slot {
	if slotName == "" {
		slotName = "production"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sites {
		if strings.EqualFold(s.cfg.Name, app) {
			return s.slots[strings.ToLower(slotName)]
		}
	}
	return nil
}

// defaultSiteConfig is the config/web resource of a fresh Linux Python app,
// with the fields and JSON types of Microsoft's GetSiteConfig example.
func defaultSiteConfig(ac AppConfig) map[string]any {
	return map[string]any{
		"numberOfWorkers":                        1,
		"defaultDocuments":                       []any{"Default.htm", "Default.html", "index.htm", "index.html", "hostingstart.html"},
		"netFrameworkVersion":                    "v4.0",
		"phpVersion":                             "",
		"pythonVersion":                          "",
		"nodeVersion":                            "",
		"powerShellVersion":                      "",
		"linuxFxVersion":                         "PYTHON|" + ac.PythonVersion,
		"requestTracingEnabled":                  false,
		"remoteDebuggingEnabled":                 false,
		"httpLoggingEnabled":                     false,
		"acrUseManagedIdentityCreds":             false,
		"logsDirectorySizeLimit":                 35,
		"detailedErrorLoggingEnabled":            false,
		"use32BitWorkerProcess":                  false,
		"webSocketsEnabled":                      false,
		"alwaysOn":                               true,
		"appCommandLine":                         ac.AppCommandLine,
		"managedPipelineMode":                    "Integrated",
		"virtualApplications":                    []any{map[string]any{"virtualPath": "/", "physicalPath": "site\\wwwroot", "preloadEnabled": true}},
		"loadBalancing":                          "LeastRequests",
		"autoHealEnabled":                        false,
		"vnetName":                               "",
		"vnetRouteAllEnabled":                    false,
		"vnetPrivatePortsCount":                  0,
		"http20Enabled":                          false,
		"minTlsVersion":                          "1.2",
		"scmMinTlsVersion":                       "1.2",
		"ftpsState":                              "Disabled",
		"functionAppScaleLimit":                  0,
		"functionsRuntimeScaleMonitoringEnabled": false,
		"minimumElasticInstanceCount":            0,
		"azureStorageAccounts":                   map[string]any{},
		"healthCheckPath":                        ac.HealthCheckPath,
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
