"""Loaded by pytest before any test module (every test directory is below).

Hypothesis runs the "hypothesis" entry points of every installed package when
it is first imported; trio 0.35 (pulled in by selenium) registers one that
no longer exists and crashes the session at its end. No test here relies on
a third-party Hypothesis plugin.
"""

import os

os.environ.setdefault("HYPOTHESIS_NO_PLUGINS", "1")
