"""The demo's fixed values: the natural keys seeding finds its objects by (business unit, list,
skill, campaign, DNC group, registration, numbers, user names), the shared demo password, the
list's size and random seed, the time zones the business unit allows and the two templates'
text.
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
