"""Find instruments: list VISA resources and ask each what it is (``*IDN?``).

pyvisa-py lists serial ports, USB-TMC and GPIB devices it can see; raw TCP sockets cannot be
discovered, so they are passed in (``resources``). Serial ports are only probed when asked
(``probe_serial``): an unknown device on a serial port may take ``*IDN?`` for something else.
Every probe runs concurrently with a short timeout and no retries.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from licycler.drivers.errors import DriverError
from licycler.drivers.transport import VisaTransport, resource_key, visa_resource_manager

__all__ = ["ScanResult", "list_resources", "scan"]


@dataclass(frozen=True)
class ScanResult:
    """One resource: its identity string if it answered ``*IDN?``, else why not."""

    resource: str
    identity: str | None
    error: str | None = None
    probed: bool = True


def list_resources(visa_library: str = "@py") -> list[str]:
    """The resources the VISA library can see (may be empty)."""
    rm = visa_resource_manager(visa_library)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyvisa-py's hints about optional discovery packages
        try:
            return sorted(rm.list_resources("?*"))
        except Exception:
            return []


async def _probe(resource: str, timeout_s: float, visa_library: str) -> ScanResult:
    transport = VisaTransport(
        resource, name=resource, timeout_s=timeout_s, retries=0, visa_library=visa_library
    )
    try:
        await transport.open()
        identity = await transport.query("*IDN?")
        return ScanResult(resource, identity.strip())
    except DriverError as exc:
        return ScanResult(resource, None, exc.cause)
    finally:
        await transport.close()


async def scan(
    resources: Sequence[str] = (),
    *,
    discover: bool = True,
    probe_serial: bool = False,
    timeout_s: float = 1.0,
    visa_library: str = "@py",
) -> list[ScanResult]:
    """Probe ``resources`` (and, if ``discover``, what the VISA library lists) with ``*IDN?``."""
    found = list(dict.fromkeys(resources))
    if discover:
        listed = await asyncio.to_thread(list_resources, visa_library)
        known = {resource_key(r) for r in found}
        found.extend(r for r in listed if resource_key(r) not in known)
    to_probe = [
        r for r in found if probe_serial or r in resources or "ASRL" not in resource_key(r)
    ]
    results = await asyncio.gather(*(_probe(r, timeout_s, visa_library) for r in to_probe))
    by_resource = dict(zip(to_probe, results, strict=True))
    return [by_resource.get(r, ScanResult(r, None, "serial port not probed", probed=False)) for r in found]
