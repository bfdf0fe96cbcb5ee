import os

from django.http import JsonResponse
from django.shortcuts import render


def release_id():
    return os.environ.get("DJDEPLOY_RELEASE_ID", "dev")


def home(request):
    return render(request, "pages/home.html", {"release_id": release_id()})


def healthz(request):
    """Warm-up and health probe: no database, no templates, always cheap."""
    return JsonResponse({"status": "ok", "release": release_id()})
