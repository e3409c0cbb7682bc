"""Creating and checking routes: the admin form and `manage.py add_route` share these rules."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from bridge import chat


def check_webhook_url(url: str, service: str) -> str:
    url = url.strip()
    if url and not chat.allowed(url):
        raise ValidationError(
            f"The {service} URL must be an https URL on an allowed host (BRIDGE_WEBHOOK_HOSTS)."
        )
    return url


def check_addresses(addresses: list[str], what: str) -> list[str]:
    cleaned = []
    for address in addresses:
        address = address.strip()
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(f"{what}: {address!r} is not an email address.") from None
        cleaned.append(address)
    return cleaned
