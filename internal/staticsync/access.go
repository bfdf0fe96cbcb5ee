package staticsync

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// Access says whether browsers can read the files straight from storage.
type Access struct {
	// Level is the container's public access: "private", "blob" or "container".
	Level string `json:"level"`
	// Anonymous is true when an anonymous read of a file worked.
	Anonymous bool `json:"anonymous"`
	// Advice explains what the level means for serving the site.
	Advice string `json:"advice"`
}

// CheckAccess reads the container's public access level and, when it is
// public, tries an anonymous read of probe (a blob name) to learn whether
// the account allows anonymous access at all (an account setting overrides
// the container's).
func (c *Client) CheckAccess(ctx context.Context, probe string) (Access, error) {
	p, err := c.container.GetProperties(ctx, nil)
	if err != nil {
		return Access{}, c.explain(err, "reading container "+c.name+"'s access level")
	}
	a := Access{Level: "private"}
	if p.BlobPublicAccess != nil && *p.BlobPublicAccess != "" {
		a.Level = string(*p.BlobPublicAccess)
	}
	if a.Level == "private" {
		a.Advice = fmt.Sprintf("anonymous read access is off for container %s: browsers cannot fetch %s directly. "+
			"Serve the files through Azure Front Door or CDN with this container as the origin (STATIC_URL pointing at the CDN), "+
			"or, to serve straight from storage, allow blob anonymous access on the account and set the container's access level to 'blob'.",
			c.name, c.URL())
		return a, nil
	}
	if probe == "" {
		a.Advice = fmt.Sprintf("container %s allows anonymous reads (%s); the account may still forbid them", c.name, a.Level)
		return a, nil
	}
	anon, err := blob.NewClientWithNoCredential(c.URL()+"/"+escapePath(probe), &blob.ClientOptions{ClientOptions: c.clientOptions()})
	if err != nil {
		return a, nil
	}
	_, err = anon.GetProperties(ctx, nil)
	switch {
	case err == nil:
		a.Anonymous = true
		a.Advice = fmt.Sprintf("files are publicly readable at %s/%s...; put a CDN in front for caching and HTTPS on your domain", c.URL(), c.prefix)
	default:
		var re *azcore.ResponseError
		if errors.As(err, &re) && (re.ErrorCode == "PublicAccessNotPermitted" || re.StatusCode == 409) {
			a.Advice = fmt.Sprintf("container %s is marked '%s', but the storage account forbids anonymous access, so browsers get 409: "+
				"serve the files through Front Door or CDN, or allow blob anonymous access on the account", c.name, a.Level)
		} else {
			a.Advice = fmt.Sprintf("container %s is marked '%s', but an anonymous read failed (%s)", c.name, a.Level, shortError(err))
		}
	}
	return a, nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// corsMethods and corsExposed mark the CORS rule djdeploy owns, so a
// later run replaces it rather than piling up rules (an account has at
// most five).
const (
	corsMethods = "GET,HEAD,OPTIONS"
	corsExposed = "Content-Length,Content-Type,Content-Encoding,ETag"
	corsMaxAge  = 86400
)

// SetCORS makes sure the Blob service lets origins fetch files
// cross-origin (web fonts and module scripts need it when the site and the
// files are on different hosts). It changes nothing when the rule is
// already there, and leaves other rules alone.
func (c *Client) SetCORS(ctx context.Context, origins []string) (changed bool, err error) {
	if len(origins) == 0 {
		return false, nil
	}
	for _, o := range origins {
		if o == "*" {
			continue
		}
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			return false, problem.Usagef("give origins as scheme://host[:port], e.g. https://www.example.com", "static-cors-origins: %q is not an origin", o)
		}
	}
	sorted := append([]string(nil), origins...)
	sort.Strings(sorted)
	want := strings.Join(sorted, ",")
	props, err := c.svc.GetProperties(ctx, nil)
	if err != nil {
		return false, c.explain(err, "reading the Blob service's CORS rules (needs an account key or the Storage Account Contributor role)")
	}
	var rules []*service.CORSRule
	for _, r := range props.CORS {
		if r != nil && deref(r.AllowedMethods) == corsMethods && deref(r.ExposedHeaders) == corsExposed {
			if deref(r.AllowedOrigins) == want {
				return false, nil
			}
			continue // ours, with other origins: replaced below
		}
		rules = append(rules, r)
	}
	if len(rules) >= 5 {
		return false, problem.Failf("remove a CORS rule from the storage account (at most five are allowed)",
			"the Blob service already has %d CORS rules", len(rules))
	}
	rules = append(rules, &service.CORSRule{
		AllowedOrigins:  to.Ptr(want),
		AllowedMethods:  to.Ptr(corsMethods),
		AllowedHeaders:  to.Ptr("*"),
		ExposedHeaders:  to.Ptr(corsExposed),
		MaxAgeInSeconds: to.Ptr(int32(corsMaxAge)),
	})
	// Only CORS is sent: Set Blob Service Properties keeps the elements
	// it is not given.
	if _, err := c.svc.SetProperties(ctx, &service.SetPropertiesOptions{CORS: rules}); err != nil {
		return false, c.explain(err, "setting the Blob service's CORS rules (needs an account key or the Storage Account Contributor role)")
	}
	return true, nil
}
