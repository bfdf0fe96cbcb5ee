// Package emulator is a local Azure App Service + Resource Manager + CDN
// that speaks Azure's wire protocols and really runs the Django app, so
// djdeploy (and its tests) can release end to end with no Azure account.
//
// It is written from ../shared/contracts and Azure's public REST specs, and
// imports none of djdeploy's client packages: a fake built from the
// client's own understanding would only prove the client agrees with itself.
//
// # What it serves (all on 127.0.0.1)
//
//   - ARM (Emulator.ARMEndpoint): sites, slots, config/web, app settings,
//     slotConfigNames, publishing-credential policies, server farms,
//     slotsswap / applySlotConfig / resetSlotConfig, deploymentStatus, CDN and
//     Front Door profiles, endpoints and purges, with ARM's LRO headers and
//     {"error":{code,message}} bodies. Admin endpoints live under /_emulator/.
//   - Kudu, one listener per slot (found, as on Azure, in the site's
//     hostNameSslStates entry with hostType "Repository"): /api/publish,
//     /api/zipdeploy, /api/deployments[/{id|latest}[/log]].
//   - One app host per slot (the slot's defaultHostName): a reverse proxy to
//     the gunicorn process running that slot's release. A swap exchanges the
//     processes behind two hosts at once, without dropping requests.
//   - One host per CDN endpoint: a caching proxy in front of its Blob
//     container (Azurite), whose cache only a purge empties.
//   - A token authority (Emulator.AuthorityHost) over TLS with its own CA
//     (Emulator.CAFile): OIDC discovery and /{tenant}/oauth2/v2.0/token for
//     client secrets and federated assertions.
//
// Every listener speaks both plain HTTP and TLS (with the emulator's CA) on
// the same port. ARM and Kudu demand a bearer token whose audience is ARM's
// (https://management.core.windows.net/): the static Emulator.Token, or one
// from the authority. Anything else gets 401, as on Azure with basic auth off.
//
// # Go API
//
//	emu, err := emulator.Start(ctx, emulator.Config{StartAzurite: true})
//	defer emu.Close()
//	emu.Env()                    // the export block: DJDEPLOY_ARM_ENDPOINT, ...
//	emu.Faults().Add(emulator.Fault{Method: "POST", Path: "*/slotsswap", Status: 429, RetryAfter: 1})
//	emu.FailNextDeployment("demo-app", "staging", emulator.AtBuild)
//	emu.SetUnhealthy("demo-app", "staging", true)
//	emu.Requests("POST", "*/slotsswap") // how many such requests arrived
//	emu.State()                  // what /_emulator/state returns
//
// The same operations are on the admin endpoint (see admin.go).
package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/djdeploy/djdeploy/internal/azurite"
)

// Config tunes Start. The zero value serves DefaultResources with no Blob
// storage, the auto-detected Python and a generated token.
type Config struct {
	// Resources to serve; nil means DefaultResources().
	Resources *Resources
	// Python runs the apps deployed without a build, and makes the build's
	// virtualenvs; "" means python3 on PATH.
	Python string
	// StartAzurite starts a private Azurite (stopped by Close).
	StartAzurite bool
	// AzuriteConnectionString points at a Blob service already running
	// (ignored when StartAzurite is set).
	AzuriteConnectionString string
	// StateDir keeps app folders, logs and the CA file; "" means a
	// temporary folder removed by Close.
	StateDir string
	// ARMPort fixes the ARM listener's port (0 = any free port).
	ARMPort int
	// ARMBasePath serves ARM under a path prefix, e.g. "/arm" (default none).
	ARMBasePath string
	// Token is the static bearer token to accept; "" generates a signed JWT
	// with ARM's audience, valid for 30 days.
	Token string
	// ClientID and ClientSecret are the service principal the authority
	// accepts for the client-secret flow ("" = DefaultClientID / generated).
	ClientID, ClientSecret string
	// FederatedCredentials are the service principal's federated identity
	// credentials; none means any current assertion for the token exchange
	// audience is taken (federated.go).
	FederatedCredentials []FederatedCredential
	// BuildCache keeps the virtualenvs App Service's build (Oryx, when
	// SCM_DO_BUILD_DURING_DEPLOYMENT is true) made, by what made them;
	// "" means <user cache dir>/djdeploy/emulator-antenv (oryx.go).
	BuildCache string
	// Workers is gunicorn's --workers for the default startup command (0 = 1).
	Workers int
	// StartTimeout bounds how long an app may take to answer HTTP after a
	// deployment before the deployment is RuntimeFailed (0 = 90s).
	StartTimeout time.Duration
	// MaxUnpackedBytes and MaxEntries bound what Kudu extracts from one
	// package (0 = 2 GiB and 100,000, near App Service's own limits): a
	// small zip bomb fails the deployment instead of filling the disk.
	MaxUnpackedBytes int64
	MaxEntries       int
	// UploadTimeout bounds how long Kudu reads one package upload (0 = 5
	// minutes): a trickling client cannot hold the connection for hours.
	UploadTimeout time.Duration
	// RetryAfter is the Retry-After, in seconds, of the emulator's own
	// long-running operations (swap, purge, deployment status); 0 = 1.
	RetryAfter int
	// Faults are installed at start (same as Faults().Add).
	Faults []Fault
	// Log receives one line per notable event (deployments, swaps, purges,
	// app process exits); nil discards.
	Log io.Writer
}

// Emulator is a running emulator. Its methods are safe for concurrent use.
type Emulator struct {
	cfg  Config
	res  *Resources
	cert *authorityCert
	iss  *issuer

	stateDir string
	ownsDir  bool
	caFile   string
	python   string

	runtimeMu sync.Mutex
	runtimes  map[string]string // Python X.Y -> interpreter (runtime.go)
	token     string
	// adminSecret guards /_emulator/ (admin.go); it is in the export block
	// and nowhere else.
	adminSecret string

	armURL   string // http://127.0.0.1:p + base path
	armHost  string
	authHost string // https://127.0.0.1:p

	blobConn  string
	blobURL   string
	azurite   *azurite.Server
	blobStore *blobOrigin

	mu       sync.Mutex
	sites    map[string]*site     // lower(rg)/lower(name)
	profiles map[string]*profile  // lower(rg)/lower(name)
	dbs      map[string]*dbServer // kind/lower(rg)/lower(name) (posture.go)
	ops      map[string]*operation
	swaps    []SwapRecord

	faults *Faults
	reqMu  sync.Mutex
	reqs   []*requestRecord
	// served logs what the site hosts served (traffic.go), for the
	// Application Insights stand-in.
	served telemetry
	// appInsights holds the components' annotations (appinsights.go).
	appInsights insightsStore
	// afd holds Front Door origin groups' state (frontdoor.go).
	afd      frontDoorState
	tokens   atomic.Int64
	servers  []*http.Server
	wg       sync.WaitGroup
	closed   atomic.Bool
	closeErr error
	logMu    sync.Mutex
}

// Start serves the emulator until Close (ctx only bounds the start itself).
func Start(ctx context.Context, cfg Config) (_ *Emulator, err error) {
	e := &Emulator{
		cfg:      cfg,
		sites:    map[string]*site{},
		profiles: map[string]*profile{},
		ops:      map[string]*operation{},
	}
	e.faults = &Faults{emu: e}
	e.adminSecret = randomHex(24)
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if cfg.Resources == nil {
		e.res = DefaultResources()
	} else {
		r := *cfg.Resources
		e.res = &r
	}
	if err := e.res.normalize(); err != nil {
		return nil, err
	}
	e.cfg.FederatedCredentials = append(slices.Clone(e.cfg.FederatedCredentials), e.res.FederatedCredentials...)
	if e.cfg.ClientID == "" {
		e.cfg.ClientID = DefaultClientID
	}
	if e.cfg.ClientSecret == "" {
		e.cfg.ClientSecret = "emu-" + randomHex(16)
	}
	if e.cfg.StartTimeout <= 0 {
		e.cfg.StartTimeout = 90 * time.Second
	}
	if e.cfg.MaxUnpackedBytes <= 0 {
		e.cfg.MaxUnpackedBytes = 2 << 30
	}
	if e.cfg.MaxEntries <= 0 {
		e.cfg.MaxEntries = 100_000
	}
	if e.cfg.UploadTimeout <= 0 {
		e.cfg.UploadTimeout = 5 * time.Minute
	}
	if e.cfg.RetryAfter <= 0 {
		e.cfg.RetryAfter = 1
	}
	if e.cfg.Workers <= 0 {
		e.cfg.Workers = 1
	}
	e.cfg.ARMBasePath = strings.TrimRight(e.cfg.ARMBasePath, "/")
	if e.cfg.ARMBasePath != "" && !strings.HasPrefix(e.cfg.ARMBasePath, "/") {
		e.cfg.ARMBasePath = "/" + e.cfg.ARMBasePath
	}

	if cfg.StateDir == "" {
		d, err := os.MkdirTemp("", "djdeploy-emulator-")
		if err != nil {
			return nil, err
		}
		e.stateDir, e.ownsDir = d, true
	} else {
		if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating state dir: %w", err)
		}
		abs, _ := filepath.Abs(cfg.StateDir)
		e.stateDir = abs
	}
	if found := stopOrphans(); len(found) > 0 {
		e.logf("emulator: stopped %d app process(es) an earlier emulator left running (it was killed before it could stop them): %s", len(found), strings.Join(found, "; "))
	}
	if e.python, err = findPython(cfg.Python); err != nil {
		return nil, err
	}
	if err := e.writeShims(); err != nil {
		return nil, err
	}

	if e.cert, err = newAuthorityCert(); err != nil {
		return nil, err
	}
	e.caFile = filepath.Join(e.stateDir, "emulator-ca.pem")
	if err := e.cert.writeCA(e.caFile); err != nil {
		return nil, fmt.Errorf("writing CA file: %w", err)
	}
	if e.iss, err = newIssuer(e.res.Tenant); err != nil {
		return nil, err
	}
	for _, f := range cfg.Faults {
		e.faults.Add(f)
	}

	// Token authority.
	al, err := listenLoopback(0)
	if err != nil {
		return nil, err
	}
	e.authHost = "https://" + al.Addr().String()
	e.iss.host = e.authHost
	e.serve(al, "auth", e.authorityHandler())

	// ARM.
	l, err := listenLoopback(cfg.ARMPort)
	if err != nil {
		return nil, fmt.Errorf("listening for ARM: %w", err)
	}
	e.armHost = l.Addr().String()
	e.armURL = "http://" + e.armHost + e.cfg.ARMBasePath
	e.serve(l, "arm", e.armRoot())

	if e.token = cfg.Token; e.token == "" {
		if e.token, err = e.iss.sign(ARMAudience, e.cfg.ClientID, 30*24*time.Hour); err != nil {
			return nil, err
		}
	}

	// Blob storage.
	switch {
	case cfg.StartAzurite:
		s, err := azurite.Start(ctx, azurite.Options{Dir: filepath.Join(e.stateDir, "azurite")})
		if err != nil {
			return nil, fmt.Errorf("starting azurite: %w", err)
		}
		e.azurite = s
		e.blobConn = s.ConnectionString()
	case cfg.AzuriteConnectionString != "":
		e.blobConn = cfg.AzuriteConnectionString
	}
	if e.blobConn != "" {
		if e.blobStore, err = newBlobOrigin(e.blobConn); err != nil {
			return nil, err
		}
		e.blobURL = e.blobStore.endpoint
		if err := e.blobStore.ensureContainer(ctx, e.res.StaticContainer); err != nil {
			return nil, fmt.Errorf("creating static container %q: %w", e.res.StaticContainer, err)
		}
	}

	// Apps and their slots.
	for _, ac := range e.res.Apps {
		if err := e.addSite(ac); err != nil {
			return nil, err
		}
	}
	for _, pc := range e.res.CDN {
		if err := e.addProfile(pc); err != nil {
			return nil, err
		}
	}
	e.addDatabases()
	e.logf("emulator: ARM %s, authority %s, state %s", e.armURL, e.authHost, e.stateDir)
	return e, nil
}

// serve runs h on l (HTTP and TLS), behind the request log and the faults.
func (e *Emulator) serve(l net.Listener, kind string, h http.Handler) {
	srv := &http.Server{
		Handler:           e.instrument(kind, h),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnContext:       withConn,
	}
	e.mu.Lock()
	e.servers = append(e.servers, srv)
	e.mu.Unlock()
	dl := &dualListener{Listener: l, tls: &tls.Config{Certificates: []tls.Certificate{e.cert.server}, MinVersion: tls.VersionTLS12}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		_ = srv.Serve(dl)
	}()
}

// Close stops every server and app process and removes a temporary state
// folder. It is safe to call more than once.
func (e *Emulator) Close() error {
	if e == nil || e.closed.Swap(true) {
		return nil
	}
	e.mu.Lock()
	servers := append([]*http.Server(nil), e.servers...)
	var insts []*instance
	for _, s := range e.sites {
		for _, sl := range s.slots {
			if in := sl.inst.Load(); in != nil {
				insts = append(insts, in)
			}
			insts = append(insts, sl.starting...)
		}
	}
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			_ = s.Close()
		}
	}
	for _, in := range insts {
		in.stop()
	}
	e.wg.Wait()
	var errs []error
	if e.azurite != nil {
		errs = append(errs, e.azurite.Stop())
	}
	if e.ownsDir {
		errs = append(errs, os.RemoveAll(e.stateDir))
	}
	return errors.Join(errs...)
}

// ARMEndpoint is the Resource Manager base URL (DJDEPLOY_ARM_ENDPOINT).
func (e *Emulator) ARMEndpoint() string { return e.armURL }

// ARMTLSEndpoint is the Resource Manager base URL over TLS (the same port;
// trust CAFile), the one Microsoft's clients can use.
func (e *Emulator) ARMTLSEndpoint() string { return "https://" + e.armHost + e.cfg.ARMBasePath }

// AuthorityHost is the token authority's URL (AZURE_AUTHORITY_HOST).
func (e *Emulator) AuthorityHost() string { return e.authHost + "/" }

// CAFile is the PEM file of the emulator's CA (DJDEPLOY_CA_FILE).
func (e *Emulator) CAFile() string { return e.caFile }

// CAPEM is the emulator's CA certificate in PEM form.
func (e *Emulator) CAPEM() []byte { return append([]byte(nil), e.cert.caPEM...) }

// Token is a static bearer token with ARM's audience (DJDEPLOY_ACCESS_TOKEN).
func (e *Emulator) Token() string { return e.token }

// TokenFor signs a token for any audience, e.g. to show that a token for
// the wrong resource is refused.
func (e *Emulator) TokenFor(audience string) (string, error) {
	return e.iss.sign(audience, e.cfg.ClientID, time.Hour)
}

// Tenant, ClientID and ClientSecret are the service principal the
// authority accepts for the client-secret flow.
func (e *Emulator) Tenant() string       { return e.res.Tenant }
func (e *Emulator) ClientID() string     { return e.cfg.ClientID }
func (e *Emulator) ClientSecret() string { return e.cfg.ClientSecret }

// Subscription is the subscription id of every resource.
func (e *Emulator) Subscription() string { return e.res.Subscription }

// Resources are the resources served (defaults filled in).
func (e *Emulator) Resources() Resources { return *e.res }

// StorageConnectionString is the Blob service's connection string ("" when
// the emulator runs without Blob storage).
func (e *Emulator) StorageConnectionString() string { return e.blobConn }

// StateDir is the folder holding app releases, logs and the CA file.
func (e *Emulator) StateDir() string { return e.stateDir }

// Python is the interpreter that runs the apps.
func (e *Emulator) Python() string { return e.python }

// ProductionURL is the URL of the app's production host.
func (e *Emulator) ProductionURL(app string) string { return e.SlotURL(app, "production") }

// SlotURL is the URL of a slot's host ("production" or "" for production).
func (e *Emulator) SlotURL(app, slot string) string {
	sl := e.findSlot(app, slot)
	if sl == nil {
		return ""
	}
	return "http://" + sl.host
}

// SCMURL is the URL of a slot's Kudu (SCM) site.
func (e *Emulator) SCMURL(app, slot string) string {
	sl := e.findSlot(app, slot)
	if sl == nil {
		return ""
	}
	return "http://" + sl.scmHost
}

// CDNURL is the URL of a CDN or Front Door endpoint's host.
func (e *Emulator) CDNURL(profile, endpoint string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.profiles {
		if strings.EqualFold(p.cfg.Name, profile) {
			for _, ep := range p.endpoints {
				if strings.EqualFold(ep.cfg.Name, endpoint) {
					return "http://" + ep.host
				}
			}
		}
	}
	return ""
}

// Env is the export block: the settings under which `djdeploy release`
// needs nothing else. The first app, its first slot and the first Front
// Door (else first) CDN endpoint are named.
func (e *Emulator) Env() map[string]string {
	a := e.res.Apps[0]
	slot := "production"
	if len(a.Slots) > 0 {
		slot = a.Slots[0]
	}
	env := map[string]string{
		// https: azure-core clients (az, the Python SDK) send no bearer token
		// over plain http; DJDEPLOY_CA_FILE / REQUESTS_CA_BUNDLE trust it.
		"DJDEPLOY_ARM_ENDPOINT":     e.ARMTLSEndpoint(),
		"AZURE_CLIENT_ID":           e.cfg.ClientID,
		"AZURE_CLIENT_SECRET":       e.cfg.ClientSecret,
		"DJDEPLOY_ARM_AUDIENCE":     ARMAudience,
		"DJDEPLOY_ACCESS_TOKEN":     e.token,
		"AZURE_SUBSCRIPTION_ID":     e.res.Subscription,
		"AZURE_TENANT_ID":           e.res.Tenant,
		"AZURE_AUTHORITY_HOST":      e.AuthorityHost(),
		"DJDEPLOY_CA_FILE":          e.caFile,
		"DJDEPLOY_RESOURCE_GROUP":   a.ResourceGroup,
		"DJDEPLOY_APP":              a.Name,
		"DJDEPLOY_SLOT":             slot,
		"DJDEPLOY_STATIC_CONTAINER": e.res.StaticContainer,
		"DJDEPLOY_STATIC_PREFIX":    e.res.StaticPrefix,
		AdminSecretEnv:              e.adminSecret,
		// Application Insights' query API (appinsights.go) is served beside ARM.
		"DJDEPLOY_APPINSIGHTS_ENDPOINT": e.armURL,
	}
	if e.blobConn != "" {
		env["AZURE_STORAGE_CONNECTION_STRING"] = e.blobConn
	}
	var chosen *ProfileConfig
	for i := range e.res.CDN {
		p := &e.res.CDN[i]
		if len(p.Endpoints) == 0 {
			continue
		}
		if chosen == nil || (isFrontDoorSKU(p.SKU) && !isFrontDoorSKU(chosen.SKU)) {
			chosen = p
		}
	}
	if chosen != nil {
		env["DJDEPLOY_CDN_PROFILE"] = chosen.Name
		env["DJDEPLOY_CDN_ENDPOINT"] = chosen.Endpoints[0].Name
	}
	return env
}

// ExportBlock renders Env as sorted `export NAME='value'` lines.
func (e *Emulator) ExportBlock() string {
	env := e.Env()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(env[k]))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=+,@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (e *Emulator) logf(format string, args ...any) {
	if e.cfg.Log == nil {
		return
	}
	e.logMu.Lock()
	defer e.logMu.Unlock()
	fmt.Fprintf(e.cfg.Log, time.Now().Format("15:04:05.000")+" "+format+"\n", args...)
}

func (e *Emulator) countToken() { e.tokens.Add(1) }

// findPython picks the interpreter that runs apps deployed without a
// build (SCM_DO_BUILD_DURING_DEPLOYMENT unset): the given one, else python3
// on PATH. A build's app runs from its own antenv (oryx.go).
func findPython(p string) (string, error) {
	if p == "" {
		p = "python3"
	}
	lp, err := exec.LookPath(p)
	if err != nil {
		return "", fmt.Errorf("python %q not found: install Python 3.12 (App Service's default) or pass --python", p)
	}
	// Absolute: builds and apps run in their release folders, where a
	// relative path such as .tools/py/bin/python means nothing.
	if abs, err := filepath.Abs(lp); err == nil {
		lp = abs
	}
	return lp, nil
}

// writeShims puts python, python3 and gunicorn commands that run the
// emulator's interpreter first on the apps' PATH, so a startup command
// such as "gunicorn ..." uses the same Python as the default command.
func (e *Emulator) writeShims() error {
	dir := filepath.Join(e.stateDir, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	scripts := map[string]string{
		"python":   "exec " + shellQuote(e.python) + ` "$@"`,
		"python3":  "exec " + shellQuote(e.python) + ` "$@"`,
		"gunicorn": "exec " + shellQuote(e.python) + ` -m gunicorn "$@"`,
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// AdminSecret is the bearer token the admin endpoints demand (also in Env
// as DJDEPLOY_EMULATOR_ADMIN_SECRET).
func (e *Emulator) AdminSecret() string { return e.adminSecret }

// AdminURL is the base of the admin endpoints (/_emulator/state, faults...).
func (e *Emulator) AdminURL() string { return "http://" + e.armHost + "/_emulator" }
