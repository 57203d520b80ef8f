"""Layer 0: errors, display, YAML I/O, paths, text folding, secrets. Imports no other runner module."""
