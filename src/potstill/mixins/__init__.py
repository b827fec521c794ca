"""Mixins shared by potstill's components."""
