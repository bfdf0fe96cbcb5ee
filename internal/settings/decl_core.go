package settings

import "github.com/djdeploy/djdeploy/internal/redact"

// The settings shared by several capabilities. Each capability declares the
// rest in its own decl_<capability>.go. A setting lists only the commands it
// changes something for: static never calls Resource Manager, so it takes
// no subscription or ARM endpoint.
func init() {
	Register(
		// Azure: identity and endpoints.
		Setting{Name: "subscription", Env: "AZURE_SUBSCRIPTION_ID", Group: "Azure", Description: "Azure subscription id",
			Commands: []string{"deploy", "swap", "purge", "doctor"}},
		Setting{Name: "tenant-id", Env: "AZURE_TENANT_ID", Group: "Azure", Description: "Microsoft Entra tenant id for OIDC, client secret or certificate sign-in",
			Commands: []string{"deploy", "swap", "purge", "doctor", "static"}},
		Setting{Name: "client-id", Env: "AZURE_CLIENT_ID", Group: "Azure", Description: "client (application) id of the service principal or user-assigned managed identity",
			Commands: []string{"deploy", "swap", "purge", "doctor", "static"}},
		Setting{Name: "credential", Group: "Azure", Default: "auto", Description: "how to sign in to Azure: auto, github-oidc, azure-pipelines, client-secret, client-certificate, managed-identity, azure-cli, access-token",
			Enum:     []string{"auto", "github-oidc", "azure-pipelines", "client-secret", "client-certificate", "managed-identity", "azure-cli", "access-token"},
			Commands: []string{"deploy", "swap", "purge", "doctor", "static"}},
		Setting{Name: "access-token", Group: "Azure", Secret: true, Description: "a ready ARM bearer token (emulators, or a token you already hold); used instead of signing in",
			Commands: []string{"deploy", "swap", "purge", "doctor", "static"}},
		Setting{Name: "cloud", Group: "Azure", Default: "public", Enum: []string{"public", "china", "usgov"}, Description: "Azure cloud whose default endpoints are used",
			Commands: []string{"deploy", "swap", "purge", "doctor", "static"}},
		Setting{Name: "arm-endpoint", Group: "Azure", Description: "Azure Resource Manager endpoint, for sovereign clouds and the emulator (default: the cloud's)",
			Commands: []string{"deploy", "swap", "purge", "doctor"}},
		Setting{Name: "arm-audience", Group: "Azure", Description: "token audience for ARM and Kudu (default: the cloud's, https://management.core.windows.net/ in public)",
			Commands: []string{"deploy", "swap", "purge", "doctor"}},
		Setting{Name: "authority-host", Env: "AZURE_AUTHORITY_HOST", Group: "Azure", Description: "Microsoft Entra authority host (default: the cloud's)",
			Commands: []string{"deploy", "swap", "purge", "doctor", "static"}},
		Setting{Name: "ca-file", Group: "Azure", Description: "PEM file of extra certificate authorities to trust (the emulator's self-signed authority); never needed on Azure",
			Commands: []string{"deploy", "swap", "purge", "doctor", "static"}},

		// App Service.
		Setting{Name: "resource-group", Group: "App Service", Short: "g", Description: "resource group of the web app (and of the CDN profile, unless cdn-resource-group is set)",
			Commands: []string{"deploy", "swap", "purge", "doctor"}},
		Setting{Name: "app", Group: "App Service", Description: "name of the App Service web app",
			Commands: []string{"deploy", "swap", "doctor"}},
		Setting{Name: "slot", Group: "App Service", Default: "staging", Description: "deployment slot that receives the release before it is swapped into production",
			Commands: []string{"deploy", "swap", "doctor"}},

		// Build.
		Setting{Name: "project", Group: "Build", Default: ".", Description: "folder of the Django project (the one holding manage.py)",
			Commands: []string{"build", "doctor"}},
		Setting{Name: "python", Group: "Build", Description: "Python interpreter that runs manage.py (default: the project's .venv if present, else python3 on PATH)",
			Commands: []string{"build", "doctor"}},
		Setting{Name: "python-version", Group: "Build", Default: "3.12", Description: "Python version of the App Service runtime (linuxFxVersion PYTHON|X.Y)",
			Commands: []string{"build", "deploy"}},

		// Static files. deploy and swap reach the container for the release
		// lock that every command changing a slot or production holds.
		Setting{Name: "storage-account", Group: "Static files", Description: "storage account that holds the static files (signs in with the Azure credential)",
			Commands: []string{"static", "deploy", "swap"}},
		Setting{Name: "storage-connection-string", Env: "AZURE_STORAGE_CONNECTION_STRING", Group: "Static files", Secret: true,
			Description: "storage connection string (account key or SAS), for emulators and accounts without Entra ID access",
			Commands:    []string{"static", "deploy", "swap"}},
		Setting{Name: "blob-endpoint", Group: "Static files", SecretParts: redact.SASSecrets,
			Description: "Blob service URL (default: https://<storage-account>.blob.<cloud suffix>/); one carrying a SAS token is a secret: give it in the environment, never in djdeploy.yaml",
			Commands:    []string{"static", "deploy", "swap"}},
		Setting{Name: "static-container", Group: "Static files", Default: "static", Description: "Blob container for the static files",
			Commands: []string{"static", "deploy", "swap"}},
		Setting{Name: "static-prefix", Group: "Static files", Description: "folder (blob name prefix) inside the container, e.g. static/",
			Commands: []string{"static", "deploy", "swap"}},

		// CDN.
		Setting{Name: "cdn-profile", Group: "CDN", Description: "Azure Front Door or CDN profile; its SKU decides the kind",
			Commands: []string{"purge", "doctor"}},
		Setting{Name: "cdn-endpoint", Group: "CDN", Description: "Front Door or CDN endpoint to purge",
			Commands: []string{"purge", "doctor"}},
	)
}
