package cli

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/redact"
	"github.com/djdeploy/djdeploy/internal/settings"
)

// AzureAccess is what every command that calls Azure Resource Manager (or
// Kudu) needs: where Azure is, who signs in, and the client options.
type AzureAccess struct {
	Config       azure.Config
	Credential   azcore.TokenCredential
	Subscription string
	Options      *arm.ClientOptions
}

// HTTPClient is a plain client with the same transport (ca-file), for
// requests outside the SDK such as warm-up probes.
func (a *AzureAccess) HTTPClient(timeout time.Duration) (*http.Client, error) {
	return a.Config.HTTPClient(timeout)
}

// CredentialKind names the credential in use (for logs and --json).
func (a *AzureAccess) CredentialKind() string { return azure.CredentialKind(a.Credential) }

// AzureConfig turns the Azure settings into an azure.Config.
func AzureConfig(vals *settings.Values) azure.Config {
	return azure.Config{
		Cloud:         vals.String("cloud"),
		ARMEndpoint:   vals.String("arm-endpoint"),
		ARMAudience:   vals.String("arm-audience"),
		AuthorityHost: vals.String("authority-host"),
		CAFile:        vals.String("ca-file"),
	}
}

// Azure resolves the Azure settings shared by every command: the cloud and
// endpoints, the credential (credential setting, or chosen from the
// environment), and the subscription.
func (e *Env) Azure(vals *settings.Values) (*AzureAccess, error) {
	cfg := AzureConfig(vals)
	opts, err := cfg.ClientOptions()
	if err != nil {
		return nil, err
	}
	cred, err := cfg.NewCredential(azure.CredentialOptions{
		Kind:                vals.String("credential"),
		TenantID:            vals.String("tenant-id"),
		ClientID:            vals.String("client-id"),
		AccessToken:         vals.String("access-token"),
		ServiceConnectionID: vals.String("service-connection"),
		Getenv:              e.getenv,
	})
	if err != nil {
		return nil, err
	}
	sub := vals.String("subscription")
	if sub == "" {
		sub = e.getenv("AZURESUBSCRIPTION_SUBSCRIPTION_ID")
	}
	if sub == "" {
		return nil, problem.Usagef("set --subscription or AZURE_SUBSCRIPTION_ID", "no Azure subscription given")
	}
	return &AzureAccess{Config: cfg, Credential: cred, Subscription: sub, Options: opts}, nil
}

// secretValues are the values no output may contain: secret settings and
// the CI runtime's tokens.
func (e *Env) secretValues(vals *settings.Values) []string {
	out := vals.Secrets()
	for _, k := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "SYSTEM_ACCESSTOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"} {
		if v := e.getenv(k); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// azureProgress is the stderr reporter for Azure commands, with every
// secret value masked as a last line of defence.
func (e *Env) azureProgress(vals *settings.Values) progress.Reporter {
	return e.progressTo(&redactWriter{w: e.Err, secrets: e.secretValues(vals)})
}

// redactWriter replaces secret values in each write with ***. Reporters
// write whole lines, so a secret is never split across writes.
type redactWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
}

func (r *redactWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := redact.SAS(string(p))
	for _, sec := range r.secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	if _, err := io.WriteString(r.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
