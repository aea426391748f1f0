"""The safety supervisor that every setpoint and every sample block passes through."""
