package appservice

import (
	"context"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
)

// planVCPUs maps App Service plan SKU names (as ARM reports them in
// sku.name) to vCPUs per instance. Shared tiers count as one.
var planVCPUs = map[string]int{
	"F1": 1, "FREE": 1, "D1": 1, "SHARED": 1,
	"B1": 1, "B2": 2, "B3": 4,
	"S1": 1, "S2": 2, "S3": 4,
	"P1": 1, "P2": 2, "P3": 4,
	"P1V2": 1, "P2V2": 2, "P3V2": 4,
	"P0V3": 1, "P1V3": 2, "P2V3": 4, "P3V3": 8,
	"P1MV3": 2, "P2MV3": 4, "P3MV3": 8, "P4MV3": 16, "P5MV3": 32,
	"P0V4": 1, "P1V4": 2, "P2V4": 4, "P3V4": 8,
	"P1MV4": 2, "P2MV4": 4, "P3MV4": 8, "P4MV4": 16, "P5MV4": 32,
	"I1": 1, "I2": 2, "I3": 4,
	"I1V2": 2, "I2V2": 4, "I3V2": 8, "I4V2": 16, "I5V2": 32, "I6V2": 64,
	"I1MV2": 2, "I2MV2": 4, "I3MV2": 8, "I4MV2": 16, "I5MV2": 32,
}

// VCPUsForSKU returns the vCPUs of a plan SKU and whether it is known.
func VCPUsForSKU(sku string) (int, bool) {
	n, ok := planVCPUs[strings.ToUpper(strings.TrimSpace(sku))]
	return n, ok
}

// WorkersForVCPUs is gunicorn's rule of thumb: 2 x cores + 1.
func WorkersForVCPUs(n int) int {
	if n < 1 {
		n = 1
	}
	return 2*n + 1
}

// StartupCommand is the startup command djdeploy sets: gunicorn with
// uvicorn workers on the ASGI module. It has no --chdir (Oryx-built apps
// run from their own extracted folder, not /home/site/wwwroot) and no
// --threads (it does nothing for uvicorn workers). pythonPath, when set,
// is prepended to PYTHONPATH for packages vendored into the zip.
//
// It starts by exporting DJDEPLOY_RELEASE_ID from the package's own
// DJDEPLOY_RELEASE file (every build writes its release id there), so the
// id the app reports comes from the code that runs, not from an app setting
// that a deploy of other code leaves behind; without the file (a package
// djdeploy did not build) the app setting stands.
func StartupCommand(asgiModule string, workers int, pythonPath string) string {
	cmd := ReleaseIDFromPackage + " " + fmt.Sprintf("gunicorn --workers %d --timeout 60 --access-logfile '-' --error-logfile '-' --bind=0.0.0.0:${PORT:-8000} -k uvicorn.workers.UvicornWorker %s",
		workers, asgiModule)
	if pythonPath != "" {
		cmd = "PYTHONPATH=" + pythonPath + ":$PYTHONPATH " + cmd
	}
	return cmd
}

// ReleaseIDFromPackage is the shell assignment that gives the app the
// release id baked into its package (artifact.StampName), falling back to
// the app setting. Commands run through /bin/sh, as App Service runs them.
const ReleaseIDFromPackage = `DJDEPLOY_RELEASE_ID="$(cat DJDEPLOY_RELEASE 2>/dev/null || printf '%s' "$DJDEPLOY_RELEASE_ID")"`

// PlanSKU reads the SKU name of the site's App Service plan.
func (c *Client) PlanSKU(ctx context.Context, site *Site) (string, error) {
	if site.ServerFarmID == "" {
		return "", fmt.Errorf("the site reports no serverFarmId")
	}
	id, err := arm.ParseResourceID(site.ServerFarmID)
	if err != nil {
		return "", fmt.Errorf("parsing serverFarmId %q: %w", site.ServerFarmID, err)
	}
	p, err := c.plans.Get(ctx, id.ResourceGroupName, id.Name, nil)
	if err != nil {
		return "", armError(err, "reading App Service plan "+id.Name)
	}
	if p.SKU == nil || p.SKU.Name == nil {
		return "", fmt.Errorf("plan %s reports no SKU", id.Name)
	}
	return *p.SKU.Name, nil
}
