"""The rule catalogue, installed as `mmreview.rules.catalogue` (see pyproject.toml's package-dir).

One file per rule; the engine (mmreview/rules/engine.py) loads every file here not starting with "_".
"""
