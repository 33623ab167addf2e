"""The shared kit: everything the three services do the same way, written once."""
