"""The simulated bench: networks, edge device models, the circuit solver and learning rules."""
