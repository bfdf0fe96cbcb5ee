package release_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"

	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/report"
)

type tokenCred string

func (c tokenCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// webApps is Microsoft's ARM client for the emulator, for a test to change
// what a user would change in the portal.
func webApps(t *testing.T, emu *emulator.Emulator) *armappservice.WebAppsClient {
	t.Helper()
	o := &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Audience: emulator.ARMAudience, Endpoint: emu.ARMEndpoint()}}},
		InsecureAllowCredentialWithHTTP: true,
	}, DisableRPRegistration: true}
	c, err := armappservice.NewWebAppsClient(emu.Subscription(), tokenCred(emu.Token()), o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReleaseSwapsBackInSeconds: production answers HTTP 500 to every
// request after the swap (a slot-sticky setting of production breaks the
// new release, which the slot's own warm-up could not see). The release
// swaps back after three server errors in a row instead of retrying for
// the whole verify-timeout (2m), says how long production served the
// failure, and production serves the previous release again.
func TestReleaseSwapsBackInSeconds(t *testing.T) {
	h := newHarness(t)
	dir := e2e.Project(t, "django-app")
	first := mustSucceed(t, h.release(t, nil, dir))

	ctx := context.Background()
	c := webApps(t, h.emu)
	rg := h.env["DJDEPLOY_RESOURCE_GROUP"]
	cur, err := c.ListApplicationSettings(ctx, rg, e2e.App, nil)
	if err != nil {
		t.Fatal(err)
	}
	cur.Properties["HEALTHZ_FAIL"] = to.Ptr("1")
	if _, err := c.UpdateApplicationSettings(ctx, rg, e2e.App, armappservice.StringDictionary{Properties: cur.Properties}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateSlotConfigurationNames(ctx, rg, e2e.App, armappservice.SlotConfigNamesResource{
		Properties: &armappservice.SlotConfigNames{AppSettingNames: []*string{to.Ptr("HEALTHZ_FAIL")}}}, nil); err != nil {
		t.Fatal(err)
	}
	// The next release fails its health probe where HEALTHZ_FAIL is set:
	// in production, after the swap, not in the slot where it warmed up.
	e2e.Edit(t, dir, "pages/views.py", `    """Warm-up and health probe: no database, no templates, always cheap."""`,
		`    """Warm-up and health probe: no database, no templates, always cheap."""
    if os.environ.get("HEALTHZ_FAIL"):
        return JsonResponse({"status": "broken"}, status=500)`)

	r := h.release(t, nil, dir, "--verify-timeout", "2m")
	rep := mustFailAt(t, r, "swap")
	if !strings.Contains(rep.Error, "3 server errors in a row") || !strings.Contains(rep.Error, "swapped back") {
		t.Errorf("the release did not stop at three server errors and swap back: %s", rep.Error)
	}
	if rep.ProductionFailureSeconds <= 0 {
		t.Errorf("the report does not say how long production served the failure: %+v", rep)
	}
	if rep.Live {
		t.Errorf("the report says the failed release is live")
	}
	if p := h.production(t); p.Release != first.ReleaseID {
		t.Errorf("production serves %q after the swap back, want the previous %s", p.Release, first.ReleaseID)
	}
	if st := stepOf(rep, "swap"); st.Status != report.StepFailed {
		t.Errorf("swap step %+v", st)
	}
}
