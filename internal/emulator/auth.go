package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// ARMAudience is the audience ARM and Kudu accept (the public cloud's).
const ARMAudience = "https://management.core.windows.net/"

// acceptedAudiences are the token audiences Azure Resource Manager accepts.
var acceptedAudiences = map[string]bool{
	"https://management.core.windows.net/": true,
	"https://management.core.windows.net":  true,
	"https://management.azure.com/":        true,
	"https://management.azure.com":         true,
}

// appServiceAudiences are App Service's resource id (the cloud's
// appServiceResourceId), which Kudu accepts besides ARM's.
var appServiceAudiences = []string{"https://appservice.azure.com", "https://appservice.azure.com/"}

// issuer signs and checks the emulator's tokens (RS256, like Entra ID).
type issuer struct {
	key    *rsa.PrivateKey
	kid    string
	tenant string
	host   string // authority base URL, https://127.0.0.1:port
}

func newIssuer(tenant string) (*issuer, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &issuer{key: k, kid: uuid.NewString()[:8], tenant: tenant}, nil
}

func (i *issuer) issuerURL() string { return i.host + "/" + i.tenant + "/v2.0" }

// sign issues a token for aud, valid for ttl.
func (i *issuer) sign(aud, clientID string, ttl time.Duration) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{
		"aud":   aud,
		"iss":   i.issuerURL(),
		"tid":   i.tenant,
		"appid": clientID,
		"azp":   clientID,
		"oid":   uuid.NewSHA1(uuid.NameSpaceOID, []byte(clientID)).String(),
		"sub":   uuid.NewSHA1(uuid.NameSpaceOID, []byte(clientID)).String(),
		"iat":   now.Unix(),
		"nbf":   now.Add(-5 * time.Minute).Unix(),
		"exp":   now.Add(ttl).Unix(),
		"ver":   "2.0",
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = i.kid
	return t.SignedString(i.key)
}

// check validates a bearer token: our signature, not expired, ARM audience.
// The returned string is the reason for a refusal (ARM's error code text).
func (i *issuer) check(tok string, alsoAccepted ...string) (code, msg string) {
	var claims jwt.MapClaims
	_, err := jwt.ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
		return &i.key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired())
	if err != nil {
		if strings.Contains(err.Error(), "expired") {
			return "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time."
		}
		return "InvalidAuthenticationToken", "The access token is invalid."
	}
	aud, _ := claims["aud"].(string)
	if !acceptedAudiences[aud] && !slices.Contains(alsoAccepted, aud) {
		return "InvalidAuthenticationTokenAudience", fmt.Sprintf("The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of the allowed audiences '%s','%s'.", aud, ARMAudience, "https://management.azure.com/")
	}
	return "", ""
}

// requireBearer wraps an ARM or Kudu handler: basic auth is disabled (as
// when basicPublishingCredentialsPolicies/scm allow=false), so only a bearer
// token with the ARM audience gets through.
func (e *Emulator) requireBearer(kudu bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		code, msg := "", ""
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok && tok != "" {
			var extra []string
			if kudu {
				// Kudu also takes App Service's own audience (az webapp deploy
				// asks for it).
				extra = appServiceAudiences
			}
			code, msg = e.iss.check(strings.TrimSpace(tok), extra...)
		} else if h == "" {
			code, msg = "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
		} else {
			code, msg = "AuthenticationFailed", "Authentication failed. Only Bearer tokens are accepted (basic authentication is disabled)."
		}
		if code == "" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="`+e.iss.host+"/"+e.iss.tenant+`", error="invalid_token"`)
		if kudu {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, msg)
			return
		}
		armError(w, http.StatusUnauthorized, code, msg)
	})
}

// authorityHandler is a minimal Microsoft Entra ID: OIDC discovery, the v2
// token endpoint for client credentials (secret or federated assertion),
// and the signing keys.
func (e *Emulator) authorityHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		t := r.PathValue("tenant")
		base := e.iss.host + "/" + t
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":                        base + "/oauth2/v2.0/token",
			"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
			"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
			"jwks_uri":                              base + "/discovery/v2.0/keys",
			"issuer":                                e.iss.host + "/" + e.iss.tenant + "/v2.0",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"tenant_region_scope":                   "EU",
			"cloud_instance_name":                   "microsoftonline.com",
		})
	})
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", func(w http.ResponseWriter, r *http.Request) {
		pub := e.iss.key.PublicKey
		writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": e.iss.kid,
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.serveToken)
	return mux
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]any{
		"error": code, "error_description": desc, "error_codes": []int{}, "timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id": uuid.NewString(), "correlation_id": uuid.NewString(),
	})
}

func (e *Emulator) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: malformed request body.")
		return
	}
	if t := r.PathValue("tenant"); !strings.EqualFold(t, e.iss.tenant) && t != "organizations" {
		oauthError(w, http.StatusBadRequest, "invalid_tenant", fmt.Sprintf("AADSTS90002: Tenant '%s' not found.", t))
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("AADSTS70003: The app requested an unsupported grant type '%s'.", gt))
		return
	}
	clientID := r.PostForm.Get("client_id")
	secret := r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		clientID, secret = u, p
	}
	if clientID == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'client_id'.")
		return
	}
	switch {
	case r.PostForm.Get("client_assertion") != "":
		// A federated credential (GitHub or Azure Pipelines OIDC), checked as
		// Entra checks it (federated.go).
		if code, desc := e.checkAssertion(r.Context(), clientID, r.PostForm.Get("client_assertion")); code != "" {
			oauthError(w, http.StatusBadRequest, code, desc)
			return
		}
	case secret != "":
		if clientID != e.cfg.ClientID || secret != e.cfg.ClientSecret {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+clientID+"'.")
			return
		}
	default:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	var aud string
	for _, s := range strings.Fields(r.PostForm.Get("scope")) {
		if strings.HasSuffix(s, "/.default") {
			aud = strings.TrimSuffix(s, ".default")
			break
		}
	}
	if aud == "" {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	// scope = resource + "/.default": https://management.core.windows.net//.default
	// is the resource https://management.core.windows.net/.
	aud = strings.TrimSuffix(aud, "/")
	tok, err := e.iss.sign(aud, clientID, time.Hour)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	e.countToken()
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
