"""Data shipped with twinrig (the Iris data set)."""
