"""Benchmarks (DESIGN.md §7): scenarios, their runner and shared helpers.

`erp bench [NAME...] [--quick]` imports `bench.runner`; scenarios are listed in
`bench.scenarios.SCENARIOS`. Nothing here runs at import time.
"""
