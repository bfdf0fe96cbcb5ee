package cdn

import (
	"context"
	"strings"

	"github.com/djdeploy/djdeploy/internal/azure"
)

// Endpoint is what a release needs to know of a CDN or Front Door endpoint
// to point Django's STATIC_URL at it.
type Endpoint struct {
	Kind     Kind
	SKU      string
	HostName string
	// OriginPath is a classic endpoint's origin path ("" for Front Door,
	// whose origin path lives on its route).
	OriginPath string
}

// URL is the endpoint's base URL: https, or http for a loopback host (the
// emulator), as everywhere in djdeploy.
func (e *Endpoint) URL() string {
	host := e.HostName
	h := host
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	if azure.IsLoopbackHost(strings.Trim(h, "[]")) {
		return "http://" + host
	}
	return "https://" + host
}

// GetEndpoint reads the profile's kind and the endpoint's host name.
func (p *Purger) GetEndpoint(ctx context.Context, rg, profile, endpoint string) (*Endpoint, error) {
	kind, sku, err := p.Kind(ctx, rg, profile)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{Kind: kind, SKU: sku}
	if kind == FrontDoor {
		r, err := p.afd.Get(ctx, rg, profile, endpoint, nil)
		if err != nil {
			return nil, armError(err, "reading Front Door endpoint "+endpoint)
		}
		if r.Properties != nil && r.Properties.HostName != nil {
			e.HostName = *r.Properties.HostName
		}
		return e, nil
	}
	r, err := p.endpoints.Get(ctx, rg, profile, endpoint, nil)
	if err != nil {
		return nil, armError(err, "reading CDN endpoint "+endpoint)
	}
	if r.Properties != nil {
		if r.Properties.HostName != nil {
			e.HostName = *r.Properties.HostName
		}
		if r.Properties.OriginPath != nil {
			e.OriginPath = *r.Properties.OriginPath
		}
	}
	return e, nil
}
