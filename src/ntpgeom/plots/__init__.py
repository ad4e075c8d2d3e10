"""Figures (one function each, no I/O), the I/O around them, and the HTML report."""
