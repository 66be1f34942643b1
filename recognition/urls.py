from django.urls import path

from .views import api, models, profile, record

app_name = "recognition"

urlpatterns = [
    path("models/", models.model_list, name="models"),
    path("models/compare/", models.model_compare, name="model_compare"),
    path("models/<int:pk>/", models.model_detail, name="model"),
    path("models/<int:pk>/activate/", models.model_activate, name="model_activate"),
    path("models/<int:pk>/download/", models.model_download, name="model_download"),
    path("record/", record.record, name="record"),
    path("classify/", record.upload, name="upload"),
    path("profile/", profile.profile, name="profile"),
    path("profile/tokens/<int:pk>/revoke/", profile.token_revoke, name="token_revoke"),
    path("api/classify", api.classify, name="api_classify"),
]
