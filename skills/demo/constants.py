"""The demo's fixed values: the natural keys seeding finds its objects by (business unit, list,
skills, campaign, DNC group, registrations, numbers, the email sender, user names), the shared
demo password, the list's size and random seed, the time zones the business unit allows, the
postal address its emails carry and the templates' text.
"""

BU_NAME = "Demo Contact Centre"
LIST_NAME = "Demo patients"
SKILL_NAME = "Demo reminders"
CAMPAIGN_NAME = "Spring reminders"
DNC_GROUP_NAME = "Default DNC"
REGISTRATION_NAME = "Demo 10DLC"
LONG_CODE = "+13124705821"
SHORT_CODE = "55123"
ADMIN_USERNAME = "admin"
OPERATOR_USERNAME = "demo-operator"
DEMO_PASSWORD = "pcsms-demo"
RECORD_COUNT = 200
RANDOM_SEED = 2026
SIMULATOR_BACKEND = "messaging.backends.simulator.SimulatorBackend"
# The email skill: its sender (the From address), registration and mail backend. SMTP is what
# the demo's sink speaks (scripts/demo.py points EMAIL_URL at it), and every demo address is at
# example.com (RFC 2606), so no email could reach a real person wherever EMAIL_URL pointed.
EMAIL_SKILL_NAME = "Appointment emails"
EMAIL_SENDER = "reminders@mail.example.com"
EMAIL_REGISTRATION_NAME = "Demo email"
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_DOMAIN = "example.com"
# CAN-SPAM: every email carries the sender's postal address at its foot.
POSTAL_ADDRESS = "100 Example Avenue, Suite 200\nSpringfield, IL 62701"
DEMO_APPS = ("pcsms", "dnc", "messaging", "skills")

ALLOWED_ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
]

APPOINTMENT_TEMPLATE = (
    "Appointment reminder",
    "Hi {FirstName|there}, this is Demo Health Clinic reminding you of your appointment on "
    "{AppointmentDate}. Reply STOP to opt out.",
)
PAYMENT_TEMPLATE = (
    "Payment due",
    "Hello {FirstName} {LastName}, your balance is due. Questions? Call 1-800-555-0199. "
    "Reply STOP to opt out.",
)

# The email template: name, subject, plain-text body, HTML body.
EMAIL_TEMPLATE = (
    "Appointment reminder (email)",
    "Hi {FirstName|there}, your appointment is on {AppointmentDate}",
    "Hi {FirstName|there},\n\n"
    "This is Demo Health Clinic reminding you of your appointment on {AppointmentDate}.\n"
    "Need another time? Call us at 1-800-555-0199.",
    "<html><body>"
    "<p>Hi {FirstName|there},</p>"
    "<p>This is <b>Demo Health Clinic</b> reminding you of your appointment on "
    "<b>{AppointmentDate}</b>.</p>"
    "<p>Need another time? Call us at 1-800-555-0199.</p>"
    "</body></html>",
)
