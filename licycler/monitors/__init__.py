"""Live monitors on sample blocks: CE, depletion, overpotential, pressure and void risk."""
