"""ASGI entry point. App Service runs it with:

    gunicorn -k uvicorn.workers.UvicornWorker --bind=0.0.0.0:8000 mysite.asgi
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_asgi_application()
