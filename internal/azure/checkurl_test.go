package azure

import (
	"strings"
	"testing"
)

// TestCheckURLRedactsSAS: a refused blob endpoint was printed whole,
// signature and all, in the error that CI logs show.
func TestCheckURLRedactsSAS(t *testing.T) {
	const sig = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
	for _, raw := range []string{
		"http://storage.example.com/?sv=2022&se=2031-01-01&sig=" + sig,
		"ftp://storage.example.com/?sv=2022&sig=" + sig,
		"storage.example.com/?sig=" + sig,
	} {
		err := CheckURL("blob-endpoint", raw)
		if err == nil {
			t.Fatalf("%s accepted", raw)
		}
		if strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), "2031-01-01") || !strings.Contains(err.Error(), "sig=REDACTED") {
			t.Errorf("CheckURL(%s) = %v", raw, err)
		}
	}
}
