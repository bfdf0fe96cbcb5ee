// Package outside holds end-to-end tests whose subjects come from PyPI
// rather than from this repository: the example app with a realistic set
// of compiled dependencies vendored by `dependency-mode local`, and Django
// projects nobody here wrote the settings of (a Wagtail site, a Django REST
// framework project with django-debug-toolbar), each built and released
// through the emulator and checked over HTTP.
//
// It has no code of its own; the tests use internal/e2e's release fixture.
package outside
