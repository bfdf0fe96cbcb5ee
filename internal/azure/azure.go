// Package azure holds what every Azure client in djdeploy shares: which
// cloud and endpoints to talk to, how to sign in, the client options that
// carry retries and the test transport, and the rule that plain HTTP goes
// only to loopback hosts.
package azure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/redact"
)

// Config is where and how to reach Azure. The zero value means the public
// cloud with its default endpoints.
type Config struct {
	Cloud         string // public, china, usgov
	ARMEndpoint   string // overrides the cloud's
	ARMAudience   string // overrides the cloud's
	AuthorityHost string // overrides the cloud's
	CAFile        string // extra trusted roots (the emulator's authority)

	// Transport, when set, replaces the HTTP transport (tests).
	Transport policy.Transporter
}

// CloudConfig returns the azcore cloud configuration, endpoints overridden.
func (c Config) CloudConfig() (cloud.Configuration, error) {
	var base cloud.Configuration
	switch strings.ToLower(c.Cloud) {
	case "", "public", "azurecloud":
		base = cloud.AzurePublic
	case "china", "azurechinacloud":
		base = cloud.AzureChina
	case "usgov", "azureusgovernment":
		base = cloud.AzureGovernment
	default:
		return base, problem.Usagef("use public, china or usgov", "unknown cloud %q", c.Cloud)
	}
	out := cloud.Configuration{ActiveDirectoryAuthorityHost: base.ActiveDirectoryAuthorityHost, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}
	for k, v := range base.Services {
		out.Services[k] = v
	}
	arm := out.Services[cloud.ResourceManager]
	if c.ARMEndpoint != "" {
		if err := CheckURL("arm-endpoint", c.ARMEndpoint); err != nil {
			return out, err
		}
		arm.Endpoint = strings.TrimRight(c.ARMEndpoint, "/")
	}
	if c.ARMAudience != "" {
		arm.Audience = c.ARMAudience
	}
	out.Services[cloud.ResourceManager] = arm
	if c.AuthorityHost != "" {
		if err := CheckURL("authority-host", c.AuthorityHost); err != nil {
			return out, err
		}
		out.ActiveDirectoryAuthorityHost = c.AuthorityHost
	}
	return out, nil
}

// ARMScope is the token scope for ARM and Kudu: the ARM audience + /.default.
func (c Config) ARMScope() (string, error) {
	cc, err := c.CloudConfig()
	if err != nil {
		return "", err
	}
	aud := cc.Services[cloud.ResourceManager].Audience
	return strings.TrimRight(aud, "/") + "/.default", nil
}

// ClientOptions returns ARM client options: the cloud, the test transport,
// the extra CA, retries that suit a deploy tool, and plain HTTP allowed
// only when the ARM endpoint is a loopback host.
func (c Config) ClientOptions() (*arm.ClientOptions, error) {
	cc, err := c.CloudConfig()
	if err != nil {
		return nil, err
	}
	tr, err := c.transport()
	if err != nil {
		return nil, err
	}
	opts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud:     cc,
		Transport: tr,
		Retry: policy.RetryOptions{
			// ARM and Kudu answer 429 with Retry-After of up to a minute; a
			// deploy should wait that out rather than fail.
			MaxRetries:    5,
			RetryDelay:    time.Second,
			MaxRetryDelay: 60 * time.Second,
		},
		InsecureAllowCredentialWithHTTP: IsLoopbackURL(cc.Services[cloud.ResourceManager].Endpoint),
	}}
	opts.DisableRPRegistration = true
	return opts, nil
}

// transport returns the configured transport: the test one, or an HTTP
// client that trusts CAFile in addition to the system roots.
func (c Config) transport() (policy.Transporter, error) {
	if c.Transport != nil {
		return c.Transport, nil
	}
	if c.CAFile == "" {
		return nil, nil // azcore's default
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, problem.Usagef("check the ca-file path", "cannot read ca-file %s: %v", c.CAFile, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, problem.Usagef("give a PEM file of CA certificates", "ca-file %s holds no PEM certificate", c.CAFile)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t}, nil
}

// HTTPClient returns a plain *http.Client honouring Transport and CAFile,
// for calls that are not made through an SDK (warm-up, verification).
func (c Config) HTTPClient(timeout time.Duration) (*http.Client, error) {
	tr, err := c.transport()
	if err != nil {
		return nil, err
	}
	switch t := tr.(type) {
	case nil:
		return &http.Client{Timeout: timeout}, nil
	case *http.Client:
		cl := *t
		cl.Timeout = timeout
		return &cl, nil
	default:
		return &http.Client{Timeout: timeout, Transport: transporterRoundTripper{t}}, nil
	}
}

type transporterRoundTripper struct{ t policy.Transporter }

func (r transporterRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.t.Do(req)
}

// IsLoopbackURL reports whether u's host is a loopback address or localhost.
func IsLoopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	return IsLoopbackHost(p.Hostname())
}

// IsLoopbackHost reports whether host is localhost or a loopback IP.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckURL enforces the transport rule for any endpoint: https anywhere,
// http only to loopback hosts (emulators, Azurite).
func CheckURL(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return problem.Usagef("give an absolute URL such as https://management.azure.com", "%s %q is not an absolute URL", name, redact.SAS(raw))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopbackHost(u.Hostname()) {
			return nil
		}
		return problem.Usagef("use https; plain http is allowed only to loopback hosts (emulators)",
			"%s %s uses plain http to a non-loopback host", name, redact.SAS(raw))
	}
	return problem.Usagef("use an https:// URL", "%s %q has unsupported scheme %q", name, redact.SAS(raw), u.Scheme)
}

// StaticToken is a credential that returns a token the user already holds
// (DJDEPLOY_ACCESS_TOKEN). It cannot refresh, so its expiry is set far out
// and Azure answers 401 when it has really expired.
type StaticToken string

func (t StaticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if t == "" {
		return azcore.AccessToken{}, fmt.Errorf("empty access token")
	}
	return azcore.AccessToken{Token: string(t), ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}
