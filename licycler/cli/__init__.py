"""The licycler command line."""
