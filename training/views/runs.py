# PLACEHOLDER
from django.http import HttpResponse


def _todo(request, *args, **kwargs):
    return HttpResponse("not built yet", status=501)


run_list = run_new = run_compare = run_detail = run_cancel = run_resume = run_delete = _todo
