from django.urls import path

from skills import views

urlpatterns = [
    path("xs/skills/<int:skill_id>/records/", views.xs_records, name="xs_records"),
]
