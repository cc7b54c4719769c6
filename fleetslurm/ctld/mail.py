"""Job mail (``--mail-type``/``--mail-user``), sent as slurmctld 22.05 sends it.

:func:`on_move` is called by ``lifecycle.move`` for a task whose job asked
for mail: a start is BEGIN, a requeue REQUEUE, an end END (COMPLETED,
CANCELLED) or FAIL (FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY...). An array
without ARRAY_TASKS gets one BEGIN (its first task's start) and one summary
when its last task ends; with ARRAY_TASKS every task gets its own.
:func:`time_limits` sends TIME_LIMIT_50/80/90/TIME_LIMIT for running jobs,
:func:`invalid_dependency` INVALID_DEPEND for a job whose dependency can
never be met.

The mail itself is the config's ``mail_prog`` (MailProg) run as
``MailProg -s SUBJECT USER`` with an empty body and SLURM_JOB_* in its
environment (``sendmail`` gets the subject as a header instead), by a
:class:`Mailer` thread after the step's commit: a slow or failing mail
program never holds up the loop; its failures are logged.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from typing import Any, Callable, Optional

from ..slurm import mail as fmt

# the controller's Context (context.py holds the Mailer, so it cannot be
# imported here, not even for type checking: the layout test finds circles)
Context = Any

__all__ = ["Mailer", "on_move", "time_limits", "invalid_dependency", "TIMEOUT_S"]

#: slurmctld's MAIL_PROG_TIMEOUT
TIMEOUT_S = 120.0
_ENDS = frozenset({"COMPLETED", "CANCELLED"}) | fmt.FAIL_STATES
_ACTIVE = ("PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED")
_TIME = (("TIME_LIMIT", 1.0), ("TIME_LIMIT_90", 0.9), ("TIME_LIMIT_80", 0.8),
         ("TIME_LIMIT_50", 0.5))


class Mailer:
    """Runs the mail program, one mail at a time, in a thread of its own."""

    def __init__(self, prog: Optional[str], log: Callable[[str], None]) -> None:
        self.prog, self.log = prog, log
        self._queue: "Optional[queue.Queue[tuple[list[str], dict[str, str], bytes]]]" = None

    def send(self, user: str, subject: str, env: dict[str, str]) -> None:
        """Queue one mail; never blocks, never raises."""
        if not self.prog:
            return
        from ..slurm.mail import mail_user_error

        why = mail_user_error(user)
        if why is not None:  # (refused at submit and update: a record from before)
            self.log(f"mail to {user!r} not sent: {why}")
            return
        if os.path.basename(self.prog) == "sendmail":
            # sendmail takes no -s: the subject goes in as a header
            argv = [self.prog, "-oi", "--", user]
            body = f"To: {user}\nSubject: {subject}\n\n".encode()
        else:
            argv, body = [self.prog, "-s", subject, user], b""
        if self._queue is None:
            self._queue = queue.Queue()
            threading.Thread(target=self._work, name="mail", daemon=True).start()
        self._queue.put((argv, env, body))

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            argv, env, body = self._queue.get()
            base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            try:
                proc = subprocess.run(argv, input=body, env={**base, **env},
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      timeout=TIMEOUT_S, start_new_session=True)
            except (OSError, subprocess.SubprocessError) as exc:
                self.log(f"error: MailProg {argv[0]} could not run: {exc}")
                continue
            if proc.returncode != 0:
                out = proc.stdout.decode(errors="replace").strip()
                self.log(f"error: MailProg returned error, it's output was '{out}'")


def _words(task: dict) -> frozenset[str]:
    return frozenset(w for w in str(task["req"].get("mail") or "").split(",") if w)


def on_move(ctx: Context, task: dict, old: str, new: str, fields: dict) -> None:
    """A task of a job that asked for mail moved ``old`` -> ``new``."""
    if old == new:
        return
    words = _words(task)
    if new == "RUNNING" and any(w.startswith("TIME_LIMIT") for w in words):
        ctx.time_limit_mail = True  # time_limits() watches it from now on
    if new == "RUNNING" and old == "PENDING":
        event = "BEGIN"
    elif new == "PENDING":
        event = "REQUEUE"
    elif new in _ENDS:
        event = "FAIL" if new in fmt.FAIL_STATES else "END"
    else:
        return
    row = {**task, **fields, "state": new}
    if event == "REQUEUE":  # the run it had: "Requeued, Run time ..."
        row.update(start_time=task["start_time"], end_time=task["end_time"] or ctx.now)
    elif event in ("END", "FAIL") and not row.get("start_time"):
        # never started (cancelled while pending): SLURM sets its start to its end
        row["start_time"] = row["end_time"] = row.get("end_time") or ctx.now
    is_array = task["array_index"] is not None or task["array_pending"] is not None
    if is_array and "ARRAY_TASKS" not in words:
        _array_mail(ctx, row, event, words)
        return
    if event not in words or task["array_pending"] is not None:
        return  # (an array's own record with indices left is no task of its own)
    array = (task["job_id"], task["array_index"]) if task["array_index"] is not None else None
    _send(ctx, row, event, array=array)


def _array_mail(ctx: Context, row: dict, event: str, words: frozenset[str]) -> None:
    """An array's mail without ARRAY_TASKS: BEGIN at its first start, one
    summary when its last task ends (job_mgr.c: FAIL when a task exited
    non-zero, else END; REQUEUE first when a task was requeued)."""
    job_id = row["job_id"]
    store = ctx.store
    if event == "BEGIN":
        if "BEGIN" not in words or store.count_tasks(
                "job_id=? AND task_id!=? AND start_time IS NOT NULL", (job_id, row["task_id"])):
            return
        _send(ctx, row, "BEGIN", summary=True)
        return
    if event not in ("END", "FAIL") or store.count_tasks(
            f"job_id=? AND state IN ({','.join('?' * len(_ACTIVE))})", (job_id, *_ACTIVE)):
        return
    tasks = store.tasks_of_job(job_id)
    codes = [int(t["exit_code"] or 0) for t in tasks if t["exit_code"] is not None] or [0]
    requeued = any(t["restart_count"] for t in tasks)
    if requeued and "REQUEUE" in words:
        _send(ctx, row, "REQUEUE", summary=True)
    if max(codes) > 0 and "FAIL" in words:
        _send(ctx, row, "FAIL", summary=True, codes=codes, requeued=requeued)
    elif "END" in words:
        _send(ctx, row, "END", summary=True, codes=codes, requeued=requeued)


def _send(ctx: Context, row: dict, event: str, *, array: Optional[tuple[int, int]] = None,
          summary: bool = False, codes: tuple | list = (), requeued: bool = False) -> None:
    job = ctx.store.job(row["job_id"])
    if job is None:
        return
    spec = job["spec"]
    user = spec.get("mail_user") or job.get("user") or ""
    name = row["req"].get("name") or spec.get("name") or ""
    if summary:
        # the array's own record (its task with the array's id) gives the
        # state and the variables, as SLURM's master record does (oracle)
        own = row if row["task_id"] == row["job_id"] else (ctx.store.task(row["job_id"]) or row)
        subject, extra = fmt.array_summary_subject(event, row["job_id"], name,
                                                   state=own["state"], codes=codes,
                                                   requeued=requeued)
        # (its run time is in the environment, not in the subject)
        extra.update(fmt.subject(event, own["task_id"], name, start=own.get("start_time"),
                                 end=own.get("end_time"), submit=own.get("submit_time"),
                                 exit_code=None, now=ctx.now)[1])
        if event in ("END", "FAIL"):
            extra.pop("SLURM_JOB_EXIT_CODE_MAX", None)
            extra.update(array_summary_env(codes))
        row = own
    else:
        signaled = bool(row.get("exit_signal"))
        subject, extra = fmt.subject(
            event, row["task_id"], name, state=row["state"], exit_code=row.get("exit_code"),
            signaled=signaled, submit=row.get("submit_time"), start=row.get("start_time"),
            end=row.get("end_time"), now=ctx.now, array=array)
    env = fmt.mail_env(_record(ctx, job, row), event, complete=event in ("END", "FAIL"))
    env.update(extra)
    mailer = ctx.mailer
    ctx.after_commit(lambda: mailer.send(user, subject, env))


def array_summary_env(codes: tuple | list) -> dict[str, str]:
    """SLURM_JOB_EXIT_CODE_MIN/MAX of an array's summary."""
    codes = list(codes) or [0]
    return {"SLURM_JOB_EXIT_CODE_MIN": str(min(codes)), "SLURM_JOB_EXIT_CODE_MAX": str(max(codes))}


def _record(ctx: Context, job: dict, row: dict) -> dict:
    """What job_common_env_vars reads, from the job and the task."""
    import grp

    spec = job["spec"]
    gid = spec.get("gid", 0)
    try:
        group = grp.getgrgid(gid).gr_name
    except (KeyError, TypeError):
        group = str(gid)
    return {"job_id": row["task_id"], "name": row["req"].get("name") or spec.get("name"),
            "user": job.get("user"), "uid": job.get("uid"), "gid": gid, "group": group,
            # (null) without -A, as the oracle (SLURM without a database) says
            "account": spec.get("account") or "(null)", "cpus": row.get("alloc_cpus"),
            "stdin": spec.get("input") or "/dev/null", "array": spec,
            "partition": row["req"].get("partition"), "nodes": row.get("node") or "",
            "state": row["state"], "exit_code": row.get("exit_code"),
            "exit_signal": row.get("exit_signal"), "restart_count": row.get("restart_count"),
            "workdir": spec.get("workdir"), "stdout": spec.get("output"),
            "stderr": spec.get("error"), "cluster": ctx.config.cluster_name,
            "comment": spec.get("comment"),
            "array_job_id": row["job_id"] if row["array_index"] is not None else None,
            "array_task_id": row["array_index"]}


def time_limits(ctx: Context, now: float) -> None:
    """TIME_LIMIT_50/80/90 and TIME_LIMIT: once each, when a running job's run
    time reaches that share of its limit (job_mgr.c's _job_timed_out checks)."""
    tasks = ctx.store.tasks("state='RUNNING' AND req LIKE '%TIME_LIMIT%'")
    # none: look again only once a job asks for it (submit, scontrol update)
    ctx.time_limit_mail = bool(tasks)
    for task in tasks:
        words = _words(task)
        limit = task["req"].get("time_limit")
        start = task["start_time"]
        sent = set(task["req"].get("mail_sent") or ())
        if not limit or not start:
            continue
        # (its run time: a suspended job's limit clock stands still, ctld/suspend.py)
        ran = now - start - float(task.get("suspended_s") or 0.0)
        due = [w for w, share in _TIME if w in words and w not in sent
               and ran >= limit * 60 * share]
        if not due:
            continue
        ctx.store.update_task(task["task_id"], req={**task["req"],
                                                    "mail_sent": sorted(sent | set(due))})
        array = (task["job_id"], task["array_index"]) if task["array_index"] is not None else None
        for word in due:
            _send(ctx, task, word, array=array)


def invalid_dependency(ctx: Context, task_ids: list[int]) -> None:
    """INVALID_DEPEND: once, when a pending job's dependency can never be met
    (its reason became DependencyNeverSatisfied; handle_invalid_dependency)."""
    for task_id in task_ids:
        task = ctx.store.task(task_id)
        if task is None or "INVALID_DEPEND" not in _words(task):
            continue
        sent = set(task["req"].get("mail_sent") or ())
        if "INVALID_DEPEND" in sent:
            continue
        ctx.store.update_task(task_id, req={**task["req"],
                                            "mail_sent": sorted(sent | {"INVALID_DEPEND"})})
        array = (task["job_id"], task["array_index"]) if task["array_index"] is not None else None
        _send(ctx, task, "INVALID_DEPEND", array=array)
