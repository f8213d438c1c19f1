"""Test and benchmark helpers that ship with the package, so tests, benchmarks and users import them
instead of editing ``sys.path``: a small OpenAI-compatible server for deterministic runs and fault
injection (:mod:`.fake_openai`), and the filter's hand-labelled-set scorer and synthetic records
(:mod:`.filter_eval`). Nothing in the stages imports this package."""
