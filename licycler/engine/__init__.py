"""The async protocol engine: executes schedules as data, with an explicit state machine."""
