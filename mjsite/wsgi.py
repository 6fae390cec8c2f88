import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mjsite.settings")
# A web process: settings limit each statement's time on PostgreSQL (MJ_WEB_STATEMENT_TIMEOUT).
os.environ["MJ_WEB_PROCESS"] = "1"
application = get_wsgi_application()
