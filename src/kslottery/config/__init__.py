"""Layer 1, config: the params file as typed dataclasses with their rules, and the method registry's
training facts (which methods exist, their params sections, row rules and saved forms).

Imports nothing of the package above it. Holds no labels or colours (report.legend does)."""
