package emulator

// Federated credentials: the emulator's authority checks a client
// assertion (a GitHub Actions or Azure Pipelines OIDC token) as Entra ID
// does for an app's federated identity credential, and answers with
// Entra's AADSTS codes, so a broken OIDC setup fails locally as it would
// on Azure.

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenExchangeAudience is the audience Entra expects on federated
// assertions (the default of every federated identity credential).
const TokenExchangeAudience = "api://AzureADTokenExchange"

// FederatedCredential is one federated identity credential of the
// emulator's service principal: an assertion is accepted when its issuer
// and subject equal these exactly (case-sensitive, as Entra compares) and
// its audience is one of Audiences.
type FederatedCredential struct {
	Issuer    string   `yaml:"issuer" json:"issuer"`
	Subject   string   `yaml:"subject" json:"subject"`
	Audiences []string `yaml:"audiences" json:"audiences,omitempty"` // default [api://AzureADTokenExchange]
}

// checkAssertion validates a client assertion for clientID; it returns
// an OAuth error code and Entra's AADSTS description, or "" when valid.
// With no federated credentials configured, the issuer, subject and
// signature are not checked (anything well-formed, current and for the
// token exchange audience passes); with some, all of them are.
func (e *Emulator) checkAssertion(ctx context.Context, clientID, assertion string) (code, desc string) {
	claims := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(assertion, claims)
	if err != nil {
		return "invalid_client", "AADSTS50027: JWT token is invalid or malformed."
	}
	if clientID != e.cfg.ClientID {
		return "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory '%s'.", clientID, e.res.Tenant)
	}
	now := time.Now()
	exp, _ := claims.GetExpirationTime()
	nbf, _ := claims.GetNotBefore()
	if exp == nil || now.After(exp.Time) || (nbf != nil && now.Add(5*time.Minute).Before(nbf.Time)) {
		validTo := "(none)"
		if exp != nil {
			validTo = exp.UTC().Format("01/02/2006 15:04:05")
		}
		return "invalid_client", fmt.Sprintf("AADSTS700024: Client assertion is not within its valid time range. Current time: %s, expiry time of assertion %s.", now.UTC().Format("2006-01-02T15:04:05.0000000Z"), validTo)
	}
	iss, _ := claims.GetIssuer()
	sub, _ := claims.GetSubject()
	aud, _ := claims.GetAudience()
	creds := e.cfg.FederatedCredentials
	if len(creds) == 0 {
		if !slices.Contains(aud, TokenExchangeAudience) {
			return "invalid_client", fmt.Sprintf("AADSTS700212: No matching federated identity record found for presented assertion audience '%s'.", strings.Join(aud, ","))
		}
		return "", ""
	}
	var byIssuer []FederatedCredential
	for _, c := range creds {
		if c.Issuer == iss {
			byIssuer = append(byIssuer, c)
		}
	}
	if len(byIssuer) == 0 {
		return "invalid_client", fmt.Sprintf("AADSTS700211: No matching federated identity record found for presented assertion issuer '%s'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.", iss)
	}
	var match *FederatedCredential
	for i, c := range byIssuer {
		if c.Subject == sub {
			match = &byIssuer[i]
		}
	}
	if match == nil {
		return "invalid_client", fmt.Sprintf("AADSTS700213: No matching federated identity record found for presented assertion subject '%s'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.", sub)
	}
	auds := match.Audiences
	if len(auds) == 0 {
		auds = []string{TokenExchangeAudience}
	}
	if !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(auds, a) }) {
		return "invalid_client", fmt.Sprintf("AADSTS700212: No matching federated identity record found for presented assertion audience '%s'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.", strings.Join(aud, ","))
	}
	key, err := e.issuerKey(ctx, iss, tok)
	if err != nil {
		return "invalid_client", fmt.Sprintf("AADSTS50166: Request to External OIDC endpoint failed: %v.", err)
	}
	if _, err := jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "RS384", "RS512"})).ParseWithClaims(assertion, jwt.MapClaims{}, func(*jwt.Token) (any, error) { return key, nil }); err != nil && !errors.Is(err, jwt.ErrTokenExpired) {
		return "invalid_client", "AADSTS700027: Client assertion failed signature validation."
	}
	return "", ""
}

// issuerKey finds the assertion's signing key through its issuer's OIDC
// discovery document and JWKS, as Entra does. Issuers must be https, except
// on loopback (test issuers).
func (e *Emulator) issuerKey(ctx context.Context, iss string, tok *jwt.Token) (*rsa.PublicKey, error) {
	u, err := url.Parse(iss)
	if err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
		return nil, fmt.Errorf("issuer '%s' is not an https URL", iss)
	}
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := e.getJSON(ctx, strings.TrimSuffix(iss, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, err
	}
	if disc.Issuer != iss || disc.JWKSURI == "" {
		return nil, fmt.Errorf("the discovery document of '%s' names issuer '%s' and jwks_uri '%s'", iss, disc.Issuer, disc.JWKSURI)
	}
	var set struct {
		Keys []struct{ Kty, Kid, N, E string } `json:"keys"`
	}
	if err := e.getJSON(ctx, disc.JWKSURI, &set); err != nil {
		return nil, err
	}
	kid, _ := tok.Header["kid"].(string)
	for _, k := range set.Keys {
		if k.Kty != "RSA" || (kid != "" && k.Kid != kid) {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		eb, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			continue
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(eb).Int64())}, nil
	}
	return nil, fmt.Errorf("no key '%s' in the issuer's JWKS", kid)
}

func (e *Emulator) getJSON(ctx context.Context, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

func isLoopbackHost(h string) bool {
	return h == "127.0.0.1" || h == "::1" || h == "localhost"
}
