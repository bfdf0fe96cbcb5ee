package conformance

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// arm sends one request to the emulator's ARM with its static token (to
// look at state the client changed, not to drive it).
func (s *suite) arm(t *testing.T, method, path, body string) string {
	t.Helper()
	req, _ := http.NewRequest(method, s.emu.ARMEndpoint()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.emu.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return string(b)
}

func (s *suite) sitePath(app string) string {
	return "/subscriptions/" + s.emu.Subscription() + "/resourceGroups/" + rg + "/providers/Microsoft.Web/sites/" + app
}

// kuduDeploy puts a release on a slot with Kudu's OneDeploy (bearer token)
// and waits for it, for cases that need a running app but test something else.
func (s *suite) kuduDeploy(t *testing.T, app, slot, zipPath string) string {
	t.Helper()
	b, err := os.ReadFile(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", s.emu.SCMURL(app, slot)+"/api/publish?type=zip", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+s.emu.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("deploying to %s/%s: %d %s", app, slot, resp.StatusCode, body)
	}
	return resp.Header.Get("SCM-DEPLOYMENT-ID")
}

func TestAzureCLI(t *testing.T) {
	s := setup(t)
	sub := s.emu.Subscription()

	t.Run("sign in with the client secret", func(t *testing.T) {
		t.Parallel()
		var acct struct {
			ID, TenantID, EnvironmentName string
			User                          struct{ Name, Type string }
		}
		s.azJSON(t, s.configDir(t), &acct, "account", "show")
		if acct.ID != sub || acct.TenantID != s.emu.Tenant() || acct.User.Type != "servicePrincipal" || acct.User.Name != s.emu.ClientID() || acct.EnvironmentName != "DjdeployEmulator" {
			t.Errorf("account %+v", acct)
		}
	})

	t.Run("sign in with a federated token", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s.az(t, dir, "cloud", "register", "--name", "DjdeployEmulator", "--endpoint-resource-manager", s.emu.ARMTLSEndpoint())
		s.az(t, dir, "cloud", "set", "--name", "DjdeployEmulator")
		// A token for another subject (here: differing only in case) is
		// refused as Entra refuses it.
		bad := fakeGitHubTokenFor(t, s, strings.ToUpper(githubSubject))
		if out, err := s.azIn(dir, "login", "--service-principal", "--username", s.emu.ClientID(), "--federated-token", bad, "--tenant", s.emu.Tenant(), "--output", "none"); err == nil || !strings.Contains(out, "AADSTS700213") {
			t.Errorf("az login with a mismatched subject: err %v\n%s", err, out)
		}
		s.az(t, dir, "login", "--service-principal", "--username", s.emu.ClientID(), "--federated-token", federatedAssertion(t, s), "--tenant", s.emu.Tenant(), "--output", "none")
		var apps []struct{ Name string }
		s.azJSON(t, dir, &apps, "webapp", "list", "--resource-group", rg)
		if len(apps) != 3 {
			t.Errorf("signed in with a federated token, az webapp list found %v", apps)
		}
	})

	t.Run("webapp list, show and slot list", func(t *testing.T) {
		t.Parallel()
		dir := s.configDir(t)
		type site struct {
			Name, DefaultHostName, ResourceGroup, Type string
		}
		var all, inGroup []site
		s.azJSON(t, dir, &all, "webapp", "list")
		s.azJSON(t, dir, &inGroup, "webapp", "list", "--resource-group", rg)
		if len(all) != 3 || len(inGroup) != 3 {
			t.Errorf("webapp list: %v; in %s: %v", all, rg, inGroup)
		}
		var prod, stage site
		s.azJSON(t, dir, &prod, "webapp", "show", "--resource-group", rg, "--name", appConfig)
		s.azJSON(t, dir, &stage, "webapp", "show", "--resource-group", rg, "--name", appConfig, "--slot", "staging")
		if "http://"+prod.DefaultHostName != s.emu.ProductionURL(appConfig) || "http://"+stage.DefaultHostName != s.emu.SlotURL(appConfig, "staging") {
			t.Errorf("show: production %+v, staging %+v", prod, stage)
		}
		if stage.Name != appConfig+"/staging" || stage.Type != "Microsoft.Web/sites/slots" {
			t.Errorf("show --slot: %+v", stage)
		}
		var slots []site
		s.azJSON(t, dir, &slots, "webapp", "deployment", "slot", "list", "--resource-group", rg, "--name", appConfig)
		if len(slots) != 1 || slots[0].Name != "staging" || "http://"+slots[0].DefaultHostName != s.emu.SlotURL(appConfig, "staging") {
			t.Errorf("slot list: %+v", slots)
		}
	})

	t.Run("app settings, startup file, restart and https-only reach the running app", func(t *testing.T) {
		t.Parallel()
		dir := s.configDir(t)
		s.kuduDeploy(t, appConfig, "production", appZip(t, "c1"))
		base := []string{"--resource-group", rg, "--name", appConfig}
		s.az(t, dir, append([]string{"webapp", "config", "appsettings", "set", "--settings", "GREETING=hello", "--slot-settings", "DATABASE_URL=postgres://prod", "--output", "none"}, base...)...)
		s.serves(t, appConfig, "production", "release=c1 greeting=hello mark=")
		var settings []struct {
			Name, Value string
			SlotSetting bool
		}
		s.azJSON(t, dir, &settings, append([]string{"webapp", "config", "appsettings", "list"}, base...)...)
		got := map[string]bool{}
		for _, x := range settings {
			got[x.Name+"="+x.Value] = x.SlotSetting
		}
		if sticky, ok := got["DATABASE_URL=postgres://prod"]; !ok || !sticky || got["GREETING=hello"] {
			t.Errorf("appsettings list: %+v", settings)
		}
		if names := s.arm(t, "GET", s.sitePath(appConfig)+"/config/slotConfigNames?api-version=2024-04-01", ""); !strings.Contains(names, `"DATABASE_URL"`) {
			t.Errorf("--slot-settings did not make DATABASE_URL sticky: %s", names)
		}

		s.az(t, dir, append([]string{"webapp", "config", "set", "--startup-file", "STARTUP_MARK=custom gunicorn --bind 127.0.0.1:$PORT mysite.wsgi", "--output", "none"}, base...)...)
		s.serves(t, appConfig, "production", "release=c1 greeting=hello mark=custom")

		pid := get(t, s.emu.ProductionURL(appConfig)+"/pid")
		s.az(t, dir, append([]string{"webapp", "restart"}, base...)...)
		for i := 0; i < 600 && get(t, s.emu.ProductionURL(appConfig)+"/pid") == pid; i++ {
			sleep()
		}
		if now := get(t, s.emu.ProductionURL(appConfig)+"/pid"); now == pid {
			t.Errorf("az webapp restart: the same process (pid %s) still serves", pid)
		}
		s.servesNow(t, appConfig, "production", "release=c1 greeting=hello mark=custom")

		var updated struct{ HTTPSOnly bool }
		s.azJSON(t, dir, &updated, append([]string{"webapp", "update", "--https-only", "true"}, base...)...)
		site := s.arm(t, "GET", s.sitePath(appConfig)+"?api-version=2024-04-01", "")
		if !updated.HTTPSOnly || !strings.Contains(site, `"httpsOnly":true`) {
			t.Errorf("update --https-only: az said %+v, ARM has %s", updated, site)
		}
	})

	t.Run("zip deploy with a bearer token, deployment log, swap with preview and reset", func(t *testing.T) {
		t.Parallel()
		dir := s.configDir(t)
		if pol := s.arm(t, "GET", s.sitePath(appDeploy)+"/slots/staging/basicPublishingCredentialsPolicies/scm?api-version=2024-04-01", ""); !strings.Contains(pol, `"allow":false`) {
			t.Fatalf("basic auth should be off for this case: %s", pol)
		}
		base := []string{"--resource-group", rg, "--name", appDeploy}
		stg := append([]string{"--slot", "staging"}, base...)
		s.az(t, dir, append([]string{"webapp", "config", "appsettings", "set", "--slot-settings", "GREETING=prod-db", "--output", "none"}, base...)...)
		s.az(t, dir, append([]string{"webapp", "config", "appsettings", "set", "--slot-settings", "GREETING=stage-db", "--output", "none"}, stg...)...)
		s.az(t, dir, append([]string{"webapp", "deploy", "--type", "zip", "--src-path", appZip(t, "r1"), "--output", "none"}, base...)...)
		s.az(t, dir, append([]string{"webapp", "deploy", "--type", "zip", "--src-path", appZip(t, "r2"), "--output", "none"}, stg...)...)
		s.servesNow(t, appDeploy, "production", "release=r1 greeting=prod-db mark=")
		s.servesNow(t, appDeploy, "staging", "release=r2 greeting=stage-db mark=")

		var log []struct{ Message string }
		s.azJSON(t, dir, &log, append([]string{"webapp", "log", "deployment", "show"}, stg...)...)
		if len(log) == 0 {
			t.Errorf("az webapp log deployment show: no log entries")
		}

		swap := append([]string{"webapp", "deployment", "slot", "swap", "--target-slot", "production"}, stg...)
		s.az(t, dir, swap...)
		s.servesNow(t, appDeploy, "production", "release=r2 greeting=prod-db mark=")
		s.servesNow(t, appDeploy, "staging", "release=r1 greeting=stage-db mark=")

		s.az(t, dir, append(swap, "--action", "preview")...)
		s.servesNow(t, appDeploy, "staging", "release=r1 greeting=prod-db mark=")
		s.servesNow(t, appDeploy, "production", "release=r2 greeting=prod-db mark=")
		s.az(t, dir, append(swap, "--action", "reset")...) // resets staging and slots/production
		s.servesNow(t, appDeploy, "staging", "release=r1 greeting=stage-db mark=")

		s.az(t, dir, append(swap, "--action", "preview")...)
		s.az(t, dir, append(swap, "--action", "swap")...)
		s.servesNow(t, appDeploy, "production", "release=r1 greeting=prod-db mark=")
		s.servesNow(t, appDeploy, "staging", "release=r2 greeting=stage-db mark=")
		var staging []struct {
			Name, Value string
			SlotSetting bool
		}
		s.azJSON(t, dir, &staging, append([]string{"webapp", "config", "appsettings", "list"}, stg...)...)
		for _, x := range staging {
			if x.Name == "GREETING" && (x.Value != "stage-db" || !x.SlotSetting) {
				t.Errorf("staging's GREETING after preview+swap: %+v", x)
			}
		}
	})
}
