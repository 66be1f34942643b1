# PLACEHOLDER: replaced by the module's owner in this session.
from django.http import HttpResponse


def _todo(request, *args, **kwargs):
    return HttpResponse("not built yet", status=501)


model_list = model_detail = model_activate = model_download = _todo
record = upload = profile = classify = _todo
