"""What every transport-backed instrument driver shares: open, close and ``async with``."""

from __future__ import annotations

from typing import Self

from licycler.drivers.transport import VisaTransport

__all__ = ["TransportDevice"]


class TransportDevice:
    """A driver on one :class:`VisaTransport` (set as ``self.transport`` by the subclass)."""

    transport: VisaTransport

    async def open(self) -> None:
        """Open the port (DriverError if it cannot be reached)."""
        await self.transport.open()

    async def close(self) -> None:
        """Release the port (does not change the instrument's state)."""
        await self.transport.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
