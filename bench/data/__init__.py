"""Demonstration data: format, reader, normalisation statistics."""
