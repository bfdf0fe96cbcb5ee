package settings

// Settings of `djdeploy doctor`. It also takes the Azure settings, the
// app, resource group and slot, the CDN endpoint (decl_core.go), and the
// project and python (to load the Django settings as App Service would).
func init() {
	doctor := []string{"doctor"}
	Register(
		Setting{Name: "db-server", NotRelease: true, Group: "Doctor", Commands: doctor,
			Description: "Azure Database for PostgreSQL/MySQL flexible server whose firewall doctor checks: a resource id, or a name in db-resource-group (default: the servers the app settings and connection strings name)"},
		Setting{Name: "db-resource-group", NotRelease: true, Group: "Doctor", Commands: doctor,
			Description: "resource group of the database server when db-server is a name or the server is found in the app settings (default: resource-group)"},
		Setting{Name: "strict", NotRelease: true, Kind: Bool, Default: "false", Group: "Doctor", Commands: doctor,
			Description: "doctor exits 1 on warnings too, not only on errors"},
	)
}
