"""Simulated cell and pressure rig (the digital twin) and emulations of the instruments we drive."""
