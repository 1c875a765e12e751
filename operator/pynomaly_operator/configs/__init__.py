"""Pure renderers of the stores' config files (spec -> text), shared by builders and tests."""
