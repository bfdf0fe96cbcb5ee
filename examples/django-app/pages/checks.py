from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def dev_secret_key(app_configs, **kwargs):
    """Flags the development SECRET_KEY fallback in `check --deploy`."""
    if getattr(settings, "USING_DEV_SECRET_KEY", False):
        return [
            Warning(
                "SECRET_KEY is the development fallback from mysite/settings.py.",
                hint="Set the SECRET_KEY app setting in App Service (a long random value).",
                id="pages.W001",
            )
        ]
    return []
