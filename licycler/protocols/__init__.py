"""Schedules: the format, its validation, and a library of standard lithium-metal protocols."""
