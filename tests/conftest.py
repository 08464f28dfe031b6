import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session shares one cache dir unless MUSICJUDGE_CACHE is set by the runner."""
    if "MUSICJUDGE_CACHE" not in os.environ:
        monkeypatch.setenv("MUSICJUDGE_CACHE", str(tmp_path_factory.getbasetemp() / "mj-cache"))
