"""infra/local_secrets.py: one secret per name and state folder, whoever asks first."""
from __future__ import annotations

import stat
import threading

from infra.local_secrets import ensure_local_secret
from services.common.secret_sources import local_secrets_dir


def test_callers_racing_on_a_fresh_folder_all_get_the_one_secret_written(tmp_path):
    # Three bootstraps of one fresh cluster at once once got three passwords for a role
    # (each wrote its own), and the role ended with one none of the others knew.
    for attempt in range(20):
        state_dir = tmp_path / str(attempt)
        start = threading.Barrier(12)
        got: list[str] = []

        def ask():
            start.wait()
            got.append(ensure_local_secret(state_dir, "CLINIC_TRIAGE_DB_PASSWORD"))

        threads = [threading.Thread(target=ask) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        path = local_secrets_dir(state_dir) / "CLINIC_TRIAGE_DB_PASSWORD"
        assert len(set(got)) == 1 and got[0] == path.read_text().strip() and len(got[0]) >= 43
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir()] == [path.name]  # no draft left behind
