// Package cdn purges Azure Front Door (Standard/Premium) and classic Azure
// CDN endpoints: exactly the changed paths, in batches of at most 100, a few
// requests at once, collapsed into directory wildcards only when the paths
// would need too many requests.
package cdn

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/cdn/armcdn/v2"
	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/webfiles"
	"golang.org/x/sync/errgroup"
)

// Kind is the kind of CDN a profile is.
type Kind string

const (
	FrontDoor Kind = "frontdoor" // Standard_AzureFrontDoor, Premium_AzureFrontDoor (afdEndpoints)
	Classic   Kind = "cdn"       // every other SKU (endpoints)
)

// Limits from Azure: "URLs in a single cache purge call: 100" for both
// classic CDN and Front Door Standard/Premium.
const (
	MaxPathsPerRequest = 100
	DefaultMaxRequests = 10
	// DefaultConcurrency keeps well inside ARM's write throttling (a token
	// bucket of 200 writes refilled at 10/s) and classic CDN's limit on
	// concurrent purges.
	DefaultConcurrency = 4
)

// Purger purges one subscription's CDN and Front Door endpoints.
type Purger struct {
	profiles  *armcdn.ProfilesClient
	endpoints *armcdn.EndpointsClient
	afd       *armcdn.AFDEndpointsClient
	groups    *armcdn.AFDOriginGroupsClient
	origins   *armcdn.AFDOriginsClient
	log       progress.Reporter

	// PollFrequency is how often a purge's operation is polled when Azure
	// sends no Retry-After. Tests shorten it.
	PollFrequency time.Duration
}

// New returns a purger. Tests swap the transport through opts.
func New(subscription string, cred azcore.TokenCredential, opts *arm.ClientOptions, log progress.Reporter) (*Purger, error) {
	if subscription == "" {
		return nil, problem.Usagef("set --subscription or AZURE_SUBSCRIPTION_ID", "no Azure subscription given")
	}
	f, err := armcdn.NewClientFactory(subscription, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the CDN clients: %w", err)
	}
	if log == nil {
		log = progress.Discard
	}
	return &Purger{profiles: f.NewProfilesClient(), endpoints: f.NewEndpointsClient(), afd: f.NewAFDEndpointsClient(),
		groups: f.NewAFDOriginGroupsClient(), origins: f.NewAFDOriginsClient(),
		log: log, PollFrequency: 10 * time.Second}, nil
}

// Kind reads the profile's SKU: Front Door Standard/Premium, or classic.
func (p *Purger) Kind(ctx context.Context, rg, profile string) (Kind, string, error) {
	r, err := p.profiles.Get(ctx, rg, profile, nil)
	if err != nil {
		return "", "", armError(err, "reading CDN profile "+profile)
	}
	sku := ""
	if r.SKU != nil && r.SKU.Name != nil {
		sku = string(*r.SKU.Name)
	}
	switch armcdn.SKUName(sku) {
	case armcdn.SKUNameStandardAzureFrontDoor, armcdn.SKUNamePremiumAzureFrontDoor:
		return FrontDoor, sku, nil
	}
	return Classic, sku, nil
}

// OriginPath returns a classic endpoint's origin path ("" for Front Door,
// whose origin path lives on the route: give it as cdn-origin-path).
func (p *Purger) OriginPath(ctx context.Context, rg, profile, endpoint string, kind Kind) (string, error) {
	if kind != Classic {
		return "", nil
	}
	r, err := p.endpoints.Get(ctx, rg, profile, endpoint, nil)
	if err != nil {
		return "", armError(err, "reading CDN endpoint "+endpoint)
	}
	if r.Properties == nil || r.Properties.OriginPath == nil {
		return "", nil
	}
	return *r.Properties.OriginPath, nil
}

// Request is a purge.
type Request struct {
	ResourceGroup string
	Profile       string
	Endpoint      string
	Kind          Kind     // "" : read from the profile's SKU
	Domains       []string // Front Door only; empty: every domain of the endpoint
	Paths         []string // URL paths
	MaxRequests   int      // 0: DefaultMaxRequests
	Concurrency   int      // 0: DefaultConcurrency
	NoWait        bool     // return once every request is accepted
	Timeout       time.Duration
}

// Result says what was purged.
type Result struct {
	Kind      Kind     `json:"kind"`
	Profile   string   `json:"profile"`
	Endpoint  string   `json:"endpoint"`
	Requested int      `json:"paths_requested"`
	Paths     []string `json:"paths_purged"`
	Collapsed bool     `json:"collapsed"`
	Requests  int      `json:"requests"`
	Waited    bool     `json:"waited"`
	Seconds   float64  `json:"seconds"`
}

// Purge purges the paths: normalised, collapsed into wildcards if they need
// more than MaxRequests requests, sent in batches of 100, Concurrency at
// once, and (unless NoWait) waited for within Timeout.
func (p *Purger) Purge(ctx context.Context, r Request) (*Result, error) {
	start := time.Now()
	if r.ResourceGroup == "" || r.Profile == "" || r.Endpoint == "" {
		return nil, problem.Usagef("set --resource-group, --cdn-profile and --cdn-endpoint", "purge needs the resource group, CDN profile and endpoint")
	}
	paths, err := NormalizePaths(r.Paths)
	if err != nil {
		return nil, err
	}
	res := &Result{Kind: r.Kind, Profile: r.Profile, Endpoint: r.Endpoint, Requested: len(paths)}
	if len(paths) == 0 {
		p.log.Infof("nothing to purge")
		return res, nil
	}
	if r.Kind == "" {
		k, sku, err := p.Kind(ctx, r.ResourceGroup, r.Profile)
		if err != nil {
			return nil, err
		}
		r.Kind, res.Kind = k, k
		p.log.Infof("profile %s is %s (%s)", r.Profile, kindName(k), sku)
	}
	if len(r.Domains) > 0 && r.Kind != FrontDoor {
		return nil, problem.Usagef("remove --domain; it applies to Front Door profiles only", "profile %s is a classic CDN profile, which purges every domain", r.Profile)
	}
	if r.MaxRequests <= 0 {
		r.MaxRequests = DefaultMaxRequests
	}
	if r.Concurrency <= 0 {
		r.Concurrency = DefaultConcurrency
	}
	if r.Timeout <= 0 {
		r.Timeout = 20 * time.Minute
	}
	collapsed := Collapse(paths, r.MaxRequests*MaxPathsPerRequest)
	if len(collapsed) != len(paths) {
		res.Collapsed = true
		p.log.Infof("%d paths would need more than %d requests; purging %d wildcard paths instead", len(paths), r.MaxRequests, len(collapsed))
	}
	res.Paths = collapsed
	batches := Batches(collapsed, MaxPathsPerRequest)
	res.Requests = len(batches)
	res.Waited = !r.NoWait

	tctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	g, gctx := errgroup.WithContext(tctx)
	g.SetLimit(r.Concurrency)
	var done int64
	doneCh := make(chan struct{}, len(batches))
	for i, b := range batches {
		g.Go(func() error {
			if err := p.purgeBatch(gctx, r, b); err != nil {
				return fmt.Errorf("batch %d of %d (%d paths): %w", i+1, len(batches), len(b), err)
			}
			doneCh <- struct{}{}
			return nil
		})
	}
	verb := "purged"
	if r.NoWait {
		verb = "accepted"
	}
	// The counter finishes before Purge returns: it writes to the caller's
	// reporter, which may be gone (or read) once Purge has returned.
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		for range doneCh {
			done++
			p.log.Count("purge requests "+verb, done, int64(len(batches)))
		}
	}()
	// A purge that waits may take minutes (Front Door's often do).
	stopBeat := progress.Long(p.log, "purging "+r.Endpoint)
	err = g.Wait()
	stopBeat()
	close(doneCh)
	<-counted
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		if tctx.Err() != nil && ctx.Err() == nil {
			return res, problem.Failf("raise purge-timeout, or use --no-wait (the purge continues in Azure)",
				"purging %s did not complete within %s", r.Endpoint, r.Timeout)
		}
		if _, ok := problem.As(err); ok {
			return res, err
		}
		return res, armError(err, "purging endpoint "+r.Endpoint)
	}
	p.log.Infof("%s %d paths on %s in %d request(s)", verb, len(collapsed), r.Endpoint, len(batches))
	return res, nil
}

func kindName(k Kind) string {
	if k == FrontDoor {
		return "Azure Front Door Standard/Premium"
	}
	return "classic Azure CDN"
}

func (p *Purger) purgeBatch(ctx context.Context, r Request, paths []string) error {
	ptrs := to.SliceOfPtrs(paths...)
	opts := &runtime.PollUntilDoneOptions{Frequency: p.PollFrequency}
	if r.Kind == FrontDoor {
		params := armcdn.AfdPurgeParameters{ContentPaths: ptrs}
		if len(r.Domains) > 0 {
			params.Domains = to.SliceOfPtrs(r.Domains...)
		}
		poller, err := p.afd.BeginPurgeContent(ctx, r.ResourceGroup, r.Profile, r.Endpoint, params, nil)
		if err != nil {
			return err
		}
		if r.NoWait {
			return nil
		}
		_, err = poller.PollUntilDone(ctx, opts)
		return err
	}
	poller, err := p.endpoints.BeginPurgeContent(ctx, r.ResourceGroup, r.Profile, r.Endpoint, armcdn.PurgeParameters{ContentPaths: ptrs}, nil)
	if err != nil {
		return err
	}
	if r.NoWait {
		return nil
	}
	_, err = poller.PollUntilDone(ctx, opts)
	return err
}

// NormalizePaths trims, drops blanks and query strings, adds the leading
// slash, and removes duplicates, returning the paths sorted.
func NormalizePaths(in []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, raw := range in {
		s := strings.TrimSpace(raw)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if strings.Contains(s, "://") {
			u, err := url.Parse(s)
			if err != nil {
				return nil, problem.Usagef("give URL paths such as /static/app.css", "cannot parse purge path %q", s)
			}
			s = u.Path
		}
		// CDN and Front Door ignore query strings when purging.
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i]
		}
		if !strings.HasPrefix(s, "/") {
			s = "/" + s
		}
		// Front Door and classic CDN read * as a wildcard and accept it
		// only as a final "/*"; anywhere else Azure answers 400, which in a
		// release comes after the swap. Refused before any request.
		if strings.Contains(strings.TrimSuffix(s, "/*"), "*") {
			return nil, problem.Usagef("purge the folder instead, e.g. /static/css/* (Azure accepts * only as a final /*)",
				"purge path %q has a * that is not a final /*", s)
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Collapse reduces paths to at most limit entries by replacing files with
// the wildcard of their directory (/dir/* — the form both classic CDN and
// Front Door document), from the deepest directories up, and finally with
// /* when even top-level directories are too many.
func Collapse(paths []string, limit int) []string {
	if len(paths) <= limit {
		return paths
	}
	maxDepth := 0
	for _, p := range paths {
		if d := len(dirSegments(p)); d > maxDepth {
			maxDepth = d
		}
	}
	for depth := maxDepth; depth >= 1; depth-- {
		seen := map[string]bool{}
		var out []string
		for _, p := range paths {
			q := p
			if segs := dirSegments(p); len(segs) >= depth {
				q = "/" + strings.Join(segs[:depth], "/") + "/*"
			}
			if !seen[q] {
				seen[q] = true
				out = append(out, q)
			}
		}
		if len(out) <= limit {
			sort.Strings(out)
			return out
		}
	}
	return []string{"/*"}
}

// dirSegments returns the directory segments of a path: /a/b/c.css -> [a b],
// /a/b/* -> [a b].
func dirSegments(p string) []string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) <= 1 {
		return nil
	}
	return parts[:len(parts)-1]
}

// Batches splits paths into requests of at most size paths.
func Batches(paths []string, size int) [][]string {
	var out [][]string
	for len(paths) > 0 {
		n := min(size, len(paths))
		out = append(out, paths[:n])
		paths = paths[n:]
	}
	return out
}

// BlobNamesToPaths maps blob names (relative to the container, as static
// sync reports them) to URL paths on the endpoint. The origin path is where
// the endpoint's requests land on the origin: for a Blob origin,
// /<container>[/<prefix>]. Blobs outside it are not served by the endpoint
// and are returned in skipped. For the $web container (static website) URLs
// carry no container segment.
func BlobNamesToPaths(names []string, container, originPath string) (paths, skipped []string) {
	raw, skipped := rawPaths(names, container, originPath)
	return encodePaths(raw), skipped
}

// encodePaths percent-encodes URL paths built from blob names as the pages
// link them (webfiles.URLPath: all but A-Z a-z 0-9 - _ . ~ / ! * ( ) ').
// Unencoded, "hash#tag.css" and "q?mark.css" were purged as ".../hash" and
// ".../q", and the CDN kept the stale files. A "*" is a wildcard to Azure,
// which refuses it anywhere but at the end (400, after the swap): a file
// with one is purged through its folder's "/dir/*" instead, so its path is
// never left owed to every later release.
func encodePaths(raw []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range raw {
		if i := strings.IndexByte(p, '*'); i >= 0 {
			p = webfiles.URLPath(p[:strings.LastIndexByte(p[:i], '/')+1]) + "*"
		} else {
			p = webfiles.URLPath(p)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// rawPaths maps blob names to unencoded URL paths on the endpoint.
func rawPaths(names []string, container, originPath string) (paths, skipped []string) {
	origin := "/" + strings.Trim(originPath, "/")
	if origin == "/" {
		origin = ""
	}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		obj := "/" + strings.TrimLeft(n, "/")
		if container != "" && container != "$web" {
			obj = "/" + container + obj
		}
		switch {
		case origin == "":
			paths = append(paths, obj)
		case obj == origin:
			paths = append(paths, "/")
		case strings.HasPrefix(obj, origin+"/"):
			paths = append(paths, strings.TrimPrefix(obj, origin))
		case container != "" && container != "$web" && strings.HasPrefix(obj, "/"+container+"/") && !strings.HasPrefix(origin, "/"+container):
			// The origin path does not name the container: the origin is a
			// host that already maps to the container (a custom origin).
			rest := strings.TrimPrefix(obj, "/"+container)
			if strings.HasPrefix(rest, origin+"/") {
				paths = append(paths, strings.TrimPrefix(rest, origin))
			} else {
				skipped = append(skipped, n)
			}
		default:
			skipped = append(skipped, n)
		}
	}
	return paths, skipped
}

// armFixes are the fixes for ARM's answers about a CDN or Front Door
// profile, by HTTP status.
var armFixes = map[int]string{
	http.StatusNotFound:        "check the resource group (cdn-resource-group), profile and endpoint names",
	http.StatusForbidden:       "give the principal the CDN Endpoint Contributor role (or Front Door's equivalent) on the profile",
	http.StatusTooManyRequests: "Azure is throttling purges; lower the number of paths or retry later",
	http.StatusBadRequest:      "check the paths (Front Door accepts full paths and /dir/* wildcards) and the domains (they must belong to the endpoint)",
}

// armError turns an ARM error into a user-facing failure with a fix.
func armError(err error, doing string) error { return azure.ARMError(err, doing, armFixes) }
