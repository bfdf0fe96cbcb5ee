package emulator

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// oidcIssuer is a workload identity issuer like GitHub's: OIDC discovery
// and a JWKS on loopback, and the key that signs its tokens.
type oidcIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o := &oidcIssuer{key: key}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			writeJSON(w, 200, map[string]any{"issuer": o.srv.URL, "jwks_uri": o.srv.URL + "/.well-known/jwks"})
		case "/.well-known/jwks":
			writeJSON(w, 200, map[string]any{"keys": []any{map[string]any{
				"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
				"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
			}}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *oidcIssuer) mint(t *testing.T, key *rsa.PrivateKey, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFederatedAssertionsCheckedAsEntra: issuer, subject (case-sensitive),
// audience, expiry, client id and the issuer's published signature.
func TestFederatedAssertionsCheckedAsEntra(t *testing.T) {
	iss := newOIDCIssuer(t)
	const subject = "repo:contoso/shop:environment:production"
	// Declared in the resources file, as `djdeploy emulator --resources` reads it.
	res, err := ParseResources([]byte("apps: [{name: demo-app}]\nfederatedCredentials:\n  - issuer: " + iss.srv.URL + "\n    subject: " + subject + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Start(context.Background(), Config{Log: testLog{}, Resources: res})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": iss.srv.URL, "sub": subject, "aud": TokenExchangeAudience, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	parts := strings.Split(iss.mint(t, iss.key, claims(nil)), ".")
	noneTok := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	for _, tc := range []struct {
		name, clientID, assertion, want string
	}{
		{"valid", e.ClientID(), iss.mint(t, iss.key, claims(nil)), ""},
		{"subject differs in case", e.ClientID(), iss.mint(t, iss.key, claims(func(c jwt.MapClaims) { c["sub"] = strings.ToUpper(subject) })), "AADSTS700213"},
		{"expired", e.ClientID(), iss.mint(t, iss.key, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), "AADSTS700024"},
		{"wrong audience", e.ClientID(), iss.mint(t, iss.key, claims(func(c jwt.MapClaims) { c["aud"] = "https://management.azure.com" })), "AADSTS700212"},
		{"unknown issuer", e.ClientID(), iss.mint(t, iss.key, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), "AADSTS700211"},
		{"signed by another key", e.ClientID(), iss.mint(t, other, claims(nil)), "AADSTS700027"},
		{"unsigned", e.ClientID(), noneTok, "AADSTS700027"},
		{"unknown client id", "11111111-2222-3333-4444-555555555555", iss.mint(t, iss.key, claims(nil)), "AADSTS700016"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {tc.clientID}, "scope": {ARMAudience + "/.default"},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {tc.assertion}}
			resp, err := tlsClient(e).PostForm(e.AuthorityHost()+e.Tenant()+"/oauth2/v2.0/token", form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			if tc.want == "" {
				tok, _ := body["access_token"].(string)
				if resp.StatusCode != 200 || tok == "" {
					t.Fatalf("%d %v", resp.StatusCode, body)
				}
				if code, msg := e.iss.check(tok); code != "" {
					t.Errorf("issued token refused by ARM: %s %s", code, msg)
				}
				return
			}
			desc, _ := body["error_description"].(string)
			if resp.StatusCode != 400 || !strings.HasPrefix(desc, tc.want+":") {
				t.Errorf("%d %v, want %s", resp.StatusCode, body, tc.want)
			}
		})
	}
}
