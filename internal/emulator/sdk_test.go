package emulator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/cdn/armcdn/v2"
)

// gatedEmulator serves an app whose startup command waits for a file
// before serving HTTP with python3 -m http.server: the test decides when a
// deployment finishes, without timing, and needs no Django.
func gatedEmulator(t *testing.T) (*Emulator, string) {
	t.Helper()
	gate := filepath.Join(t.TempDir(), "gate")
	res := DefaultResources()
	res.Apps[0].AppCommandLine = `while [ ! -e "$GATE" ]; do sleep 0.05; done; exec python3 -m http.server "$PORT" --bind 127.0.0.1`
	res.Apps[0].AppSettings = map[string]string{"GATE": gate, "GREETING": "hello"}
	res.Apps[0].StickySettings = []string{"GATE"}
	e, err := Start(context.Background(), Config{Resources: res, Log: testLog{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, gate
}

func openGate(t *testing.T, gate string) {
	t.Helper()
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func webApps(t *testing.T, e *Emulator, cred azcore.TokenCredential) *armappservice.WebAppsClient {
	t.Helper()
	c, err := armappservice.NewWebAppsClient(e.Subscription(), cred, armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestARMWithSDK(t *testing.T) {
	e, gate := gatedEmulator(t)
	openGate(t, gate)
	ctx := context.Background()
	c := webApps(t, e, staticCred(e.Token()))

	t.Run("site and slot", func(t *testing.T) {
		for _, slot := range []string{"production", "staging"} {
			var site armappservice.Site
			if slot == "production" {
				r, err := c.Get(ctx, "demo-rg", "demo-app", nil)
				if err != nil {
					t.Fatal(err)
				}
				site = r.Site
			} else {
				r, err := c.GetSlot(ctx, "demo-rg", "demo-app", slot, nil)
				if err != nil {
					t.Fatal(err)
				}
				site = r.Site
			}
			p := site.Properties
			if got := "http://" + *p.DefaultHostName; got != e.SlotURL("demo-app", slot) {
				t.Errorf("%s defaultHostName %s, want %s", slot, got, e.SlotURL("demo-app", slot))
			}
			var repo string
			for _, h := range p.HostNameSSLStates {
				if *h.HostType == armappservice.HostTypeRepository {
					repo = *h.Name
				}
			}
			if "http://"+repo != e.SCMURL("demo-app", slot) {
				t.Errorf("%s Repository host %q, want %s", slot, repo, e.SCMURL("demo-app", slot))
			}
			if *p.State != "Running" || *p.SiteConfig.LinuxFxVersion != "PYTHON|3.12" || !strings.HasSuffix(*p.ServerFarmID, "/serverfarms/demo-plan") {
				t.Errorf("%s: state %s, linuxFxVersion %s, serverFarmId %s", slot, *p.State, *p.SiteConfig.LinuxFxVersion, *p.ServerFarmID)
			}
		}
	})

	t.Run("unknown site is ResourceNotFound", func(t *testing.T) {
		_, err := c.Get(ctx, "demo-rg", "nope", nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 404 || re.ErrorCode != "ResourceNotFound" {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("plan sku", func(t *testing.T) {
		pc, err := armappservice.NewPlansClient(e.Subscription(), staticCred(e.Token()), armOptions(e))
		if err != nil {
			t.Fatal(err)
		}
		p, err := pc.Get(ctx, "demo-rg", "demo-plan", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *p.SKU.Name != "P1v3" || *p.SKU.Tier != "PremiumV3" || *p.SKU.Capacity != 1 {
			t.Errorf("sku %+v", *p.SKU)
		}
	})

	t.Run("app settings", func(t *testing.T) {
		_, err := c.UpdateApplicationSettingsSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.StringDictionary{
			Properties: map[string]*string{"GATE": to.Ptr(gate), "GREETING": to.Ptr("from staging"), "ONLY_STAGING": to.Ptr("1")},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := c.ListApplicationSettingsSlot(ctx, "demo-rg", "demo-app", "staging", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *l.Properties["GREETING"] != "from staging" || *l.Properties["ONLY_STAGING"] != "1" {
			t.Errorf("settings %v", l.Properties)
		}
	})

	t.Run("config web", func(t *testing.T) {
		r, err := c.GetConfiguration(ctx, "demo-rg", "demo-app", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(*r.Properties.AppCommandLine, "http.server") {
			t.Errorf("appCommandLine %q", *r.Properties.AppCommandLine)
		}
		u, err := c.UpdateConfiguration(ctx, "demo-rg", "demo-app", armappservice.SiteConfigResource{Properties: &armappservice.SiteConfig{HealthCheckPath: to.Ptr("/healthz")}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *u.Properties.HealthCheckPath != "/healthz" || !strings.Contains(*u.Properties.AppCommandLine, "http.server") {
			t.Errorf("after update: %q %q", *u.Properties.HealthCheckPath, *u.Properties.AppCommandLine)
		}
	})

	t.Run("deployment status pollers", func(t *testing.T) {
		id := deployZip(t, e, "demo-app", "staging", zipFiles(t, map[string]string{"index.html": "v1"}))
		p, err := c.BeginGetSlotSiteDeploymentStatusSlot(ctx, "demo-rg", "demo-app", "staging", id, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := p.PollUntilDone(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *r.Properties.Status != armappservice.DeploymentBuildStatusRuntimeSuccessful || *r.Properties.NumberOfInstancesSuccessful != 1 {
			t.Errorf("status %s", *r.Properties.Status)
		}
		if code, page := getText(t, e.SlotURL("demo-app", "staging")+"/index.html"); code != 200 || page != "v1" {
			t.Errorf("staging serves %d %q", code, page)
		}

		id = deployZip(t, e, "demo-app", "production", zipFiles(t, map[string]string{"index.html": "v0"}))
		pp, err := c.BeginGetProductionSiteDeploymentStatus(ctx, "demo-rg", "demo-app", id, nil)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := pp.PollUntilDone(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *pr.Properties.Status != armappservice.DeploymentBuildStatusRuntimeSuccessful {
			t.Errorf("production status %s", *pr.Properties.Status)
		}
	})

	t.Run("swap slot into production", func(t *testing.T) {
		before := e.Requests("GET", "*/operationresults/*")
		p, err := c.BeginSwapSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.CsmSlotEntity{TargetSlot: to.Ptr("production"), PreserveVnet: to.Ptr(true)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if e.Requests("GET", "*/operationresults/*")-before < 2 {
			t.Errorf("the swap answered 200 without a 202 poll first")
		}
		if _, page := getText(t, e.ProductionURL("demo-app")+"/index.html"); page != "v1" {
			t.Errorf("production serves %q after the swap, want v1", page)
		}
		if _, page := getText(t, e.SlotURL("demo-app", "staging")+"/index.html"); page != "v0" {
			t.Errorf("staging serves %q after the swap, want v0", page)
		}
		prod, err := c.ListApplicationSettings(ctx, "demo-rg", "demo-app", nil)
		if err != nil {
			t.Fatal(err)
		}
		if v := prod.Properties["GREETING"]; v == nil || *v != "from staging" {
			t.Errorf("GREETING did not move to production: %v", v)
		}
		if _, ok := prod.Properties["ONLY_STAGING"]; !ok {
			t.Errorf("ONLY_STAGING did not move to production")
		}
		st := e.State()
		if n := len(st.Swaps); n == 0 || !st.Swaps[n-1].Succeeded {
			t.Errorf("swap history %+v", st.Swaps)
		}
	})

	t.Run("swap production with slot", func(t *testing.T) {
		p, err := c.BeginSwapSlotWithProduction(ctx, "demo-rg", "demo-app", armappservice.CsmSlotEntity{TargetSlot: to.Ptr("staging"), PreserveVnet: to.Ptr(true)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, page := getText(t, e.ProductionURL("demo-app")+"/index.html"); page != "v0" {
			t.Errorf("production serves %q after swapping back, want v0", page)
		}
	})

	t.Run("sticky settings", func(t *testing.T) {
		names, err := c.ListSlotConfigurationNames(ctx, "demo-rg", "demo-app", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(names.Properties.AppSettingNames) != 1 || *names.Properties.AppSettingNames[0] != "GATE" {
			t.Fatalf("slotConfigNames %v", names.Properties.AppSettingNames)
		}
		_, err = c.UpdateSlotConfigurationNames(ctx, "demo-rg", "demo-app", armappservice.SlotConfigNamesResource{Properties: &armappservice.SlotConfigNames{
			AppSettingNames: []*string{to.Ptr("GATE"), to.Ptr("GREETING")}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.UpdateApplicationSettingsSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.StringDictionary{
			Properties: map[string]*string{"GATE": to.Ptr(gate), "GREETING": to.Ptr("sticky staging")}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := c.BeginSwapSlot(ctx, "demo-rg", "demo-app", "staging", armappservice.CsmSlotEntity{TargetSlot: to.Ptr("production"), PreserveVnet: to.Ptr(true)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.PollUntilDone(ctx, nil); err != nil {
			t.Fatal(err)
		}
		l, _ := c.ListApplicationSettingsSlot(ctx, "demo-rg", "demo-app", "staging", nil)
		if v := l.Properties["GREETING"]; v == nil || *v != "sticky staging" {
			t.Errorf("a sticky setting moved with the swap: staging GREETING = %v", v)
		}
	})

	t.Run("cdn profiles and purges", func(t *testing.T) {
		pc, err := armcdn.NewProfilesClient(e.Subscription(), staticCred(e.Token()), armOptions(e))
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]armcdn.SKUName{"demo-fd": armcdn.SKUNameStandardAzureFrontDoor, "demo-cdn": armcdn.SKUNameStandardMicrosoft} {
			p, err := pc.Get(ctx, "demo-rg", name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if *p.SKU.Name != want {
				t.Errorf("%s sku %s, want %s", name, *p.SKU.Name, want)
			}
		}
		ec, _ := armcdn.NewEndpointsClient(e.Subscription(), staticCred(e.Token()), armOptions(e))
		ep, err := ec.Get(ctx, "demo-rg", "demo-cdn", "demo-cdn-ep", nil)
		if err != nil {
			t.Fatal(err)
		}
		if "http://"+*ep.Properties.HostName != e.CDNURL("demo-cdn", "demo-cdn-ep") {
			t.Errorf("classic hostName %s", *ep.Properties.HostName)
		}
		poller, err := ec.BeginPurgeContent(ctx, "demo-rg", "demo-cdn", "demo-cdn-ep", armcdn.PurgeParameters{ContentPaths: []*string{to.Ptr("/static/*")}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := poller.PollUntilDone(ctx, nil); err != nil {
			t.Fatal(err)
		}
		ac, _ := armcdn.NewAFDEndpointsClient(e.Subscription(), staticCred(e.Token()), armOptions(e))
		afd, err := ac.Get(ctx, "demo-rg", "demo-fd", "demo-fd-ep", nil)
		if err != nil {
			t.Fatal(err)
		}
		ap, err := ac.BeginPurgeContent(ctx, "demo-rg", "demo-fd", "demo-fd-ep", armcdn.AfdPurgeParameters{
			ContentPaths: []*string{to.Ptr("/static/app.css")}, Domains: []*string{afd.Properties.HostName}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ap.PollUntilDone(ctx, nil); err != nil {
			t.Fatal(err)
		}
		// Wrong kind: a Front Door profile has no classic endpoints.
		_, err = ec.Get(ctx, "demo-rg", "demo-fd", "demo-fd-ep", nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 404 {
			t.Errorf("classic endpoint on a Front Door profile: %v", err)
		}
		_, err = ac.BeginPurgeContent(ctx, "demo-rg", "demo-fd", "demo-fd-ep", armcdn.AfdPurgeParameters{ContentPaths: []*string{to.Ptr("no-slash")}}, nil)
		if !errors.As(err, &re) || re.StatusCode != 400 {
			t.Errorf("bad purge path: %v", err)
		}
		st := e.State()
		var purges [][]string
		for _, c := range st.CDN {
			purges = append(purges, c.Purges...)
		}
		if len(purges) != 2 {
			t.Errorf("purges recorded: %v", purges)
		}
	})
}

func TestKuduProtocol(t *testing.T) {
	e, gate := gatedEmulator(t)
	scm := e.SCMURL("demo-app", "staging")
	pkg := zipFiles(t, map[string]string{"index.html": "kudu"})

	t.Run("401 without a bearer token", func(t *testing.T) {
		for _, u := range []string{scm + "/api/deployments", e.ARMEndpoint() + "/subscriptions/" + e.Subscription() + "/resourceGroups/demo-rg/providers/Microsoft.Web/sites/demo-app?api-version=2024-04-01"} {
			if resp := do(t, "GET", u, "", nil); resp.StatusCode != 401 {
				t.Errorf("%s without token: %d", u, resp.StatusCode)
			}
			if resp := do(t, "GET", u, "", nil, "Authorization", "Basic dXNlcjpwYXNz"); resp.StatusCode != 401 {
				t.Errorf("%s with basic auth: %d", u, resp.StatusCode)
			}
		}
	})

	t.Run("401 with a token for another audience", func(t *testing.T) {
		tok, err := e.TokenFor("https://storage.azure.com")
		if err != nil {
			t.Fatal(err)
		}
		resp := do(t, "GET", scm+"/api/deployments", tok, nil)
		if resp.StatusCode != 401 {
			t.Errorf("kudu: %d", resp.StatusCode)
		}
		resp = do(t, "GET", e.ARMEndpoint()+"/subscriptions/"+e.Subscription()+"/resourceGroups/demo-rg/providers/Microsoft.Web/sites/demo-app?api-version=2024-04-01", tok, nil)
		body := readAll(t, resp)
		if resp.StatusCode != 401 || !strings.Contains(body, "InvalidAuthenticationTokenAudience") {
			t.Errorf("arm: %d %s", resp.StatusCode, body)
		}
	})

	var id string
	t.Run("202 with Location and SCM-DEPLOYMENT-ID, then 409 while busy", func(t *testing.T) {
		resp := do(t, "POST", scm+"/api/publish?type=zip&async=true&deployer=GITHUB_ONE_DEPLOY&clean=true&restart=true", e.Token(), pkg, "Content-Type", "application/octet-stream")
		readAll(t, resp)
		if resp.StatusCode != 202 {
			t.Fatalf("publish: %d", resp.StatusCode)
		}
		id = resp.Header.Get("SCM-DEPLOYMENT-ID")
		loc := resp.Header.Get("Location")
		if !regexp.MustCompile(`/api/deployments/latest\?deployer=GITHUB_ONE_DEPLOY&time=\d{4}-\d\d-\d\d_\d\d-\d\d-\d\dZ$`).MatchString(loc) || !strings.HasPrefix(loc, scm) {
			t.Errorf("Location %q", loc)
		}
		if id == "" {
			t.Fatal("no SCM-DEPLOYMENT-ID")
		}
		for _, u := range []string{scm + "/api/publish?type=zip&async=true", scm + "/api/zipdeploy?isAsync=true"} {
			busy := do(t, "POST", u, e.Token(), pkg)
			body := readAll(t, busy)
			if busy.StatusCode != 409 || body != busyMessage || !strings.HasPrefix(busy.Header.Get("Content-Type"), "text/plain") {
				t.Errorf("%s while busy: %d %q %s", u, busy.StatusCode, body, busy.Header.Get("Content-Type"))
			}
		}
		pending := do(t, "GET", loc, e.Token(), nil)
		var dr map[string]any
		json.Unmarshal([]byte(readAll(t, pending)), &dr)
		if pending.StatusCode != 202 || pending.Header.Get("Location") == "" || dr["complete"] != false {
			t.Errorf("latest while pending: %d %v", pending.StatusCode, dr)
		}
		openGate(t, gate)
	})

	t.Run("200 with a DeployResult when done", func(t *testing.T) {
		st, body := waitDeployment(t, e, "demo-app", "staging", id)
		if st != kuduSuccess {
			t.Fatalf("status %d: %s", st, body)
		}
		var dr map[string]any
		json.Unmarshal([]byte(body), &dr)
		for _, f := range []string{"id", "status", "status_text", "author_email", "author", "deployer", "message", "progress", "received_time", "start_time", "end_time", "last_success_end_time", "complete", "active", "is_temp", "is_readonly", "url", "log_url", "site_name", "provisioningState"} {
			if _, ok := dr[f]; !ok {
				t.Errorf("DeployResult lacks %s", f)
			}
		}
		if dr["complete"] != true || dr["active"] != true || dr["log_url"] != dr["url"].(string)+"/log" || dr["deployer"] != "GITHUB_ONE_DEPLOY" {
			t.Errorf("DeployResult %v", dr)
		}
		resp := do(t, "GET", scm+"/api/deployments/latest", e.Token(), nil)
		if readAll(t, resp); resp.StatusCode != 200 {
			t.Errorf("latest when done: %d", resp.StatusCode)
		}
		logResp := do(t, "GET", dr["log_url"].(string), e.Token(), nil)
		var entries []map[string]any
		if err := json.Unmarshal([]byte(readAll(t, logResp)), &entries); err != nil || len(entries) == 0 || entries[0]["message"] == nil {
			t.Errorf("log: %v %v", err, entries)
		}
		if code, page := getText(t, e.SlotURL("demo-app", "staging")+"/index.html"); code != 200 || page != "kudu" {
			t.Errorf("staging serves %d %q", code, page)
		}
	})

	t.Run("zipdeploy", func(t *testing.T) {
		resp := do(t, "POST", scm+"/api/zipdeploy?isAsync=true", e.Token(), pkg, "Content-Type", "application/octet-stream")
		readAll(t, resp)
		if resp.StatusCode != 202 || resp.Header.Get("SCM-DEPLOYMENT-ID") == "" || !strings.Contains(resp.Header.Get("Location"), "deployer=ZipDeploy") {
			t.Fatalf("zipdeploy: %d %v", resp.StatusCode, resp.Header)
		}
		if st, body := waitDeployment(t, e, "demo-app", "staging", resp.Header.Get("SCM-DEPLOYMENT-ID")); st != kuduSuccess {
			t.Fatalf("status %d %s", st, body)
		}
	})

	t.Run("bad type", func(t *testing.T) {
		resp := do(t, "POST", scm+"/api/publish?type=bogus", e.Token(), pkg)
		if body := readAll(t, resp); resp.StatusCode != 400 || !strings.Contains(body, "type='bogus' not recognized") {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
	})
}

func TestTokenAuthority(t *testing.T) {
	e := shared(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.CAPEM())
	tr := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	copts := azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: e.AuthorityHost()}, Transport: tr}
	ctx := context.Background()

	t.Run("client secret token is accepted by ARM", func(t *testing.T) {
		cred, err := azidentity.NewClientSecretCredential(e.Tenant(), e.ClientID(), e.ClientSecret(), &azidentity.ClientSecretCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := webApps(t, e, cred).Get(ctx, "demo-rg", "demo-app", nil); err != nil {
			t.Fatalf("ARM refused the authority's token: %v", err)
		}
		// The same credential asked for another resource gets a token ARM refuses.
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
		if err != nil {
			t.Fatal(err)
		}
		resp := do(t, "GET", e.ARMEndpoint()+"/subscriptions/"+e.Subscription()+"/resourceGroups/demo-rg/providers/Microsoft.Web/sites/demo-app?api-version=2024-04-01", tok.Token, nil)
		if body := readAll(t, resp); resp.StatusCode != 401 || !strings.Contains(body, "InvalidAuthenticationTokenAudience") {
			t.Errorf("wrong-scope token: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("wrong secret is refused", func(t *testing.T) {
		cred, err := azidentity.NewClientSecretCredential(e.Tenant(), e.ClientID(), "wrong", &azidentity.ClientSecretCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{ARMAudience + "/.default"}})
		if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
			t.Errorf("got %v", err)
		}
	})

	t.Run("federated assertion", func(t *testing.T) {
		assertion, _ := e.TokenFor("api://AzureADTokenExchange")
		cred, err := azidentity.NewClientAssertionCredential(e.Tenant(), e.ClientID(), func(context.Context) (string, error) { return assertion, nil },
			&azidentity.ClientAssertionCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := webApps(t, e, cred).Get(ctx, "demo-rg", "demo-app", nil); err != nil {
			t.Fatalf("ARM refused a federated token: %v", err)
		}
	})

	t.Run("authority is TLS only with the emulator CA", func(t *testing.T) {
		u, _ := url.Parse(e.AuthorityHost())
		if u.Scheme != "https" {
			t.Fatalf("authority %s", e.AuthorityHost())
		}
		if _, err := http.Get(e.AuthorityHost() + e.Tenant() + "/v2.0/.well-known/openid-configuration"); err == nil {
			t.Errorf("the system roots trusted the emulator's certificate")
		}
	})
}
