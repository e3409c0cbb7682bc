"""Every environment variable the settings read is documented in deploy/env.example."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_it_documents_every_environment_variable():
    settings_text = (ROOT / "clientwindow" / "settings.py").read_text()
    used = set(re.findall(r'env_\w+\("([A-Z_]+)"', settings_text))
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / "deploy/env.example").read_text(), re.M))
    assert used, "no variables found: the pattern is stale"
    assert used <= documented
