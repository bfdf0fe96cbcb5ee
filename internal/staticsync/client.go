// Package staticsync uploads a folder of collected static files to an Azure
// Blob Storage container: only what changed, decided by content (size and
// MD5, never modification times), in parallel, with the right Content-Type
// and Cache-Control. It records each release's file list in the container,
// prunes files no protected release references, and serialises releases
// with a blob lease.
//
// Everything it keeps for itself (release manifests, the production
// history, the lock blob, the release command's resume state) lives in the
// private container StateContainer of the same account, under
// "<container>/<prefix>.djdeploy/": never where anonymous reads (a public
// container, the CDN) reach it. Versions before kept it under
// "<prefix>.djdeploy/" in the static container; the first lock taken
// moves it (state.go).
package staticsync

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// MetaDir is the folder (below the prefix) that holds djdeploy's own state.
const MetaDir = ".djdeploy/"

// Config says which container to reach and how to sign in. Exactly one of
// ConnectionString, a SAS query in Endpoint, or Credential is used, in that
// order.
type Config struct {
	// Cloud picks the default endpoint suffix: public, china, usgov.
	Cloud string
	// Account is the storage account name (with Credential).
	Account string
	// Endpoint is the Blob service URL (sovereign clouds, Azurite). It may
	// carry a SAS token as its query (a "SAS URL").
	Endpoint string
	// ConnectionString is an account-key or SAS connection string.
	ConnectionString string
	// Credential signs in with Microsoft Entra ID.
	Credential azcore.TokenCredential

	Container string
	Prefix    string

	// Transport replaces the HTTP transport (tests, extra CAs).
	Transport policy.Transporter
	// Concurrency sizes the connection pool; it should match the upload
	// concurrency so connections are reused rather than re-dialled.
	Concurrency int
}

// Client is a container (and prefix) to sync to.
type Client struct {
	svc       *service.Client
	container *container.Client
	state     *container.Client // StateContainer
	name      string
	prefix    string
	endpoint  string // service URL without its query, for messages
	auth      string // "key", "sas", "token": picks the advice on 403
	secrets   []string
	opts      policy.ClientOptions
}

// clientOptions are the transport and retries every client here shares.
func (c *Client) clientOptions() policy.ClientOptions { return c.opts }

// Container returns the container name.
func (c *Client) Container() string { return c.name }

// Prefix returns the normalised blob name prefix ("" or ending in "/").
func (c *Client) Prefix() string { return c.prefix }

// URL returns the container URL without credentials.
func (c *Client) URL() string { return strings.TrimRight(c.endpoint, "/") + "/" + c.name }

var containerName = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`)

// ValidateContainerName checks Azure's rules for container names, so a bad
// name fails before any request with a message saying what is allowed.
func ValidateContainerName(name string) error {
	if name == "$web" || name == "$root" {
		return nil
	}
	if len(name) < 3 || len(name) > 63 || !containerName.MatchString(name) {
		return problem.Usagef("use 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit (e.g. static)",
			"invalid container name %q", name)
	}
	return nil
}

// NormalizePrefix turns a user's prefix into "" or "a/b/".
func NormalizePrefix(p string) (string, error) {
	p = strings.Trim(strings.ReplaceAll(strings.TrimSpace(p), `\`, "/"), "/")
	if p == "" {
		return "", nil
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", problem.Usagef("use a plain folder path such as static or assets/v2", "invalid static prefix %q", p)
		}
	}
	return p + "/", nil
}

func endpointSuffix(cloud string) string {
	switch strings.ToLower(cloud) {
	case "china", "azurechinacloud":
		return "core.chinacloudapi.cn"
	case "usgov", "azureusgovernment":
		return "core.usgovcloudapi.net"
	}
	return "core.windows.net"
}

// Open validates cfg and builds the clients. It sends no request.
func Open(cfg Config) (*Client, error) {
	if err := ValidateContainerName(cfg.Container); err != nil {
		return nil, err
	}
	if cfg.Container == StateContainer {
		return nil, problem.Usagef("use another container for the static files (e.g. static)",
			"container %s holds djdeploy's private state; it cannot hold the static files", StateContainer)
	}
	prefix, err := NormalizePrefix(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	c := &Client{name: cfg.Container, prefix: prefix}
	opts := &service.ClientOptions{ClientOptions: policy.ClientOptions{
		Transport: tunedTransport(cfg.Transport, cfg.Concurrency),
		Retry: policy.RetryOptions{
			// Storage answers 500/503 under load and throttles with 503
			// ServerBusy; a sync of thousands of files should ride those out.
			MaxRetries:    5,
			RetryDelay:    500 * time.Millisecond,
			MaxRetryDelay: 30 * time.Second,
			TryTimeout:    5 * time.Minute,
		},
		Logging: policy.LogOptions{}, // azcore redacts query values in its own logs
	}}

	switch {
	case cfg.ConnectionString != "":
		c.secrets = append(c.secrets, cfg.ConnectionString)
		for _, part := range strings.Split(cfg.ConnectionString, ";") {
			k, v, _ := strings.Cut(part, "=")
			switch strings.TrimSpace(k) {
			case "AccountKey", "SharedAccessSignature":
				if v != "" {
					c.secrets = append(c.secrets, v)
				}
			case "BlobEndpoint":
				if err := azure.CheckURL("BlobEndpoint in the storage connection string", v); err != nil {
					return nil, err
				}
			}
			if strings.TrimSpace(k) == "SharedAccessSignature" {
				c.auth = "sas"
			}
		}
		if c.auth == "" {
			c.auth = "key"
		}
		c.svc, err = service.NewClientFromConnectionString(cfg.ConnectionString, opts)
		if err != nil {
			return nil, problem.Usagef("use the connection string from the portal (Access keys) or one with SharedAccessSignature=, BlobEndpoint=",
				"the storage connection string is malformed (%s)", redactAll(err.Error(), c.secrets))
		}
	case cfg.Endpoint != "" && strings.Contains(cfg.Endpoint, "?"):
		if err := azure.CheckURL("blob-endpoint", cfg.Endpoint); err != nil {
			return nil, err
		}
		u, _ := url.Parse(cfg.Endpoint)
		c.secrets = append(c.secrets, u.RawQuery)
		c.auth = "sas"
		c.svc, err = service.NewClientWithNoCredential(cfg.Endpoint, opts)
		if err != nil {
			return nil, problem.Usagef("give the Blob service URL with a SAS token as its query", "blob-endpoint is not a valid SAS URL")
		}
	case cfg.Credential != nil:
		ep := cfg.Endpoint
		if ep == "" {
			if cfg.Account == "" {
				return nil, problem.Usagef("set --storage-account (or DJDEPLOY_STORAGE_ACCOUNT), --blob-endpoint, or AZURE_STORAGE_CONNECTION_STRING",
					"no storage account given for the static files")
			}
			ep = fmt.Sprintf("https://%s.blob.%s/", cfg.Account, endpointSuffix(cfg.Cloud))
		}
		if err := azure.CheckURL("blob-endpoint", ep); err != nil {
			return nil, err
		}
		// Tokens may travel over plain HTTP only to a local emulator.
		opts.InsecureAllowCredentialWithHTTP = azure.IsLoopbackURL(ep)
		c.auth = "token"
		c.svc, err = service.NewClient(ep, cfg.Credential, opts)
		if err != nil {
			return nil, problem.Usagef("check --blob-endpoint", "cannot use blob endpoint %s: %v", ep, err)
		}
	default:
		return nil, problem.Usagef("set --storage-account (signing in with Azure), AZURE_STORAGE_CONNECTION_STRING, or --blob-endpoint with a SAS token",
			"no storage credentials given for the static files")
	}
	c.opts = opts.ClientOptions
	c.opts.InsecureAllowCredentialWithHTTP = false
	c.container = c.svc.NewContainerClient(c.name)
	c.state = c.svc.NewContainerClient(StateContainer)
	if u, err := url.Parse(c.svc.URL()); err == nil {
		u.RawQuery = ""
		c.endpoint = u.String()
	}
	if err := azure.CheckURL("blob endpoint", c.endpoint); err != nil {
		return nil, err
	}
	return c, nil
}

// tunedTransport keeps as many idle connections per host as there are
// workers: Go's default of 2 (azcore's 10) makes a 32-wide pool re-dial on
// almost every request.
func tunedTransport(t policy.Transporter, concurrency int) policy.Transporter {
	if concurrency < 8 {
		concurrency = 8
	}
	if t != nil {
		hc, ok := t.(*http.Client)
		if !ok {
			return t
		}
		ht, ok := hc.Transport.(*http.Transport)
		if !ok {
			if hc.Transport != nil {
				return t
			}
			ht = http.DefaultTransport.(*http.Transport)
		}
		ht = ht.Clone()
		ht.MaxIdleConnsPerHost = concurrency + 4
		cl := *hc
		cl.Transport = ht
		return &cl
	}
	ht := http.DefaultTransport.(*http.Transport).Clone()
	ht.MaxIdleConns = 2 * (concurrency + 4)
	ht.MaxIdleConnsPerHost = concurrency + 4
	ht.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: ht}
}

// blobName is the full blob name of a path relative to the prefix.
func (c *Client) blobName(rel string) string { return c.prefix + rel }

// metaName is the name, in the state container, of a file of this
// container and prefix's state.
func (c *Client) metaName(name string) string { return c.stateBase() + MetaDir + name }

// stateBase is this container and prefix's folder in the state container.
func (c *Client) stateBase() string { return c.name + "/" + c.prefix }

// legacyMetaName is where versions before kept the file: in the static
// container itself, readable by anyone when the container is public.
func (c *Client) legacyMetaName(name string) string { return c.prefix + MetaDir + name }
