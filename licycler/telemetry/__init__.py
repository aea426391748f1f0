"""Live telemetry and remote control over MQTT (aiomqtt)."""
