// Package conformance holds no code: its tests drive a running emulator
// with Microsoft's own clients (azure-cli and the Azure SDK for Python,
// pinned in .ci/python/conformance.txt and installed into
// .tools/conformance by `make deps`), so the emulator is checked against
// clients djdeploy did not write. Each case asserts that the client
// succeeded and that the effect is visible where a user would look: the
// URL a slot serves, the environment of the running app, the CDN's answer.
package conformance
