"""The demo city simulator: a deterministic Almaty day, with planted incidents and their ground truth.

It produces payloads in the formats real sources publish and hands them to the same adapters
and sink as real data (``simulator.driver``), so what it shows is what a real city would.
"""
