"""Internal helpers shared by potstill's modules."""
