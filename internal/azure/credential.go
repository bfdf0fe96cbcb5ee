package azure

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/sethvargo/go-githubactions"
)

// Credential kinds, as accepted by the `credential` setting.
const (
	CredAuto              = "auto"
	CredGitHubOIDC        = "github-oidc"
	CredAzurePipelines    = "azure-pipelines"
	CredClientSecret      = "client-secret"
	CredClientCertificate = "client-certificate"
	CredManagedIdentity   = "managed-identity"
	CredAzureCLI          = "azure-cli"
	CredAccessToken       = "access-token"
)

// GitHubAudience is the audience of the GitHub Actions ID token that
// Microsoft Entra exchanges for an access token.
const GitHubAudience = "api://AzureADTokenExchange"

// CredentialOptions says how to sign in. Kind "" or "auto" picks from the
// environment; see SelectKind.
type CredentialOptions struct {
	Kind        string
	TenantID    string
	ClientID    string
	AccessToken string // access-token: a ready ARM token
	// ServiceConnectionID is the Azure Pipelines service connection
	// (workload identity federation) for azure-pipelines.
	ServiceConnectionID string
	// Getenv reads the CI runtime's variables (ACTIONS_ID_TOKEN_REQUEST_*,
	// SYSTEM_*, AZURE_CLIENT_SECRET, ...); nil means os.Getenv.
	Getenv func(string) string
}

func (o CredentialOptions) getenv(k string) string {
	if o.Getenv == nil {
		return os.Getenv(k)
	}
	return o.Getenv(k)
}

// SelectKind returns the credential kind to use. An explicit kind wins;
// auto looks, in order, for a ready access token, the GitHub Actions OIDC
// runtime (with a client id), the Azure Pipelines OIDC runtime (with a
// service connection and System.AccessToken), a client secret, a client
// certificate, a managed identity endpoint, and finally the Azure CLI (or the
// instance metadata service when az is not installed).
func (o CredentialOptions) SelectKind() string {
	k := strings.ToLower(strings.TrimSpace(o.Kind))
	if k != "" && k != CredAuto {
		return k
	}
	switch {
	case o.AccessToken != "":
		return CredAccessToken
	case o.getenv("ACTIONS_ID_TOKEN_REQUEST_URL") != "" && o.getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN") != "" && o.ClientID != "":
		return CredGitHubOIDC
	case o.getenv("SYSTEM_OIDCREQUESTURI") != "" && o.serviceConnection() != "" && o.getenv("SYSTEM_ACCESSTOKEN") != "":
		return CredAzurePipelines
	case o.getenv("AZURE_CLIENT_SECRET") != "":
		return CredClientSecret
	case o.getenv("AZURE_CLIENT_CERTIFICATE_PATH") != "":
		return CredClientCertificate
	case o.getenv("IDENTITY_ENDPOINT") != "" || o.getenv("MSI_ENDPOINT") != "":
		return CredManagedIdentity
	}
	if _, err := exec.LookPath("az"); err == nil {
		return CredAzureCLI
	}
	return CredManagedIdentity
}

// serviceConnection is the configured service connection, else the one the
// AzureCLI@2 / AzurePowerShell tasks export.
func (o CredentialOptions) serviceConnection() string {
	if o.ServiceConnectionID != "" {
		return o.ServiceConnectionID
	}
	return o.getenv("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")
}

func (o CredentialOptions) tenant() string {
	if o.TenantID != "" {
		return o.TenantID
	}
	if t := o.getenv("AZURESUBSCRIPTION_TENANT_ID"); t != "" {
		return t
	}
	return ""
}

func (o CredentialOptions) client() string {
	if o.ClientID != "" {
		return o.ClientID
	}
	return o.getenv("AZURESUBSCRIPTION_CLIENT_ID")
}

// NewCredential builds the credential for c's cloud: the authority host (or
// c.AuthorityHost) with instance discovery off when it is custom, and the
// ca-file transport. Its errors are *problem.Error values naming the
// credential, client id, tenant and, for OIDC, the token's subject, with what
// to check.
func (c Config) NewCredential(o CredentialOptions) (azcore.TokenCredential, error) {
	kind := o.SelectKind()
	cc, err := c.CloudConfig()
	if err != nil {
		return nil, err
	}
	tr, err := c.transport()
	if err != nil {
		return nil, err
	}
	copts := policy.ClientOptions{Cloud: cc, Transport: tr}
	// Instance discovery asks login.microsoft.com whether the authority is
	// known; a custom authority (sovereign, emulator, test) never is.
	custom := c.AuthorityHost != "" && !isKnownAuthority(c.AuthorityHost)
	d := &described{kind: kind, clientID: o.client(), tenant: o.tenant()}
	need := func(what ...string) error {
		var missing []string
		for _, w := range what {
			switch w {
			case "tenant":
				if d.tenant == "" {
					missing = append(missing, "--tenant-id (AZURE_TENANT_ID)")
				}
			case "client":
				if d.clientID == "" {
					missing = append(missing, "--client-id (AZURE_CLIENT_ID)")
				}
			}
		}
		if len(missing) > 0 {
			return problem.Usagef("set "+strings.Join(missing, " and ")+" to the service principal's values",
				"the %s credential needs %s", kind, strings.Join(missing, " and "))
		}
		return nil
	}

	switch kind {
	case CredAccessToken:
		if o.AccessToken == "" {
			return nil, problem.Usagef("set DJDEPLOY_ACCESS_TOKEN (for example from `az account get-access-token --query accessToken -o tsv`)",
				"credential access-token was chosen but no access token is set")
		}
		d.inner = StaticToken(o.AccessToken)
	case CredGitHubOIDC:
		if err := need("tenant", "client"); err != nil {
			return nil, err
		}
		reqURL := o.getenv("ACTIONS_ID_TOKEN_REQUEST_URL")
		if reqURL == "" || o.getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN") == "" {
			return nil, problem.Usagef("give the job `permissions: id-token: write` so GitHub provides ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN",
				"credential github-oidc was chosen but the GitHub Actions OIDC runtime is not available")
		}
		if err := CheckURL("ACTIONS_ID_TOKEN_REQUEST_URL", reqURL); err != nil {
			return nil, err
		}
		hc, err := c.HTTPClient(30 * time.Second)
		if err != nil {
			return nil, err
		}
		gha := githubactions.New(githubactions.WithGetenv(o.getenv), githubactions.WithHTTPClient(hc))
		// azidentity calls this each time it needs a new access token, so a
		// deployment that outlives the first token (or the ID token's own ten
		// minutes) signs in again with a fresh ID token instead of failing
		// with AADSTS700024.
		assert := func(ctx context.Context) (string, error) {
			tok, err := gha.GetIDToken(ctx, GitHubAudience)
			if err != nil {
				return "", fmt.Errorf("requesting the GitHub Actions ID token: %w", err)
			}
			d.setSubject(JWTSubject(tok))
			return tok, nil
		}
		cred, err := azidentity.NewClientAssertionCredential(d.tenant, d.clientID, assert,
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: custom})
		if err != nil {
			return nil, problem.Wrap(err, "check tenant-id and client-id", "cannot create the GitHub OIDC credential")
		}
		d.inner = cred
	case CredAzurePipelines:
		if err := need("tenant", "client"); err != nil {
			return nil, err
		}
		sc, tok := o.serviceConnection(), o.getenv("SYSTEM_ACCESSTOKEN")
		if sc == "" || tok == "" || o.getenv("SYSTEM_OIDCREQUESTURI") == "" {
			return nil, problem.Usagef("set service-connection (DJDEPLOY_SERVICE_CONNECTION) to the service connection's id and map `env: {SYSTEM_ACCESSTOKEN: $(System.AccessToken)}` in the step",
				"credential azure-pipelines needs SYSTEM_OIDCREQUESTURI, a service connection id and SYSTEM_ACCESSTOKEN")
		}
		if err := CheckURL("SYSTEM_OIDCREQUESTURI", o.getenv("SYSTEM_OIDCREQUESTURI")); err != nil {
			return nil, err
		}
		d.subject = "sc://<organization>/<project>/<service connection name>"
		cred, err := azidentity.NewAzurePipelinesCredential(d.tenant, d.clientID, sc, tok,
			&azidentity.AzurePipelinesCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: custom})
		if err != nil {
			return nil, problem.Wrap(err, "check tenant-id, client-id and service-connection", "cannot create the Azure Pipelines credential")
		}
		d.inner = cred
	case CredClientSecret:
		if err := need("tenant", "client"); err != nil {
			return nil, err
		}
		secret := o.getenv("AZURE_CLIENT_SECRET")
		if secret == "" {
			return nil, problem.Usagef("set AZURE_CLIENT_SECRET from your CI's secret store", "credential client-secret was chosen but AZURE_CLIENT_SECRET is not set")
		}
		cred, err := azidentity.NewClientSecretCredential(d.tenant, d.clientID, secret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: custom})
		if err != nil {
			return nil, problem.Wrap(err, "check tenant-id and client-id", "cannot create the client secret credential")
		}
		d.inner = cred
	case CredClientCertificate:
		if err := need("tenant", "client"); err != nil {
			return nil, err
		}
		path := o.getenv("AZURE_CLIENT_CERTIFICATE_PATH")
		if path == "" {
			return nil, problem.Usagef("set AZURE_CLIENT_CERTIFICATE_PATH to a PEM or PKCS#12 file", "credential client-certificate was chosen but AZURE_CLIENT_CERTIFICATE_PATH is not set")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, problem.Usagef("check AZURE_CLIENT_CERTIFICATE_PATH", "cannot read the client certificate: %v", err)
		}
		var pw []byte
		if p := o.getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD"); p != "" {
			pw = []byte(p)
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			return nil, problem.Usagef("give a PEM file holding the certificate and its private key (or PKCS#12 with AZURE_CLIENT_CERTIFICATE_PASSWORD)",
				"cannot parse the client certificate %s: %v", path, err)
		}
		cred, err := azidentity.NewClientCertificateCredential(d.tenant, d.clientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: custom})
		if err != nil {
			return nil, problem.Wrap(err, "check tenant-id and client-id", "cannot create the client certificate credential")
		}
		d.inner = cred
	case CredManagedIdentity:
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: copts}
		if d.clientID != "" {
			mo.ID = azidentity.ClientID(d.clientID)
		}
		cred, err := azidentity.NewManagedIdentityCredential(mo)
		if err != nil {
			return nil, problem.Wrap(err, "run on an Azure host with a managed identity, or choose another credential", "cannot create the managed identity credential")
		}
		d.inner = cred
	case CredAzureCLI:
		cred, err := azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: d.tenant})
		if err != nil {
			return nil, problem.Wrap(err, "run `az login` first", "cannot create the Azure CLI credential")
		}
		d.inner = cred
	default:
		return nil, problem.Usagef("use auto, github-oidc, azure-pipelines, client-secret, client-certificate, managed-identity, azure-cli or access-token",
			"unknown credential %q", kind)
	}
	return d, nil
}

func isKnownAuthority(host string) bool {
	h := strings.TrimRight(strings.ToLower(host), "/") + "/"
	for _, c := range []cloud.Configuration{cloud.AzurePublic, cloud.AzureChina, cloud.AzureGovernment} {
		if strings.TrimRight(strings.ToLower(c.ActiveDirectoryAuthorityHost), "/")+"/" == h {
			return true
		}
	}
	return false
}

// described wraps a credential so that its failures say which credential was
// tried, as whom, and what to check.
type described struct {
	inner    azcore.TokenCredential
	kind     string
	clientID string
	tenant   string

	mu      sync.Mutex
	subject string
}

func (d *described) setSubject(s string) {
	d.mu.Lock()
	d.subject = s
	d.mu.Unlock()
}

// Kind returns the credential kind that was chosen (for logs and --json).
func (d *described) Kind() string { return d.kind }

func (d *described) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := d.inner.GetToken(ctx, opts)
	if err == nil {
		return tok, nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return tok, err
	}
	d.mu.Lock()
	subject := d.subject
	d.mu.Unlock()
	return tok, d.explain(err, subject)
}

var aadsts = regexp.MustCompile(`AADSTS\d+`)

func (d *described) explain(err error, subject string) error {
	var who []string
	if d.clientID != "" {
		who = append(who, "client id "+d.clientID)
	}
	if d.tenant != "" {
		who = append(who, "tenant "+d.tenant)
	}
	if subject != "" {
		who = append(who, "token subject "+subject)
	}
	what := "signing in to Azure with the " + d.kind + " credential failed"
	if len(who) > 0 {
		what = fmt.Sprintf("signing in to Azure with the %s credential (%s) failed", d.kind, strings.Join(who, ", "))
	}
	msg := err.Error()
	code := aadsts.FindString(msg)
	var fix string
	switch {
	case code == "AADSTS700213" || code == "AADSTS7002138" || code == "AADSTS70021":
		fix = fmt.Sprintf("%s: no federated credential matches. On the app registration (or managed identity) add a federated credential whose issuer and subject equal the token's exactly (case-sensitive)", code)
		if subject != "" {
			fix += ": subject " + subject
		}
	case code == "AADSTS700024" || code == "AADSTS700027":
		fix = code + ": the client assertion expired or is invalid; re-run the job (djdeploy requests a fresh ID token each time it signs in)"
	case code == "AADSTS700016":
		fix = code + ": no application with this client id in the tenant; check client-id and tenant-id"
	case code == "AADSTS90002" || code == "AADSTS900023":
		fix = code + ": the tenant was not found; check tenant-id"
	case code == "AADSTS7000215" || code == "AADSTS7000222":
		fix = code + ": the client secret is wrong or expired; create a new one and update AZURE_CLIENT_SECRET"
	case code != "":
		fix = code + ": see https://login.microsoftonline.com/error?code=" + strings.TrimPrefix(code, "AADSTS")
	}
	switch d.kind {
	case CredGitHubOIDC:
		if fix == "" {
			fix = "check that the job has `permissions: id-token: write` and that a federated credential's subject matches the token subject exactly (case-sensitive)"
		}
		fix += "; then check the principal has a role (e.g. Website Contributor) on the web app"
	case CredAzurePipelines:
		if fix == "" {
			fix = "check the service connection id, that the step maps SYSTEM_ACCESSTOKEN, and that the federated credential's subject is sc://<organization>/<project>/<service connection name> (case-sensitive)"
		}
	case CredAzureCLI:
		if fix == "" {
			fix = "run `az login` (and `az account set --subscription ...`) before djdeploy"
		}
	case CredManagedIdentity:
		if fix == "" {
			fix = "run on an Azure host with a managed identity assigned (set client-id for a user-assigned one), or choose another credential"
		}
	case CredAccessToken:
		if fix == "" {
			fix = "give a fresh token in DJDEPLOY_ACCESS_TOKEN"
		}
	default:
		if fix == "" {
			fix = "check tenant-id, client-id and the secret or certificate, and that the principal has a role on the web app"
		}
	}
	return &problem.Error{What: what, Fix: fix, Err: err}
}

// CredentialKind reports the kind of a credential built by NewCredential
// ("" for others).
func CredentialKind(c azcore.TokenCredential) string {
	if d, ok := c.(*described); ok {
		return d.kind
	}
	return ""
}

// JWTSubject returns the `sub` claim of a JWT without verifying it (for
// error messages only), or "" when tok is not a JWT.
func JWTSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) < 2 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Sub
}

// compile-time check that StaticToken and described are credentials.
var (
	_ azcore.TokenCredential = StaticToken("")
	_ azcore.TokenCredential = (*described)(nil)
)
