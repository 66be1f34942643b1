# PLACEHOLDER: replaced by the corpora work in this session.
from django.http import HttpResponse


def corpus_list(request):
    return HttpResponse("not built yet", status=501)
