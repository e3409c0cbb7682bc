import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientwindow.settings")
application = get_wsgi_application()

# With STORAGE_REQUIRE_WORM, a web node refuses to start on a records store that is not WORM
# (the import needs the apps that get_wsgi_application() just loaded).
from archive.checks import refuse_to_start_without_worm  # noqa: E402

refuse_to_start_without_worm()
