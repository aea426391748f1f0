"""Real instrument drivers behind small async capability interfaces (pyvisa @py and pyserial)."""
