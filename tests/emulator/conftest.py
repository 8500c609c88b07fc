"""Fixtures for the emulator's tests: a running emulator, SDK clients and the official OpenAPI specs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cappuccino_daemon.emulator.testing import EmulatorThread

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    with EmulatorThread(synthetic_seed=7, start=START, page_size=100) as emulator:
        yield emulator


@pytest.fixture
def trading(emu: EmulatorThread) -> Any:
    from alpaca.trading.client import TradingClient

    return TradingClient(emu.key_id, emu.secret_key, paper=True, url_override=emu.base_url)


@pytest.fixture
def data(emu: EmulatorThread) -> Any:
    from alpaca.data.historical.crypto import CryptoHistoricalDataClient

    return CryptoHistoricalDataClient(emu.key_id, emu.secret_key, url_override=emu.base_url)


class SpecCheck:
    """Validate response bodies against Alpaca's official OpenAPI 3.1 specs (alpaca-mcp-server)."""

    def __init__(self) -> None:
        from importlib.resources import files

        from openapi_schema_validator import OAS31Validator, oas31_format_checker
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        specs = files("alpaca_mcp_server") / "specs"
        self.docs = {
            "trading": json.loads((specs / "trading-api.json").read_text()),
            "data": json.loads((specs / "market-data-api.json").read_text()),
        }
        self.registry: Any = Registry().with_resources(
            (f"urn:alpaca:{name}", Resource(contents=doc, specification=DRAFT202012))
            for name, doc in self.docs.items()
        )
        self._validator_cls = OAS31Validator
        self._formats = oas31_format_checker

    def _deref(self, api: str, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            pointer = node["$ref"].lstrip("#/").split("/")
            target: Any = self.docs[api]
            for part in pointer:
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def errors(self, api: str, method: str, template: str, status: int, body: Any) -> list[str]:
        operation = self.docs[api]["paths"][template][method.lower()]
        response = self._deref(api, operation["responses"][str(status)])
        content = response.get("content", {})
        if not content:
            return []  # the spec documents no body for this status
        media = content.get("application/json") or next(iter(content.values()))
        schema = self._deref(api, media["schema"]) if "$ref" in media["schema"] else media["schema"]
        ref_path = self._find_pointer(api, schema)
        wrapper = {"$ref": f"urn:alpaca:{api}#{ref_path}"} if ref_path else schema
        validator = self._validator_cls(wrapper, registry=self.registry, format_checker=self._formats)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]

    def _find_pointer(self, api: str, schema: dict[str, Any]) -> str | None:
        for section in ("schemas",):
            for name, candidate in self.docs[api].get("components", {}).get(section, {}).items():
                if candidate is schema:
                    return f"/components/{section}/{name}"
        for path, item in self.docs[api]["paths"].items():
            for method, op in item.items():
                if not isinstance(op, dict):
                    continue
                for code, resp in op.get("responses", {}).items():
                    for media, content in resp.get("content", {}).items():
                        if content.get("schema") is schema:
                            esc = path.replace("~", "~0").replace("/", "~1")
                            media_esc = media.replace("/", "~1")
                            return f"/paths/{esc}/{method}/responses/{code}/content/{media_esc}/schema"
        return None


@pytest.fixture(scope="session")
def spec() -> SpecCheck:
    pytest.importorskip(
        "alpaca_mcp_server",
        reason="official specs missing: .venv/bin/pip install --no-deps alpaca-mcp-server==2.4.0",
    )
    return SpecCheck()
