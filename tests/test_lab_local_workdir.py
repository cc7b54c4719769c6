"""Issue 12 item 4, the agent's workdir: a lab run by root keeps its local
machine's agent workdir in the node spool beside its state
(``<root>/var/lib/fleetslurm-node/<cluster id>/<machine>``, 0711, made so by
root), so a user's job reaches its job directory without anything being
opened by hand: the lab's state directory stays 0700."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from second_user import other_user, shared_tmp  # noqa: E402,F401  (fixtures)
from test_lab_as_user import RootLab, _submit, root_lab  # noqa: E402,F401  (fixture)


def test_a_root_labs_local_agent_works_in_the_node_spool(root_lab: RootLab,
                                                        other_user) -> None:
    lab, user = root_lab, other_user
    job = _submit(lab, user, "-o", "id-%j.out", "--wrap", "id -u")
    assert lab.wait(job)["state"] == "COMPLETED"
    assert (lab.work / f"id-{job}.out").read_text() == f"{user.pw_uid}\n"
    state = lab.root / "var/lib/fleetslurm"
    assert os.stat(state).st_mode & 0o7777 == 0o700
    assert not (state / "node").exists()
    spool = lab.root / "var/lib/fleetslurm-node"
    (cluster,) = os.listdir(spool)
    for d in (spool, spool / cluster, spool / cluster / "localhost"):
        st = os.stat(d)
        assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o711), (d, oct(st.st_mode))
    assert (spool / cluster / "localhost" / "jobs").is_dir()
