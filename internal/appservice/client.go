// Package appservice deploys a Django release to an Azure App Service slot
// and moves it into production: Kudu OneDeploy with Entra ID, deployment
// status polling, the app settings and startup command the release needs,
// warm-up, slot swap, verification and swap-back.
//
// ARM calls go through the armappservice SDK client; Kudu calls through an
// azcore pipeline with the ARM bearer token and retries. Constructors take
// an azcore.TokenCredential and *arm.ClientOptions so tests swap the
// transport.
package appservice

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
)

// Production is the slot name that means the site itself.
const Production = "production"

const moduleName = "djdeploy/appservice"
const moduleVersion = "v1.0.0"

// Client talks to one subscription's App Service apps.
type Client struct {
	subscription string
	webApps      *armappservice.WebAppsClient
	plans        *armappservice.PlansClient
	arm          *arm.Client // raw ARM calls (deployment status)
	cred         azcore.TokenCredential
	opts         *arm.ClientOptions
	http         *http.Client // warm-up and verification requests
	log          progress.Reporter

	// PollInterval is the first wait between status polls; it grows to
	// MaxPollInterval. Tests shorten both.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
}

// New returns a client. httpClient makes the warm-up and verification
// requests to the app's own hosts (nil: a default client); log receives
// progress (nil: discarded).
func New(subscription string, cred azcore.TokenCredential, opts *arm.ClientOptions, httpClient *http.Client, log progress.Reporter) (*Client, error) {
	if subscription == "" {
		return nil, problem.Usagef("set --subscription or AZURE_SUBSCRIPTION_ID", "no Azure subscription given")
	}
	if opts == nil {
		opts = &arm.ClientOptions{}
	}
	wa, err := armappservice.NewWebAppsClient(subscription, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the web apps client: %w", err)
	}
	pl, err := armappservice.NewPlansClient(subscription, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the plans client: %w", err)
	}
	ac, err := arm.NewClient(moduleName, moduleVersion, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the ARM client: %w", err)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	if log == nil {
		log = progress.Discard
	}
	return &Client{subscription: subscription, webApps: wa, plans: pl, arm: ac, cred: cred, opts: opts,
		http: httpClient, log: log, PollInterval: 2 * time.Second, MaxPollInterval: 15 * time.Second}, nil
}

// Target names an app and slot.
type Target struct {
	ResourceGroup string
	App           string
	Slot          string // "" or "production" means the site itself
}

// IsProduction reports whether t is the site itself.
func (t Target) IsProduction() bool { return t.Slot == "" || strings.EqualFold(t.Slot, Production) }

func (t Target) String() string {
	if t.IsProduction() {
		return t.App + " (production)"
	}
	return t.App + "/" + t.Slot
}

func (t Target) validate() error {
	var missing []string
	if t.ResourceGroup == "" {
		missing = append(missing, "--resource-group")
	}
	if t.App == "" {
		missing = append(missing, "--app")
	}
	if len(missing) > 0 {
		return problem.Usagef("set "+strings.Join(missing, " and "), "missing %s", strings.Join(missing, " and "))
	}
	// Names go into ARM URL paths: a "/" or ".." would address another
	// resource, so anything Azure would not accept stops here (exit 2).
	if !resourceGroupRe.MatchString(t.ResourceGroup) || strings.HasSuffix(t.ResourceGroup, ".") {
		return problem.Usagef("use the resource group's name: up to 90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'",
			"invalid resource group name %q", t.ResourceGroup)
	}
	if !appNameRe.MatchString(t.App) {
		return problem.Usagef("use the web app's name: 2-60 letters, digits and hyphens, not starting or ending with a hyphen",
			"invalid app name %q", t.App)
	}
	if !t.IsProduction() && !appNameRe.MatchString(t.Slot) {
		return problem.Usagef("use the slot's name, e.g. staging: letters, digits and hyphens",
			"invalid slot name %q", t.Slot)
	}
	return nil
}

// Validate checks the names before anything is built or changed.
func (t Target) Validate() error { return t.validate() }

var (
	resourceGroupRe = regexp.MustCompile(`^[-\w.()]{1,90}$`)
	appNameRe       = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,58}[A-Za-z0-9])?$`)
)

// Site is what the commands need from a site or slot resource.
type Site struct {
	Target
	ID              string
	DefaultHostName string
	SCMHost         string // from hostNameSslStates (hostType Repository)
	ServerFarmID    string
	State           string
}

// GetSite reads the site or slot.
func (c *Client) GetSite(ctx context.Context, t Target) (*Site, error) {
	s, err := c.getSite(ctx, t)
	if err != nil {
		return nil, err
	}
	site := siteOf(t, s)
	return &site, nil
}

// getSite reads the site or slot resource.
func (c *Client) getSite(ctx context.Context, t Target) (armappservice.Site, error) {
	if err := t.validate(); err != nil {
		return armappservice.Site{}, err
	}
	if t.IsProduction() {
		r, err := c.webApps.Get(ctx, t.ResourceGroup, t.App, nil)
		if err != nil {
			return armappservice.Site{}, armError(err, "reading web app "+t.String())
		}
		return r.Site, nil
	}
	r, err := c.webApps.GetSlot(ctx, t.ResourceGroup, t.App, t.Slot, nil)
	if err != nil {
		return armappservice.Site{}, armError(err, "reading slot "+t.String())
	}
	return r.Site, nil
}

// siteOf is what the commands need from the site or slot resource s.
func siteOf(t Target, s armappservice.Site) Site {
	out := Site{Target: t, ID: deref(s.ID)}
	if p := s.Properties; p != nil {
		out.DefaultHostName = deref(p.DefaultHostName)
		out.ServerFarmID = deref(p.ServerFarmID)
		out.State = deref(p.State)
		for _, h := range p.HostNameSSLStates {
			if h != nil && h.HostType != nil && *h.HostType == armappservice.HostTypeRepository && deref(h.Name) != "" {
				out.SCMHost = deref(h.Name)
				break
			}
		}
	}
	return out
}

// hostURL turns an ARM host name into a base URL: https, or http for
// loopback hosts (the emulator). Anything else is refused rather than
// guessed.
func hostURL(what, host string) (string, error) {
	if host == "" {
		return "", problem.Failf("check that the app exists and that the principal can read it", "Azure reported no %s host name", what)
	}
	if strings.Contains(host, "://") {
		if err := azure.CheckURL(what, host); err != nil {
			return "", err
		}
		return strings.TrimRight(host, "/"), nil
	}
	u := &url.URL{Scheme: "https", Host: host}
	if azure.IsLoopbackHost(u.Hostname()) {
		u.Scheme = "http"
	}
	return u.String(), nil
}

// armFixes are the fixes for ARM's answers about an app or slot, by HTTP
// status.
var armFixes = map[int]string{
	http.StatusNotFound:        "check the subscription, resource group, app and slot names",
	http.StatusForbidden:       "give the principal a role that allows this (e.g. Website Contributor on the web app)",
	http.StatusUnauthorized:    "the token was refused; check the credential and the arm-audience",
	http.StatusConflict:        "another operation is running on the app; retry when it has finished",
	http.StatusTooManyRequests: "Azure Resource Manager is throttling this principal; retry later",
}

// armError turns an ARM error into a user-facing failure with a fix.
func armError(err error, doing string) error { return azure.ARMError(err, doing, armFixes) }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// backoff returns the next poll interval.
func (c *Client) backoff(d time.Duration) time.Duration {
	d = d * 3 / 2
	if d > c.MaxPollInterval {
		d = c.MaxPollInterval
	}
	return d
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
