"""Benchmarks that print ratios against a baseline measured in the same run (DESIGN.md §9).

Absolute timings on a shared two-core machine say little; a ratio to a baseline taken minutes apart on
the same machine says how much our own code costs. Nothing here asserts a timing.
"""
