"""Decoding: drivers, lattices, n-best lists, alignment, scoring, confidences."""
