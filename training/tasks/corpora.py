# PLACEHOLDER: replaced by the corpora work in this session.
from celery import shared_task


@shared_task(name="training.tasks.corpus_import", ignore_result=True)
def corpus_import(corpus_id: int) -> None:
    raise NotImplementedError
