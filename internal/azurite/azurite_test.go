package azurite_test

import (
	"net/http"
	"testing"

	"github.com/djdeploy/djdeploy/internal/testenv"
)

func TestStartServesBlobAPIAndStops(t *testing.T) {
	s := testenv.Azurite(t)
	resp, err := http.Get(s.BlobEndpoint() + "?comp=list")
	if err != nil {
		t.Fatalf("azurite not reachable: %v", err)
	}
	resp.Body.Close()
	// Unauthenticated list is refused by a real storage service: 403 proves
	// it is Azurite answering, not something else on the port.
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unauthenticated list: got %d, want 403", resp.StatusCode)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.BlobEndpoint()); err == nil {
		t.Fatalf("azurite still answering after Stop")
	}
}
