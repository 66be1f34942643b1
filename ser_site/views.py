from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def home(request: HttpRequest) -> HttpResponse:
    """The studio opens on the run list: the page people come back to most."""
    return redirect("runs:list")
