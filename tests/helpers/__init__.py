"""Helpers shared by the tests: fake trainers, writers of real file formats, reference
implementations. Imported as `helpers.<module>` (tests/ is on sys.path under pytest)."""
