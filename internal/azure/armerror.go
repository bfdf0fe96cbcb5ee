package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// ARMError turns an error from an ARM call into a user-facing failure that
// names what was being done, ARM's error code, the HTTP status and ARM's
// message, with the fix that fixes gives for the status (the caller knows
// which role or name a 403 or 404 is about). A cancellation passes through,
// as does a problem (a credential failure explains itself); any other error
// is a failure to reach ARM.
func ARMError(err error, doing string, fixes map[int]string) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	if _, ok := problem.As(err); ok {
		return err
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return &problem.Error{What: fmt.Sprintf("%s: %s (HTTP %d %s)", doing, ARMCode(re), re.StatusCode, armMessage(re)), Fix: fixes[re.StatusCode]}
	}
	return problem.Wrap(err, "check the network path to Azure Resource Manager", "%s", doing)
}

// ARMCode is ARM's error code, or the status text when ARM gave none.
func ARMCode(re *azcore.ResponseError) string {
	if re.ErrorCode != "" {
		return re.ErrorCode
	}
	return http.StatusText(re.StatusCode)
}

// armMessage extracts error.message (or a top-level message) from an ARM
// error body.
func armMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil {
		return ""
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil {
		return ""
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Error.Message != "" {
			return e.Error.Message
		}
		return e.Message
	}
	return ""
}
