package conformance

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const githubSubject = "repo:contoso/shop:environment:production"

// oidcIssuer stands in for GitHub's token issuer: OIDC discovery and a
// JWKS on loopback, which the emulator's authority reads to check
// signatures as Entra does.
type oidcIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newOIDCIssuer() (*oidcIssuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	o := &oidcIssuer{key: key}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{"issuer": o.srv.URL, "jwks_uri": o.srv.URL + "/.well-known/jwks"})
		case "/.well-known/jwks":
			json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{
				"kty": "RSA", "kid": "gh", "use": "sig", "alg": "RS256",
				"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
			}}})
		default:
			http.NotFound(w, r)
		}
	}))
	return o, nil
}

// fakeGitHubToken is an ID token as GitHub Actions issues it for the
// federated credential (audience api://AzureADTokenExchange), signed with
// the issuer's published key.
func fakeGitHubToken(t *testing.T, s *suite) string {
	t.Helper()
	return fakeGitHubTokenFor(t, s, githubSubject)
}

func fakeGitHubTokenFor(t *testing.T, s *suite, subject string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": s.oidc.srv.URL, "sub": subject,
		"aud": "api://AzureADTokenExchange", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	tok.Header["kid"] = "gh"
	signed, err := tok.SignedString(s.oidc.key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// sdkScript signs in with azure-identity (client secret, then a client
// assertion), and drives azure-mgmt-web, azure-mgmt-cdn and
// azure-storage-blob with azure-core's defaults (bearer tokens only over
// https); it prints one JSON object of what it saw.
const sdkScript = `
import json, os, time, urllib.request
from azure.identity import ClientSecretCredential, ClientAssertionCredential
from azure.mgmt.web import WebSiteManagementClient
from azure.mgmt.web.models import CsmSlotEntity
from azure.mgmt.cdn import CdnManagementClient
from azure.mgmt.cdn.models import AfdPurgeParameters, PurgeParameters
from azure.storage.blob import BlobServiceClient, ContentSettings

env = os.environ
arm, authority, sub, rg = env["ARM"], env["AUTHORITY"], env["SUB"], env["RG"]
scopes = ["https://management.core.windows.net//.default"]
out = {}

secret = ClientSecretCredential(env["TENANT"], env["CLIENT_ID"], env["CLIENT_SECRET"], authority=authority, disable_instance_discovery=True)
assertion = ClientAssertionCredential(env["TENANT"], env["CLIENT_ID"], lambda: env["ASSERTION"], authority=authority, disable_instance_discovery=True)
out["assertion_sites"] = sorted(s.name for s in WebSiteManagementClient(assertion, sub, base_url=arm, credential_scopes=scopes).web_apps.list())
try:
    ClientAssertionCredential(env["TENANT"], env["CLIENT_ID"], lambda: env["BAD_ASSERTION"], authority=authority, disable_instance_discovery=True).get_token(scopes[0])
    out["bad_assertion"] = "accepted"
except Exception as e:
    out["bad_assertion"] = str(e)

web = WebSiteManagementClient(secret, sub, base_url=arm, credential_scopes=scopes)
app = env["APP"]
status = web.web_apps.begin_get_slot_site_deployment_status_slot(rg, app, "staging", env["DEPLOYMENT"]).result()
out["deployment_status"] = status.status
web.web_apps.begin_swap_slot(rg, app, "staging", CsmSlotEntity(target_slot="production", preserve_vnet=True)).result()
out["swapped"] = True

blobs = BlobServiceClient.from_connection_string(env["BLOB"]).get_container_client(env["CONTAINER"])
cdn = CdnManagementClient(secret, sub, base_url=arm, credential_scopes=scopes)
def fetch(url):
    with urllib.request.urlopen(url) as r:
        return r.read().decode()
def put(name, text):
    blobs.upload_blob(name, text.encode(), overwrite=True, content_settings=ContentSettings(content_type="text/plain"))
for kind, url, purge in [
    ("afd", env["FD_URL"], lambda p: cdn.afd_endpoints.begin_purge_content(rg, "conf-fd", "conf-fd-ep", AfdPurgeParameters(content_paths=[p])).result()),
    ("cdn", env["CDN_URL"], lambda p: cdn.endpoints.begin_purge_content(rg, "conf-cdn", "conf-cdn-ep", PurgeParameters(content_paths=[p])).result()),
]:
    name = "static/" + kind + ".txt"
    put(name, kind + "-v1")
    first = fetch(url + "/" + name)
    put(name, kind + "-v2")
    cached = fetch(url + "/" + name)
    purge("/" + name)
    out[kind] = [first, cached, fetch(url + "/" + name)]
print(json.dumps(out))
`

func TestPythonSDK(t *testing.T) {
	s := setup(t)
	e := s.emu
	s.kuduDeploy(t, appSDK, "production", appZip(t, "s1"))
	id := s.kuduDeploy(t, appSDK, "staging", appZip(t, "s2"))
	out := s.python(t, sdkScript,
		"ARM="+e.ARMTLSEndpoint(), "AUTHORITY="+e.AuthorityHost(), "SUB="+e.Subscription(), "RG="+rg,
		"TENANT="+e.Tenant(), "CLIENT_ID="+e.ClientID(), "CLIENT_SECRET="+e.ClientSecret(), "ASSERTION="+fakeGitHubToken(t, s), "BAD_ASSERTION="+fakeGitHubTokenFor(t, s, strings.ToUpper(githubSubject)),
		"APP="+appSDK, "DEPLOYMENT="+id, "BLOB="+e.StorageConnectionString(), "CONTAINER="+e.Resources().StaticContainer,
		"FD_URL="+e.CDNURL("conf-fd", "conf-fd-ep"), "CDN_URL="+e.CDNURL("conf-cdn", "conf-cdn-ep"))
	var got struct {
		AssertionSites   []string `json:"assertion_sites"`
		BadAssertion     string   `json:"bad_assertion"`
		DeploymentStatus string   `json:"deployment_status"`
		Swapped          bool
		AFD              []string `json:"afd"`
		CDN              []string `json:"cdn"`
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("SDK case printed no result: %v\n%s", err, out)
	}
	if strings.Join(got.AssertionSites, ",") != appConfig+","+appDeploy+","+appSDK {
		t.Errorf("sites listed with ClientAssertionCredential: %v", got.AssertionSites)
	}
	if !strings.Contains(got.BadAssertion, "AADSTS700213") {
		t.Errorf("an assertion whose subject differs in case: %q, want AADSTS700213", got.BadAssertion)
	}
	if got.DeploymentStatus != "RuntimeSuccessful" {
		t.Errorf("deployment status poller: %q", got.DeploymentStatus)
	}
	// begin_swap_slot(...).result() returned: production serves the release.
	s.servesNow(t, appSDK, "production", "release=s2 greeting= mark=")
	for kind, seen := range map[string][]string{"afd": got.AFD, "cdn": got.CDN} {
		want := []string{kind + "-v1", kind + "-v1", kind + "-v2"}
		if strings.Join(seen, ",") != strings.Join(want, ",") {
			t.Errorf("%s: CDN answered %v (first, after an upload, after the purge), want %v", kind, seen, want)
		}
	}
}
