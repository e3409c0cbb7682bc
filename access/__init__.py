"""Who may do what, and what may come in: the portal's roles and permissions (roles.py), the
input boundary every request passes (boundary.py) and the response headers that keep client
content out of caches (headers.py). The floor above the ledger and below every app that serves
people (docs/ARCHITECTURE.md); it imports only Django, DRF and the standard library."""
