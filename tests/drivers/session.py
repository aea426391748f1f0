"""The driver session whose wire traffic the transcript tests record and replay."""

from __future__ import annotations

from licycler.drivers.interfaces import SampleBlock, SourceMeasureChannel


async def run_session(driver: SourceMeasureChannel) -> list[SampleBlock]:
    """Connect, configure a 3.5 V compliance, source 1 mA then 10 mA (trips), safe state."""
    await driver.connect()  # type: ignore[attr-defined]
    await driver.configure_current_source(voltage_limit_v=3.5, nplc=1.0)
    await driver.set_current(1e-3)
    await driver.output_on()
    blocks = [await driver.read_block()]
    await driver.set_current(10e-3)
    blocks.append(await driver.read_block())
    assert await driver.voltage_limit_tripped()
    await driver.safe_state()
    assert await driver.drain_errors() == []
    await driver.close()
    return blocks
