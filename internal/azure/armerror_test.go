package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/djdeploy/djdeploy/internal/problem"
)

func armResponse(status int, body string) error {
	req, _ := http.NewRequest(http.MethodGet, "https://management.azure.com/subscriptions/s/resourceGroups/rg", nil)
	return runtime.NewResponseError(&http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(body)), Request: req})
}

func TestARMError(t *testing.T) {
	fixes := map[int]string{http.StatusNotFound: "check the names"}
	cred := problem.Failf("sign in again", "the token expired")
	for _, tc := range []struct {
		name      string
		err       error
		same      bool // returned as it came
		what, fix string
	}{
		{name: "nil", err: nil, same: true},
		{name: "cancelled", err: fmt.Errorf("reading: %w", context.Canceled), same: true},
		{name: "a problem explains itself", err: cred, same: true},
		{name: "code, status, message and the status's fix",
			err:  armResponse(404, `{"error":{"code":"ResourceGroupNotFound","message":"Resource group 'rg' could not be found."}}`),
			what: "reading app: ResourceGroupNotFound (HTTP 404 Resource group 'rg' could not be found.)", fix: "check the names"},
		{name: "no code: the status text; no fix for an unlisted status",
			err:  armResponse(502, `{"message":"upstream"}`),
			what: "reading app: Bad Gateway (HTTP 502 upstream)"},
		{name: "not an ARM answer: the network path",
			err:  errors.New("dial tcp: connection refused"),
			what: "reading app", fix: "check the network path to Azure Resource Manager"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ARMError(tc.err, "reading app", fixes)
			if tc.same {
				if got != tc.err {
					t.Fatalf("got %v, want the error unchanged (%v)", got, tc.err)
				}
				return
			}
			p, ok := problem.As(got)
			if !ok {
				t.Fatalf("got %T %v, want a problem", got, got)
			}
			if p.What != tc.what || p.Fix != tc.fix {
				t.Errorf("what %q fix %q, want what %q fix %q", p.What, p.Fix, tc.what, tc.fix)
			}
		})
	}
}
