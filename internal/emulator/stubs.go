package emulator

import "net/http"

type profile struct {
	cfg       ProfileConfig
	endpoints []*cdnEndpoint
}
type cdnEndpoint struct {
	cfg  EndpointConfig
	host string
}
type operation struct{}
type SwapRecord struct{}
type blobOrigin struct{ endpoint string }

func newBlobOrigin(string) (*blobOrigin, error)                          { return &blobOrigin{}, nil }
func (b *blobOrigin) ensureContainer(ctx interface{}, name string) error { return nil }
func (e *Emulator) addProfile(ProfileConfig) error                       { return nil }
func (e *Emulator) serveCDN(q *armReq)                                   { notFound(q.w, q.rg, "x", "y") }
func (e *Emulator) serveOperation(q *armReq, id string)                  { notFound(q.w, q.rg, "x", "y") }
func (e *Emulator) startSwap(q *armReq, sl *slot)                        { e.methodNotAllowed(q) }
func (e *Emulator) serveSlotConfigPreview(q *armReq, sl *slot, b bool)   { e.methodNotAllowed(q) }
func (e *Emulator) adminHandler() http.Handler                           { return http.NotFoundHandler() }
