"""What the CLI tests share with the feature tests: the generated clips (a session fixture), a custom-layout
input folder over them and the fast extraction settings, all defined once in tests/features/conftest.py."""

from __future__ import annotations

from ..features.conftest import FAST, _custom_input, media_dir  # noqa: F401  (media_dir is a fixture)
