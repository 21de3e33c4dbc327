from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from pcsms.views import healthz

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),  # served without middleware: see pcsms.wsgi
    path("", include("messaging.urls")),  # carrier callbacks: /sms/twilio/status/ and inbound
    path("", include("skills.urls")),  # the CRM endpoint: /xs/skills/<id>/records/
]
