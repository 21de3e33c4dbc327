from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "pcsms administration"
admin.site.site_title = "pcsms"
admin.site.index_title = "Proactive agentless SMS"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("messaging.urls")),  # carrier callbacks: /sms/twilio/status/ and inbound
    path("", include("skills.urls")),  # the CRM endpoint: /xs/skills/<id>/records/
]
