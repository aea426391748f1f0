"""A raw-socket SCPI client (nothing of licycler) and a cell whose voltage moves in closed form."""

from __future__ import annotations

import asyncio
import math
import socket

import numpy as np
import numpy.typing as npt


class RawClient:
    """A plain TCP client: send a line, read a line (blocking socket calls in threads)."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.file = self.sock.makefile("rb")

    async def send(self, line: str) -> None:
        await asyncio.to_thread(self.sock.sendall, line.encode("ascii") + b"\n")

    async def ask(self, line: str) -> str:
        await self.send(line)
        raw = await asyncio.to_thread(self.file.readline)
        assert raw.endswith(b"\n"), f"no reply to {line!r}"
        return raw.decode("ascii").rstrip("\n")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class CapacitorCell:
    """A cell whose open-circuit voltage rises with charge: EMF = v0 + q / C, in series with R.

    Under a current I the terminal voltage is v0 + q(t)/C + I R with q growing as I t; held at a
    voltage V the current decays as (V - EMF)/R with time constant R C. Exact between calls.
    """

    def __init__(self, v0: float, capacitance_f: float, resistance_ohm: float) -> None:
        self.v0 = v0
        self.c = capacitance_f
        self.r = resistance_ohm
        self.q = 0.0
        self.t = 0.0
        self.mode = "open"
        self.level = 0.0
        self.history: list[tuple[str, float, float]] = []

    def _advance(self, t: float) -> None:
        dt = t - self.t
        assert dt >= -1e-12, "time went backwards"
        if self.mode == "current":
            self.q += self.level * dt
        elif self.mode == "voltage":
            gap = self.level - (self.v0 + self.q / self.c)
            self.q += self.c * gap * (1 - math.exp(-dt / (self.r * self.c)))
        self.t = max(self.t, t)

    def _set(self, mode: str, level: float, t: float) -> None:
        self._advance(t)
        self.mode, self.level = mode, level
        self.history.append((mode, level, t))

    def source_current(self, current_a: float, t_s: float) -> None:
        self._set("current", current_a, t_s)

    def source_voltage(self, voltage_v: float, t_s: float) -> None:
        self._set("voltage", voltage_v, t_s)

    def open_circuit(self, t_s: float) -> None:
        self._set("open", 0.0, t_s)

    def sample(self, times_s: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
        times = np.asarray(times_s, dtype=np.float64)
        v = np.empty_like(times)
        i = np.empty_like(times)
        for k, t in enumerate(times):  # small test blocks only
            self._advance(float(t))
            emf = self.v0 + self.q / self.c
            if self.mode == "current":
                i[k], v[k] = self.level, emf + self.level * self.r
            elif self.mode == "voltage":
                i[k], v[k] = (self.level - emf) / self.r, self.level
            else:
                i[k], v[k] = 0.0, emf
        return v, i
