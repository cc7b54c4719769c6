"""The state database is private (0600): made so when created, and an
existing one open to others is closed to them, by path (never by opening and
closing the file: that drops the process's SQLite locks; tests_multi_machine/
test_two_fleets.py lost its controller's read snapshots to it)."""

from __future__ import annotations

import os
import stat

from fleetslurm.store import Store


def test_an_existing_database_open_to_others_is_made_private(tmp_path):
    path = tmp_path / "state.db"
    Store(str(path)).close()
    os.chmod(path, 0o644)
    Store(str(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_new_database_is_created_private(tmp_path):
    old = os.umask(0o022)
    try:
        Store(str(tmp_path / "new.db")).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.db").stat().st_mode) == 0o600
