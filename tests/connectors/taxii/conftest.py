"""A real medallion TAXII 2.1 server on 127.0.0.1, memory backend, basic auth, small pages."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
READ_ONLY = "52892447-4d7e-4f70-b94d-d7f22742ff63"
USER, PASSWORD = "renkei", "s3cret-taxii"
_registered: list[bool] = []


def _data(base: str) -> dict[str, object]:
    def collection(cid: str, title: str, can_write: bool) -> dict[str, object]:
        return {
            "id": cid, "title": title, "can_read": True, "can_write": can_write,
            "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": [],
        }  # fmt: skip

    return {
        "/discovery": {"title": "Finance ISAC", "default": f"{base}/api1/", "api_roots": [f"{base}/api1/"]},
        "api1": {
            "information": {
                "title": "Finance ISAC sharing",
                "versions": ["application/taxii+json;version=2.1"],
                "max_content_length": 10485760,
            },
            "status": [],
            "collections": [collection(COLLECTION, "Indicators", True), collection(READ_ONLY, "Read only", False)],
        },
    }


@pytest.fixture
def medallion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The API root URL of a fresh medallion server; FIN_TAXII_PASSWORD holds its password."""
    from medallion import application_instance, register_blueprints, set_config

    if not _registered:  # Flask allows it once, before the first request
        register_blueprints(application_instance)
        _registered.append(True)
    server = make_server("127.0.0.1", 0, application_instance, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    data = tmp_path / "medallion.json"
    data.write_text(json.dumps(_data(base)))
    config = {
        "backend": {"module_class": "MemoryBackend", "module": "medallion.backends.memory_backend",
                    "filename": str(data)},
        "users": {USER: PASSWORD},
        "taxii": {"max_page_size": 5},
    }  # fmt: skip
    for prop in ("users", "taxii", "backend"):
        set_config(application_instance, prop, config)
    monkeypatch.setenv("FIN_TAXII_PASSWORD", PASSWORD)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{base}/api1/"
    server.shutdown()
