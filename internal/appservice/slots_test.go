package appservice

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

func TestPreviewTarget(t *testing.T) {
	for _, c := range []struct {
		app, pr  string
		want     string // slot; "" means a usage error
		errLike  string
		fixLikes string
	}{
		{app: "shop", pr: "7", want: "pr-7"},
		{app: "shop", pr: "#42", want: "pr-42"},
		{app: "shop", pr: " 007 ", want: "pr-7"},
		{app: "shop", pr: "abc", errLike: `"abc" is not a positive whole number`, fixLikes: "--pr 42"},
		{app: "shop", pr: "0", errLike: "not a positive whole number"},
		{app: "shop", pr: "-3", errLike: "not a positive whole number"},
		{app: "shop", pr: "", errLike: "not a positive whole number"},
		{app: "shop", pr: "12345678901", errLike: "not a positive whole number"},
		{app: strings.Repeat("a", 54), pr: "7", want: "pr-7"}, // 54 + "-" + 4 = 59, the most App Service allows
		{app: strings.Repeat("a", 55), pr: "7", errLike: "would be 60 characters", fixLikes: "at most 54 characters"},
	} {
		t.Run(c.app[:min(len(c.app), 8)]+"/"+c.pr, func(t *testing.T) {
			got, err := PreviewTarget("rg", c.app, c.pr)
			if c.errLike == "" {
				if err != nil {
					t.Fatalf("PreviewTarget: %v", err)
				}
				if c.want != "" && got.Slot != c.want {
					t.Errorf("slot %q, want %q", got.Slot, c.want)
				}
				return
			}
			p, ok := problem.As(err)
			if !ok || !p.Usage {
				t.Fatalf("want a usage error, got %v (slot %q)", err, got.Slot)
			}
			if !strings.Contains(err.Error(), c.errLike) || !strings.Contains(p.Fix, c.fixLikes) {
				t.Errorf("error %q / fix %q: want %q / %q", err, p.Fix, c.errLike, c.fixLikes)
			}
		})
	}
}

// slotsEmulator is an emulator of its own (no Azurite, no app started):
// one app per plan tier that matters to slots.
func slotsEmulator(t *testing.T) (*emulator.Emulator, *Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	py := testenv.Python(t)
	res := emulator.DefaultResources()
	res.Apps = []emulator.AppConfig{
		{Name: "basic-app", ResourceGroup: "demo-rg", Plan: emulator.PlanConfig{Name: "basic-plan", SKU: "B1"}},
		{Name: "std-app", ResourceGroup: "demo-rg", Plan: emulator.PlanConfig{Name: "std-plan", SKU: "S1"},
			Slots: []string{"staging", "qa", "pr-1", "pr-2", "pr-3"}},
		{Name: "prem-app", ResourceGroup: "demo-rg", Plan: emulator.PlanConfig{Name: "prem-plan", SKU: "P1v3"},
			Slots: []string{"staging"}, AppCommandLine: "gunicorn mysite.asgi:application", HealthCheckPath: "/healthz",
			AppSettings:       map[string]string{"FEATURE": "on", "DATABASE_URL": "postgres://prod"},
			StickySettings:    []string{"DATABASE_URL"},
			ConnectionStrings: map[string]emulator.ConnStringConfig{"Default": {Value: "Server=prod", Type: "PostgreSQL"}, "Cache": {Value: "redis://c", Type: "Custom"}}},
	}
	res.CDN = nil
	emu, err := emulator.Start(context.Background(), emulator.Config{Python: py, Workers: 1, Resources: res})
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	cfg := azure.Config{ARMEndpoint: emu.ARMEndpoint(), CAFile: emu.CAFile()}
	opts, err := cfg.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Retry.RetryDelay = 10 * time.Millisecond
	hc, err := cfg.HTTPClient(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(emu.Subscription(), azure.StaticToken(emu.Token()), opts, hc, progress.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return emu, c
}

// A preview slot is made from production's configuration without its slot
// settings, after the plan's slot limit is checked; on a plan without room
// nothing is created.
func TestEnsureSlotAndDeleteSlot(t *testing.T) {
	_, c := slotsEmulator(t)
	ctx := context.Background()

	t.Run("plan without slots", func(t *testing.T) {
		_, err := c.EnsureSlot(ctx, Target{ResourceGroup: "demo-rg", App: "basic-app", Slot: "pr-9"})
		if p, ok := problem.As(err); !ok || !p.Usage || !strings.Contains(err.Error(), "has no deployment slots") || !strings.Contains(p.Fix, "scale the plan up") {
			t.Fatalf("want a usage error naming the plan, got %v", err)
		}
		if s, err := c.Slots(ctx, "demo-rg", "basic-app"); err != nil || len(s) != 0 {
			t.Errorf("slots after the refusal: %v, %v", s, err)
		}
	})
	t.Run("plan's slots all taken", func(t *testing.T) {
		_, err := c.EnsureSlot(ctx, Target{ResourceGroup: "demo-rg", App: "std-app", Slot: "pr-9"})
		if p, ok := problem.As(err); !ok || !p.Usage || !strings.Contains(err.Error(), "already has 5 deployment slots") || !strings.Contains(p.Fix, "pr-1, pr-2, pr-3") {
			t.Fatalf("want a usage error with the preview slots to delete, got %v", err)
		}
		if s, _ := c.Slots(ctx, "demo-rg", "std-app"); len(s) != 5 {
			t.Errorf("slots %v, want the 5 there were", s)
		}
	})
	t.Run("created from production, sticky settings stay", func(t *testing.T) {
		prod := Target{ResourceGroup: "demo-rg", App: "prem-app"}
		if _, err := c.webApps.UpdateSlotConfigurationNames(ctx, "demo-rg", "prem-app", armappservice.SlotConfigNamesResource{
			Properties: &armappservice.SlotConfigNames{AppSettingNames: []*string{to.Ptr("DATABASE_URL")}, ConnectionStringNames: []*string{to.Ptr("Default")}},
		}, nil); err != nil {
			t.Fatal(err)
		}
		pr := Target{ResourceGroup: "demo-rg", App: "prem-app", Slot: "pr-4"}
		res, err := c.EnsureSlot(ctx, pr)
		if err != nil || !res.Created {
			t.Fatalf("EnsureSlot: %+v, %v", res, err)
		}
		settings, err := c.AppSettings(ctx, pr)
		if err != nil {
			t.Fatal(err)
		}
		if settings["FEATURE"] != "on" || settings["DATABASE_URL"] != "" {
			t.Errorf("slot settings %v: want FEATURE copied and the sticky DATABASE_URL left with production", settings)
		}
		conns, err := c.ConnectionStrings(ctx, pr)
		if err != nil {
			t.Fatal(err)
		}
		if conns["Cache"].Value != "redis://c" || conns["Cache"].Type != "Custom" {
			t.Errorf("connection string Cache: %+v", conns["Cache"])
		}
		if _, ok := conns["Default"]; ok {
			t.Errorf("the sticky connection string Default was copied to the preview")
		}
		want, _ := c.getSiteConfig(ctx, prod)
		got, err := c.getSiteConfig(ctx, pr)
		if err != nil {
			t.Fatal(err)
		}
		if deref(got.LinuxFxVersion) != deref(want.LinuxFxVersion) || deref(got.AppCommandLine) != "gunicorn mysite.asgi:application" || deref(got.HealthCheckPath) != "/healthz" {
			t.Errorf("slot config %+v, want production's %+v", got, want)
		}
		site, err := c.GetSite(ctx, pr)
		if err != nil || site.DefaultHostName == "" || site.SCMHost == "" {
			t.Fatalf("the new slot has no hosts: %+v, %v", site, err)
		}
		if res, err := c.EnsureSlot(ctx, pr); err != nil || res.Created {
			t.Errorf("second EnsureSlot: %+v, %v; want found, not created", res, err)
		}
		if deleted, err := c.DeleteSlot(ctx, pr); err != nil || !deleted {
			t.Fatalf("DeleteSlot: %v, %v", deleted, err)
		}
		if deleted, err := c.DeleteSlot(ctx, pr); err != nil || deleted {
			t.Errorf("second DeleteSlot: %v, %v; want nothing to delete", deleted, err)
		}
		if _, err := c.GetSite(ctx, pr); err == nil {
			t.Errorf("slot %s still answers after the delete", pr)
		}
		if s, _ := c.Slots(ctx, "demo-rg", "prem-app"); strings.Join(s, ",") != "staging" {
			t.Errorf("slots after the delete: %v", s)
		}
	})
	t.Run("emulator clones with cloningInfo", func(t *testing.T) {
		prod, err := c.GetSite(ctx, Target{ResourceGroup: "demo-rg", App: "prem-app"})
		if err != nil {
			t.Fatal(err)
		}
		poller, err := c.webApps.BeginCreateOrUpdateSlot(ctx, "demo-rg", "prem-app", "clone", armappservice.Site{
			Location: to.Ptr("westeurope"),
			Properties: &armappservice.SiteProperties{CloningInfo: &armappservice.CloningInfo{
				SourceWebAppID: to.Ptr(prod.ID), AppSettingsOverrides: map[string]*string{"FEATURE": to.Ptr("off")},
			}},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := poller.PollUntilDone(ctx, nil); err != nil {
			t.Fatal(err)
		}
		settings, err := c.AppSettings(ctx, Target{ResourceGroup: "demo-rg", App: "prem-app", Slot: "clone"})
		if err != nil {
			t.Fatal(err)
		}
		// The spec: settings of the source are retained, the overrides win.
		if settings["FEATURE"] != "off" || settings["DATABASE_URL"] != "postgres://prod" {
			t.Errorf("cloned settings %v", settings)
		}
	})
}
