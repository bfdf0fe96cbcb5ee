package appservice

import "testing"

// Names go into ARM URL paths. The bad-input catalogue found a release
// with --slot "st/../x" or --app "my_app!" building and uploading static
// files before ARM refused the name; Validate now stops them first.
func TestTargetValidateNames(t *testing.T) {
	ok := []Target{
		{ResourceGroup: "demo-rg", App: "demo-app", Slot: "staging"},
		{ResourceGroup: "My_RG.(prod)", App: "a1", Slot: "production"},
		{ResourceGroup: "rg", App: "app", Slot: ""},
	}
	for _, tg := range ok {
		if err := tg.Validate(); err != nil {
			t.Errorf("%+v: %v", tg, err)
		}
	}
	bad := []Target{
		{ResourceGroup: "rg/../../x", App: "app", Slot: "staging"},
		{ResourceGroup: "rg.", App: "app", Slot: "staging"},
		{ResourceGroup: "rg", App: "my_app!", Slot: "staging"},
		{ResourceGroup: "rg", App: "-app", Slot: "staging"},
		{ResourceGroup: "rg", App: "app", Slot: "st/../x"},
		{ResourceGroup: "rg", App: "app", Slot: "stag ing"},
		{ResourceGroup: "", App: "app", Slot: "staging"},
	}
	for _, tg := range bad {
		if err := tg.Validate(); err == nil {
			t.Errorf("%+v: accepted", tg)
		}
	}
}
