package emulator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/testenv"
)

// tlsClient trusts only the emulator's CA, as a client given
// DJDEPLOY_CA_FILE / REQUESTS_CA_BUNDLE does.
func tlsClient(e *Emulator) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.cert.pool()}}}
}

// call sends a request with client c and returns status, headers and body.
func call(t *testing.T, c *http.Client, method, url, tok, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func errCode(body string) string {
	var v struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &v)
	return v.Error.Code
}

// pollDone follows an operation's Location until it stops answering 202.
func pollDone(t *testing.T, c *http.Client, loc, tok string) int {
	t.Helper()
	for i := 0; i < 600; i++ {
		st, h, body := call(t, c, "GET", loc, tok, "")
		if st != http.StatusAccepted {
			if st != http.StatusOK {
				t.Logf("operation: %d %s", st, body)
			}
			return st
		}
		if next := h.Get("Location"); next != "" {
			loc = next
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("operation %s never finished", loc)
	return 0
}

// TestClientConformanceRoutes covers what Microsoft's clients need beyond
// djdeploy's own calls, over TLS as they use it.
func TestClientConformanceRoutes(t *testing.T) {
	e := shared(t)
	c := tlsClient(e)
	arm := e.ARMTLSEndpoint()
	tok := e.Token()
	sub := "/subscriptions/" + e.Subscription()
	site := sub + "/resourceGroups/demo-rg/providers/Microsoft.Web/sites/demo-app"
	const v = "?api-version=2024-04-01"

	t.Run("export block offers the https ARM endpoint, the CA and the service principal", func(t *testing.T) {
		env := e.Env()
		if !strings.HasPrefix(env["DJDEPLOY_ARM_ENDPOINT"], "https://") || env["DJDEPLOY_CA_FILE"] != e.CAFile() {
			t.Errorf("ARM endpoint %q, CA %q", env["DJDEPLOY_ARM_ENDPOINT"], env["DJDEPLOY_CA_FILE"])
		}
		if env["AZURE_CLIENT_ID"] != e.ClientID() || env["AZURE_CLIENT_SECRET"] != e.ClientSecret() || env["AZURE_CLIENT_SECRET"] == "" {
			t.Errorf("client id/secret not exported: %q %q", env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"])
		}
	})
	t.Run("metadata endpoints are anonymous and name the authority and this ARM", func(t *testing.T) {
		st, _, body := call(t, c, "GET", arm+"/metadata/endpoints?api-version=2022-09-01", "", "")
		if st != 200 || !strings.Contains(body, `"resourceManager":"`+arm+`/"`) || !strings.Contains(body, e.authHost) {
			t.Fatalf("%d %s", st, body)
		}
	})
	t.Run("subscription and resource group reads", func(t *testing.T) {
		for _, tc := range []struct{ path, want string }{
			{"/subscriptions?api-version=2022-12-01", `"subscriptionId":"` + e.Subscription()},
			{sub + "?api-version=2022-12-01", `"tenantId":"` + e.Tenant()},
			{sub + "/resourcegroups?api-version=2024-03-01", `"name":"demo-rg"`},
			{sub + "/resourcegroups/DEMO-rg?api-version=2024-03-01", `"type":"Microsoft.Resources/resourceGroups"`},
		} {
			st, h, body := call(t, c, "GET", arm+tc.path, tok, "")
			if st != 200 || !strings.Contains(body, tc.want) || h.Get("x-ms-request-id") == "" {
				t.Errorf("%s: %d %s (request id %q)", tc.path, st, body, h.Get("x-ms-request-id"))
			}
		}
		st, _, body := call(t, c, "GET", arm+sub+"/resourcegroups/nope?api-version=2024-03-01", tok, "")
		if st != 404 || errCode(body) != "ResourceGroupNotFound" {
			t.Errorf("missing group: %d %s", st, body)
		}
	})
	t.Run("request and correlation ids", func(t *testing.T) {
		_, h, _ := call(t, c, "GET", arm+site+v, tok, "", "x-ms-correlation-request-id", "corr-123")
		if h.Get("x-ms-correlation-request-id") != "corr-123" || len(h.Get("x-ms-request-id")) != 36 {
			t.Errorf("headers %v", h)
		}
	})
	t.Run("api-version is validated per resource type", func(t *testing.T) {
		for _, bad := range []string{"banana", "2099-01-01", "2001-01-01"} {
			st, _, body := call(t, c, "GET", arm+site+"?api-version="+bad, tok, "")
			if st != 400 || errCode(body) != "InvalidApiVersionParameter" || !strings.Contains(body, "'sites'") {
				t.Errorf("%s: %d %s", bad, st, body)
			}
		}
		if st, _, body := call(t, c, "GET", arm+site+"?api-version=2023-12-01-preview", tok, ""); st != 200 {
			t.Errorf("preview version refused: %d %s", st, body)
		}
	})
	t.Run("a missing slot is reported with ARM's resource type", func(t *testing.T) {
		st, _, body := call(t, c, "GET", arm+site+"/slots/missing-slot"+v, tok, "")
		if st != 404 || !strings.Contains(body, "'Microsoft.Web/sites/demo-app/slots/missing-slot'") {
			t.Errorf("%d %s", st, body)
		}
	})
	t.Run("slots/production names the production site", func(t *testing.T) {
		st, _, body := call(t, c, "GET", arm+site+"/slots/production"+v, tok, "")
		if st != 200 || !strings.Contains(body, `"type":"Microsoft.Web/sites"`) || !strings.Contains(body, `"name":"demo-app"`) {
			t.Errorf("%d %s", st, body)
		}
	})
	t.Run("nested resources are named as ARM names them", func(t *testing.T) {
		for path, want := range map[string]string{
			site + "/slots/staging/deploymentStatus/nope":                                              "'Microsoft.Web/sites/demo-app/slots/staging/deploymentStatus/nope'",
			site + "/deploymentStatus/nope":                                                            "'Microsoft.Web/sites/demo-app/deploymentStatus/nope'",
			sub + "/resourceGroups/demo-rg/providers/Microsoft.Cdn/profiles/demo-fd/afdEndpoints/nope": "'Microsoft.Cdn/profiles/demo-fd/afdEndpoints/nope'",
		} {
			st, _, body := call(t, c, "GET", arm+path+v, tok, "")
			if st != 404 || errCode(body) != "ResourceNotFound" || !strings.Contains(body, want) {
				t.Errorf("%s: %d %s, want %s", path, st, body, want)
			}
		}
	})
	t.Run("site and profile lists at both scopes", func(t *testing.T) {
		for _, p := range []string{sub + "/providers/Microsoft.Web/sites", sub + "/resourceGroups/demo-rg/providers/Microsoft.Web/sites"} {
			st, _, body := call(t, c, "GET", arm+p+v, tok, "")
			if st != 200 || !strings.Contains(body, `"name":"demo-app"`) {
				t.Errorf("%s: %d %s", p, st, body)
			}
		}
		for _, p := range []string{sub + "/providers/Microsoft.Cdn/profiles", sub + "/resourceGroups/demo-rg/providers/Microsoft.Cdn/profiles"} {
			st, _, body := call(t, c, "GET", arm+p+v, tok, "")
			if st != 200 || !strings.Contains(body, `"name":"demo-fd"`) || !strings.Contains(body, `"name":"demo-cdn"`) {
				t.Errorf("%s: %d %s", p, st, body)
			}
		}
	})
	t.Run("site update sets httpsOnly; restart answers 200", func(t *testing.T) {
		st, _, body := call(t, c, "PATCH", arm+site+"/slots/staging"+v, tok, `{"properties":{"httpsOnly":true}}`)
		if st != 200 || !strings.Contains(body, `"httpsOnly":true`) {
			t.Fatalf("%d %s", st, body)
		}
		_, _, body = call(t, c, "GET", arm+site+"/slots/staging"+v, tok, "")
		if !strings.Contains(body, `"httpsOnly":true`) {
			t.Errorf("not kept: %s", body)
		}
		call(t, c, "PATCH", arm+site+"/slots/staging"+v, tok, `{"properties":{"httpsOnly":false}}`)
		if st, _, body := call(t, c, "POST", arm+site+"/restart"+v, tok, ""); st != 200 {
			t.Errorf("restart: %d %s", st, body)
		}
	})
	t.Run("operation URLs keep the request's scheme", func(t *testing.T) {
		for _, cl := range []struct {
			base   string
			client *http.Client
		}{{arm, c}, {e.ARMEndpoint(), http.DefaultClient}} {
			scheme := cl.base[:strings.Index(cl.base, "://")+3]
			st, h, body := call(t, cl.client, "POST", cl.base+site+"/slots/staging/slotsswap"+v, tok, `{"targetSlot":"production"}`)
			if st != 202 || !strings.HasPrefix(h.Get("Location"), scheme) {
				t.Fatalf("swap over %s: %d Location %q %s", scheme, st, h.Get("Location"), body)
			}
			if got := pollDone(t, cl.client, h.Get("Location"), tok); got != 200 {
				t.Fatalf("swap over %s ended %d", scheme, got)
			}
			ep := sub + "/resourceGroups/demo-rg/providers/Microsoft.Cdn/profiles/demo-fd/afdEndpoints/demo-fd-ep/purge"
			st, h, body = call(t, cl.client, "POST", cl.base+ep+v, tok, `{"contentPaths":["/static/*"]}`)
			if st != 202 || !strings.HasPrefix(h.Get("Azure-AsyncOperation"), scheme) {
				t.Fatalf("purge over %s: %d %v %s", scheme, st, h, body)
			}
		}
	})
}

// TestKuduBasicAuthFollowsPolicy: publishing credentials work on Kudu
// exactly while basicPublishingCredentialsPolicies/scm allows them.
func TestKuduBasicAuthFollowsPolicy(t *testing.T) {
	e := shared(t)
	c := tlsClient(e)
	site := e.ARMTLSEndpoint() + "/subscriptions/" + e.Subscription() + "/resourceGroups/demo-rg/providers/Microsoft.Web/sites/demo-app/slots/staging"
	const v = "?api-version=2024-04-01"
	st, _, body := call(t, c, "POST", site+"/config/publishingcredentials/list"+v, e.Token(), "")
	var cred struct {
		Properties struct{ PublishingUserName, PublishingPassword string } `json:"properties"`
	}
	if err := json.Unmarshal([]byte(body), &cred); st != 200 || err != nil || cred.Properties.PublishingUserName != "$demo-app__staging" || cred.Properties.PublishingPassword == "" {
		t.Fatalf("credentials: %d %s", st, body)
	}
	kudu := func(user, pass string) int {
		req, _ := http.NewRequest("GET", e.SCMURL("demo-app", "staging")+"/api/deployments", nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	policy := func(allow bool) {
		b, _ := json.Marshal(map[string]any{"properties": map[string]any{"allow": allow}})
		if st, _, body := call(t, c, "PUT", site+"/basicPublishingCredentialsPolicies/scm"+v, e.Token(), string(b)); st != 200 {
			t.Fatalf("policy: %d %s", st, body)
		}
	}
	u, p := cred.Properties.PublishingUserName, cred.Properties.PublishingPassword
	policy(false)
	t.Cleanup(func() { policy(false) })
	if got := kudu(u, p); got != 401 {
		t.Errorf("basic auth while the policy forbids it: %d, want 401", got)
	}
	_, _, xml := call(t, c, "POST", site+"/publishxml"+v, e.Token(), "")
	if strings.Contains(xml, p) || !strings.Contains(xml, "publishProfile") {
		t.Errorf("publishxml while basic auth is off: %s", xml)
	}
	policy(true)
	if got := kudu(u, p); got != 200 {
		t.Errorf("basic auth while the policy allows it: %d, want 200", got)
	}
	if got := kudu(u, p+"x"); got != 401 {
		t.Errorf("wrong password: %d, want 401", got)
	}
	if _, _, xml := call(t, c, "POST", site+"/publishxml"+v, e.Token(), ""); !strings.Contains(xml, `userPWD="`+p+`"`) {
		t.Errorf("publishxml while basic auth is on lacks the password: %s", xml)
	}
}

// TestSwapAppliesStickySettingsToRunningApps: the processes, not only ARM,
// hold each slot's sticky settings through preview, reset and swap.
func TestSwapAppliesStickySettingsToRunningApps(t *testing.T) {
	py := testenv.Python(t)
	e, err := Start(context.Background(), Config{Python: py, Log: testLog{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c := tlsClient(e)
	tok := e.Token()
	site := e.ARMTLSEndpoint() + "/subscriptions/" + e.Subscription() + "/resourceGroups/demo-rg/providers/Microsoft.Web/sites/demo-app"
	const v = "?api-version=2024-04-01"
	for _, x := range []struct{ slot, text string }{{"production", "v1"}, {"staging", "v2"}} {
		id := deployZip(t, e, "demo-app", x.slot, zipDir(t, djangoApp(t, x.text)))
		if st, body := waitDeployment(t, e, "demo-app", x.slot, id); st != 4 {
			t.Fatalf("deploy %s: %d %s", x.slot, st, body)
		}
	}
	if st, _, body := call(t, c, "PUT", site+"/config/slotConfigNames"+v, tok, `{"properties":{"appSettingNames":["GREETING"]}}`); st != 200 {
		t.Fatalf("slotConfigNames: %d %s", st, body)
	}
	for slot, path := range map[string]string{"production": "", "staging": "/slots/staging"} {
		if st, _, body := call(t, c, "PUT", site+path+"/config/appsettings"+v, tok, `{"properties":{"GREETING":"`+slot+`-db","COLOR":"`+slot+`-color"}}`); st != 200 {
			t.Fatalf("settings: %d %s", st, body)
		}
	}
	serves := func(slot, want string) {
		t.Helper()
		var body string
		for i := 0; i < 300; i++ { // the restart after a settings change is asynchronous
			_, body = getText(t, e.SlotURL("demo-app", slot)+"/")
			if body == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s serves %q, want %q", slot, body, want)
	}
	serves("production", "v1 slot=production setting=production-db")
	serves("staging", "v2 slot=staging setting=staging-db")
	post := func(path, body string) {
		t.Helper()
		if st, _, b := call(t, c, "POST", site+path+v, tok, body); st != 200 {
			t.Fatalf("%s: %d %s", path, st, b)
		}
	}
	// applySlotConfig answers after the restart: no waiting needed.
	post("/slots/staging/applySlotConfig", `{"targetSlot":"production"}`)
	if _, body := getText(t, e.SlotURL("demo-app", "staging")+"/"); body != "v2 slot=staging setting=production-db" {
		t.Fatalf("after applySlotConfig staging serves %q", body)
	}
	// Reset through the other slot of the pending swap, as az does.
	post("/slots/production/resetSlotConfig", "")
	if _, body := getText(t, e.SlotURL("demo-app", "staging")+"/"); body != "v2 slot=staging setting=staging-db" {
		t.Fatalf("after resetSlotConfig staging serves %q", body)
	}
	swap := func() {
		t.Helper()
		st, h, body := call(t, c, "POST", site+"/slots/staging/slotsswap"+v, tok, `{"targetSlot":"production"}`)
		if st != 202 {
			t.Fatalf("swap: %d %s", st, body)
		}
		if got := pollDone(t, c, h.Get("Location"), tok); got != 200 {
			t.Fatalf("swap ended %d", got)
		}
	}
	post("/slots/staging/applySlotConfig", `{"targetSlot":"production"}`)
	swap()
	// Once the operation is done both running apps hold their slot's values.
	for slot, want := range map[string][2]string{"production": {"v2 ", "setting=production-db"}, "staging": {"v1 ", "setting=staging-db"}} {
		if _, body := getText(t, e.SlotURL("demo-app", slot)+"/"); !strings.HasPrefix(body, want[0]) || !strings.HasSuffix(body, want[1]) {
			t.Errorf("after preview+swap %s serves %q, want %q", slot, body, want)
		}
	}
	_, _, body := call(t, c, "POST", site+"/slots/staging/config/appsettings/list"+v, tok, "")
	if !strings.Contains(body, `"GREETING":"staging-db"`) || !strings.Contains(body, `"COLOR":"production-color"`) {
		t.Errorf("staging's settings after swap: %s", body)
	}
	// No preview state is left: a reset now changes nothing.
	post("/slots/staging/resetSlotConfig", "")
	_, _, after := call(t, c, "POST", site+"/slots/staging/config/appsettings/list"+v, tok, "")
	if after != body {
		t.Errorf("resetSlotConfig after a swap changed settings:\n%s\n%s", body, after)
	}
	swap() // a plain swap back, phase 1 included
	for slot, want := range map[string][2]string{"production": {"v1 ", "setting=production-db"}, "staging": {"v2 ", "setting=staging-db"}} {
		if _, body := getText(t, e.SlotURL("demo-app", slot)+"/"); !strings.HasPrefix(body, want[0]) || !strings.HasSuffix(body, want[1]) {
			t.Errorf("after swap back %s serves %q, want %q", slot, body, want)
		}
	}
}
