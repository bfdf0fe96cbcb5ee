package emulator

import (
	"context"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

func TestQuickDeploy(t *testing.T) {
	testenv.Python(t)
	e := shared(t)
	c, err := armappservice.NewWebAppsClient(e.Subscription(), staticCred(e.Token()), armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	site, err := c.GetSlot(context.Background(), "demo-rg", "demo-app", "staging", nil)
	if err != nil {
		t.Fatal(err)
	}
	var scm string
	for _, h := range site.Properties.HostNameSSLStates {
		if *h.HostType == armappservice.HostTypeRepository {
			scm = *h.Name
		}
	}
	if "http://"+scm != e.SCMURL("demo-app", "staging") {
		t.Fatalf("scm %s", scm)
	}
	id := deployZip(t, e, "demo-app", "staging", zipDir(t, djangoApp(t, "hello v1")))
	st, body := waitDeployment(t, e, "demo-app", "staging", id)
	if st != 4 {
		t.Fatalf("status %d %s", st, body)
	}
	code, page := getText(t, "http://"+*site.Properties.DefaultHostName+"/")
	if code != 200 || !strings.Contains(page, "hello v1") {
		t.Fatalf("%d %s", code, page)
	}
}
