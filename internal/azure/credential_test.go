package azure

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/djdeploy/djdeploy/internal/problem"
)

const testTenant = "11111111-2222-3333-4444-555555555555"

// fakeAuthority is a TLS Microsoft Entra token endpoint (the identity
// libraries refuse plain HTTP), plus the GitHub and Azure Pipelines ID-token
// endpoints.
type fakeAuthority struct {
	srv *httptest.Server

	mu         sync.Mutex
	tokenForms []map[string]string // every token request's form
	idTokens   int                 // GitHub ID token requests
	adoTokens  int                 // Azure Pipelines OIDC requests
	expiresIn  int
	fail       string // AADSTS error to answer with
}

func fakeJWT(sub string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
		enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":%q,"aud":"api://AzureADTokenExchange"}`, sub))) + ".sig"
}

func newFakeAuthority(t *testing.T) *fakeAuthority {
	t.Helper()
	f := &fakeAuthority{expiresIn: 3600}
	mux := http.NewServeMux()
	mux.HandleFunc("/"+testTenant+"/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		base := f.srv.URL + "/" + testTenant
		json.NewEncoder(w).Encode(map[string]any{
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/v2.0",
		})
	})
	mux.HandleFunc("/"+testTenant+"/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("token form: %v", err)
		}
		form := map[string]string{}
		for k := range r.PostForm {
			form[k] = r.PostForm.Get(k)
		}
		f.mu.Lock()
		f.tokenForms = append(f.tokenForms, form)
		n, exp, fail := len(f.tokenForms), f.expiresIn, f.fail
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if fail != "" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]any{"error": "invalid_client",
				"error_description": fail + ": No matching federated identity record found for presented assertion.", "error_codes": []int{700213}})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": exp, "ext_expires_in": exp,
			"access_token": fmt.Sprintf("access-%d", n)})
	})
	mux.HandleFunc("/github-id-token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer gh-request-token" {
			t.Errorf("ID token request authorization = %q", r.Header.Get("Authorization"))
		}
		if got := r.URL.Query().Get("audience"); got != GitHubAudience {
			t.Errorf("ID token audience = %q", got)
		}
		f.mu.Lock()
		f.idTokens++
		n := f.idTokens
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"value": fakeJWT(fmt.Sprintf("repo:org/app:environment:prod#%d", n))})
	})
	mux.HandleFunc("/ado-oidc", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer ado-system-token" ||
			r.URL.Query().Get("serviceConnectionId") != "sc-123" {
			t.Errorf("ADO OIDC request: %s %s auth=%q", r.Method, r.URL, r.Header.Get("Authorization"))
		}
		f.mu.Lock()
		f.adoTokens++
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"oidcToken": fakeJWT("sc://org/proj/conn")})
	})
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAuthority) config() Config {
	return Config{AuthorityHost: f.srv.URL + "/", Transport: f.srv.Client()}
}

func (f *fakeAuthority) forms() []map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]string(nil), f.tokenForms...)
}

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

var armScope = policy.TokenRequestOptions{Scopes: []string{"https://management.core.windows.net//.default"}}

func TestSelectKind(t *testing.T) {
	gh := map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": "https://x", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"}
	ado := map[string]string{"SYSTEM_OIDCREQUESTURI": "https://x", "SYSTEM_ACCESSTOKEN": "t", "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "sc"}
	tests := []struct {
		name string
		o    CredentialOptions
		want string
	}{
		{"explicit wins", CredentialOptions{Kind: "azure-cli", AccessToken: "x"}, CredAzureCLI},
		{"access token", CredentialOptions{Kind: "auto", AccessToken: "x", ClientID: "c", Getenv: envMap(gh)}, CredAccessToken},
		{"github oidc", CredentialOptions{ClientID: "c", Getenv: envMap(gh)}, CredGitHubOIDC},
		{"github without client id is not oidc", CredentialOptions{Getenv: envMap(map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": "u", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t", "AZURE_CLIENT_SECRET": "s"})}, CredClientSecret},
		{"azure pipelines", CredentialOptions{Getenv: envMap(ado)}, CredAzurePipelines},
		{"client secret", CredentialOptions{Getenv: envMap(map[string]string{"AZURE_CLIENT_SECRET": "s"})}, CredClientSecret},
		{"client certificate", CredentialOptions{Getenv: envMap(map[string]string{"AZURE_CLIENT_CERTIFICATE_PATH": "p"})}, CredClientCertificate},
		{"managed identity", CredentialOptions{Getenv: envMap(map[string]string{"IDENTITY_ENDPOINT": "http://169.254.1.1"})}, CredManagedIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.o.SelectKind(); got != tt.want {
				t.Errorf("SelectKind() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAccessTokenCredential(t *testing.T) {
	cred, err := Config{}.NewCredential(CredentialOptions{AccessToken: "tok-123"})
	if err != nil {
		t.Fatal(err)
	}
	if CredentialKind(cred) != CredAccessToken {
		t.Errorf("kind = %q", CredentialKind(cred))
	}
	tok, err := cred.GetToken(context.Background(), armScope)
	if err != nil || tok.Token != "tok-123" {
		t.Fatalf("GetToken = %v, %v", tok.Token, err)
	}
	if _, err := (Config{}).NewCredential(CredentialOptions{Kind: "access-token"}); problem.ExitCode(err) != problem.ExitUsage {
		t.Errorf("access-token without a token: err = %v, want a usage error", err)
	}
}

func TestClientSecretCredential(t *testing.T) {
	f := newFakeAuthority(t)
	cred, err := f.config().NewCredential(CredentialOptions{Kind: "client-secret", TenantID: testTenant, ClientID: "client-1",
		Getenv: envMap(map[string]string{"AZURE_CLIENT_SECRET": "s3cret"})})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), armScope)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if tok.Token != "access-1" {
		t.Errorf("token = %q", tok.Token)
	}
	forms := f.forms()
	if len(forms) != 1 || forms[0]["client_secret"] != "s3cret" || forms[0]["client_id"] != "client-1" ||
		!strings.Contains(forms[0]["scope"], "https://management.core.windows.net//.default") {
		t.Errorf("token requests = %v", forms)
	}
}

func TestClientSecretMissingIsUsageError(t *testing.T) {
	_, err := Config{}.NewCredential(CredentialOptions{Kind: "client-secret", TenantID: testTenant, Getenv: envMap(nil)})
	p, ok := problem.As(err)
	if !ok || !p.Usage || !strings.Contains(p.Error(), "client-id") {
		t.Fatalf("err = %v, want a usage error naming client-id", err)
	}
}

func TestGitHubOIDCCredentialRequestsFreshIDTokens(t *testing.T) {
	f := newFakeAuthority(t)
	f.expiresIn = 1 // every token is already due for refresh
	env := map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   f.srv.URL + "/github-id-token?api-version=2.0",
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "gh-request-token",
	}
	cred, err := f.config().NewCredential(CredentialOptions{TenantID: testTenant, ClientID: "client-1", Getenv: envMap(env)})
	if err != nil {
		t.Fatal(err)
	}
	if CredentialKind(cred) != CredGitHubOIDC {
		t.Fatalf("auto chose %q, want github-oidc", CredentialKind(cred))
	}
	for i := 0; i < 2; i++ {
		if _, err := cred.GetToken(context.Background(), armScope); err != nil {
			t.Fatalf("GetToken #%d: %v", i+1, err)
		}
	}
	forms := f.forms()
	if len(forms) != 2 {
		t.Fatalf("token requests = %d, want 2 (the first token expired)", len(forms))
	}
	for i, form := range forms {
		want := fakeJWT(fmt.Sprintf("repo:org/app:environment:prod#%d", i+1))
		if form["client_assertion"] != want {
			t.Errorf("request %d assertion = %q, want the fresh ID token %q", i+1, form["client_assertion"], want)
		}
		if form["client_assertion_type"] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			t.Errorf("assertion type = %q", form["client_assertion_type"])
		}
	}
	if f.idTokens != 2 {
		t.Errorf("ID token requests = %d, want 2", f.idTokens)
	}
}

func TestGitHubOIDCFailureNamesSubjectAndFix(t *testing.T) {
	f := newFakeAuthority(t)
	f.fail = "AADSTS700213"
	env := map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL":   f.srv.URL + "/github-id-token",
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": "gh-request-token",
	}
	cred, err := f.config().NewCredential(CredentialOptions{Kind: "github-oidc", TenantID: testTenant, ClientID: "client-1", Getenv: envMap(env)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cred.GetToken(context.Background(), armScope)
	p, ok := problem.As(err)
	if !ok {
		t.Fatalf("err = %v, want a problem.Error", err)
	}
	for _, want := range []string{"github-oidc", "client-1", testTenant, "repo:org/app:environment:prod#1"} {
		if !strings.Contains(p.What, want) {
			t.Errorf("What %q does not name %q", p.What, want)
		}
	}
	for _, want := range []string{"AADSTS700213", "case-sensitive", "role"} {
		if !strings.Contains(p.Fix, want) {
			t.Errorf("Fix %q does not mention %q", p.Fix, want)
		}
	}
	if strings.Contains(err.Error(), "gh-request-token") {
		t.Errorf("error leaks the request token: %v", err)
	}
}

func TestAzurePipelinesCredential(t *testing.T) {
	f := newFakeAuthority(t)
	// azidentity reads SYSTEM_OIDCREQUESTURI from the process environment.
	t.Setenv("SYSTEM_OIDCREQUESTURI", f.srv.URL+"/ado-oidc")
	env := map[string]string{
		"SYSTEM_OIDCREQUESTURI": f.srv.URL + "/ado-oidc",
		"SYSTEM_ACCESSTOKEN":    "ado-system-token",
	}
	cred, err := f.config().NewCredential(CredentialOptions{TenantID: testTenant, ClientID: "client-1", ServiceConnectionID: "sc-123", Getenv: envMap(env)})
	if err != nil {
		t.Fatal(err)
	}
	if CredentialKind(cred) != CredAzurePipelines {
		t.Fatalf("auto chose %q", CredentialKind(cred))
	}
	if _, err := cred.GetToken(context.Background(), armScope); err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	forms := f.forms()
	if len(forms) != 1 || forms[0]["client_assertion"] != fakeJWT("sc://org/proj/conn") {
		t.Errorf("token requests = %v", forms)
	}
	if f.adoTokens != 1 {
		t.Errorf("OIDC requests = %d", f.adoTokens)
	}
}

func TestJWTSubject(t *testing.T) {
	if got := JWTSubject(fakeJWT("repo:a/b:ref:refs/heads/main")); got != "repo:a/b:ref:refs/heads/main" {
		t.Errorf("JWTSubject = %q", got)
	}
	if got := JWTSubject("not-a-jwt"); got != "" {
		t.Errorf("JWTSubject(garbage) = %q", got)
	}
}

func TestPlainHTTPAuthorityRejected(t *testing.T) {
	_, err := Config{AuthorityHost: "http://login.example.com/"}.NewCredential(CredentialOptions{AccessToken: "x"})
	if problem.ExitCode(err) != problem.ExitUsage {
		t.Errorf("err = %v, want a usage error", err)
	}
}
