"""SLURM 22.05's job mail: ``--mail-type`` words, how scontrol prints them, the
subject line slurmctld gives MailProg and the environment it runs it with.

From SchedMD/slurm 22.05: src/common/proc_args.c (``parse_mail_type``,
``print_mail_type``), src/slurmctld/agent.c (``mail_job_info``,
``_mail_type_str``, ``_set_job_time``, ``_set_job_term_info``, MailProg run as
``MailProg -s SUBJECT USER`` with an empty body) and src/slurmctld/job_mgr.c
(``job_common_env_vars``). Pure: no I/O.
"""

from __future__ import annotations

from typing import Iterable, Optional

__all__ = ["PRINT_ORDER", "mail_user_error", "parse_mail_type", "format_mail_type", "subject", "duration",
           "array_summary_subject", "FAIL_STATES", "mail_env"]

#: the words in print_mail_type's order (scontrol's MailType=)
PRINT_ORDER = ("ARRAY_TASKS", "INVALID_DEPEND", "BEGIN", "END", "FAIL", "REQUEUE", "STAGE_OUT",
               "TIME_LIMIT_50", "TIME_LIMIT_80", "TIME_LIMIT_90", "TIME_LIMIT")
_ALL = ("INVALID_DEPEND", "BEGIN", "END", "FAIL", "REQUEUE", "STAGE_OUT")

#: what _mail_type_str calls each event in the subject
_EVENT = {"INVALID_DEPEND": "Invalid dependency", "BEGIN": "Began", "END": "Ended",
          "FAIL": "Failed", "REQUEUE": "Requeued", "STAGE_OUT": "StageOut/Teardown",
          "TIME_LIMIT": "Reached time limit", "TIME_LIMIT_90": "Reached 90% of time limit",
          "TIME_LIMIT_80": "Reached 80% of time limit",
          "TIME_LIMIT_50": "Reached 50% of time limit"}

#: the end states a FAIL mail is for (base state >= JOB_FAILED); END is for
#: COMPLETED and CANCELLED only (job_mgr.c's job_completion_logger)
FAIL_STATES = frozenset({"FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
                         "OUT_OF_MEMORY"})


def mail_user_error(value: str) -> Optional[str]:
    """Why ``value`` cannot be a --mail-user, or None. It reaches the mail
    program's argv (SLURM's ``MailProg -s SUBJECT USER``) and, for sendmail,
    a header: a leading ``-`` would be read as an option (mailx's ``-X``
    runs a command), whitespace or a control character would split it or
    add headers. SLURM passes anything; fleetslurm refuses these."""
    if value.startswith("-"):
        return "it starts with '-'"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return "it contains whitespace or a control character"
    return None


def parse_mail_type(text: str) -> Optional[frozenset[str]]:
    """The set of mail words ``text`` asks for (empty for NONE, which ends the
    list); None when it names no known word (sbatch's "Invalid --mail-type
    specification"). Unknown words beside known ones are skipped, as SLURM's."""
    out: set[str] = set()
    for word in text.split(","):
        w = word.strip().upper()
        if w == "NONE":
            return frozenset()
        if w == "ALL":
            out.update(_ALL)
        elif w in PRINT_ORDER:
            out.add(w)
    return frozenset(out) if out else None


def format_mail_type(types: Iterable[str]) -> str:
    """scontrol's ``MailType=``: the words in SLURM's order, NONE for none."""
    chosen = set(types)
    return ",".join(w for w in PRINT_ORDER if w in chosen) or "NONE"


def duration(seconds: float) -> str:
    """secs2time_str: ``HH:MM:SS``, ``D-HH:MM:SS`` past a day."""
    s = max(0, int(seconds))
    days, rest = divmod(s, 86400)
    hms = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{hms}" if days else hms


def _term(event: str, state: str, exit_code: Optional[int], signaled: bool) -> str:
    """``, STATE, ExitCode N`` (END and FAIL only; no ExitCode for a job a
    signal ended, whose wait status is not WIFEXITED)."""
    if event not in ("END", "FAIL"):
        return ""
    if signaled or exit_code is None:
        return f", {state}"
    return f", {state}, ExitCode {exit_code}"


def _time(event: str, submit: Optional[float], start: Optional[float], end: Optional[float],
          now: float) -> tuple[str, Optional[tuple[str, str]]]:
    """``, Queued time ...`` / ``, Run time ...`` and the variable that carries it."""
    if event == "BEGIN" and start and submit:
        t = duration(start - submit)
        return f", Queued time {t}", ("SLURM_JOB_QUEUED_TIME", t)
    if event in ("END", "FAIL", "REQUEUE") and start and end:
        t = duration(end - start)
        return f", Run time {t}", ("SLURM_JOB_RUN_TIME", t)
    if event.startswith("TIME_LIMIT") and start:
        t = duration(now - start)
        return f", Run time {t}", ("SLURM_JOB_RUN_TIME", t)
    return "", None


def subject(event: str, job_id: int, name: str, *, state: str = "", exit_code: Optional[int] = 0,
            signaled: bool = False, submit: Optional[float] = None,
            start: Optional[float] = None, end: Optional[float] = None, now: float = 0.0,
            array: Optional[tuple[int, int]] = None) -> tuple[str, dict[str, str]]:
    """The subject of a job's (or one array task's, ``array`` = (array job id,
    index)) mail for ``event`` (BEGIN, END, ...), and the variables that go
    with it (SLURM_JOB_QUEUED_TIME / _RUN_TIME, SLURM_JOB_EXIT_CODE_MAX)."""
    times, var = _time(event, submit, start, end, now)
    env = dict([var]) if var else {}
    term = _term(event, state, exit_code, signaled)
    if term:
        env["SLURM_JOB_EXIT_CODE_MAX"] = "0" if (signaled or exit_code is None) \
            else str(exit_code)
    if array is not None:
        head = f"Slurm Array Task Job_id={array[0]}_{array[1]} ({job_id}) Name={name}"
    else:
        head = f"Slurm Job_id={job_id} Name={name}"
    return f"{head} {_EVENT[event]}{times}{term}", env


def array_summary_subject(event: str, array_id: int, name: str, *, state: str = "",
                          codes: Iterable[int] = (), requeued: bool = False
                          ) -> tuple[str, dict[str, str]]:
    """An array's one mail (without ARRAY_TASKS): ``Slurm Array Summary
    Job_id=7_* (7) Name=x Ended, COMPLETED, ExitCode [0-0]``; ``Mixed`` when
    some tasks exited 0 and some not."""
    term, env = "", {}
    codes = list(codes)
    if event in ("END", "FAIL"):
        lo, hi = (min(codes), max(codes)) if codes else (0, 0)
        shown = "Mixed" if lo == 0 and hi > 0 else state
        term = f", {shown}, ExitCode [{lo}-{hi}]"
        env = {"SLURM_JOB_EXIT_CODE_MIN": str(lo), "SLURM_JOB_EXIT_CODE_MAX": str(hi)}
        if requeued:
            term += ", with requeued tasks"
    return (f"Slurm Array Summary Job_id={array_id}_* ({array_id}) Name={name} "
            f"{_EVENT[event]}{term}"), env


def mail_env(job: dict, event: str, complete: bool) -> dict[str, str]:
    """job_common_env_vars plus SLURM_JOB_STATE and SLURM_JOB_MAIL_TYPE, from a
    record with ``job_id``, ``name``, ``user``, ``uid``, ``gid``, ``group``,
    ``account``, ``partition``, ``nodes``, ``cpus``, ``state``, ``exit_code``,
    ``exit_signal``, ``restart_count``, ``workdir``, ``stdin``, ``stdout``,
    ``stderr``, ``cluster``, ``comment``, ``array_job_id``, ``array_task_id``,
    ``array`` (the job's spec: its ``array_count``/``max``/``min``/``step``).
    The set the oracle (SLURM 22.05) gives its MailProg."""
    g = job.get
    env = {"SLURM_JOB_ACCOUNT": str(g("account") or "(null)"),
           "SLURM_CLUSTER_NAME": str(g("cluster") or ""),
           "SLURM_JOB_GID": str(g("gid") or 0), "SLURM_JOB_GROUP": str(g("group") or ""),
           "SLURM_JOBID": str(g("job_id")), "SLURM_JOB_ID": str(g("job_id")),
           "SLURM_JOB_NAME": str(g("name") or ""),
           "SLURM_JOB_NODELIST": str(g("nodes") or "(null)"),
           "SLURM_JOB_PARTITION": str(g("partition") or ""),
           "SLURM_JOB_RESTART_COUNT": str(g("restart_count") or 0),
           "SLURM_JOB_UID": str(g("uid") or 0), "SLURM_JOB_USER": str(g("user") or ""),
           "SLURM_JOB_WORK_DIR": str(g("workdir") or ""),
           "SLURM_JOB_STATE": str(g("state") or ""), "SLURM_JOB_MAIL_TYPE": _EVENT[event]}
    if complete:
        code, sig = int(g("exit_code") or 0), int(g("exit_signal") or 0)
        env["SLURM_JOB_EXIT_CODE2"] = f"{code}:{sig}"
        env["SLURM_JOB_EXIT_CODE"] = str((code << 8) | sig)  # the raw wait status
        env["SLURM_JOB_DERIVED_EC"] = "0"
    if g("nodes") and g("cpus"):  # a job given resources (job_resrcs)
        env["SLURM_JOB_CPUS_PER_NODE"] = str(g("cpus"))
        env["SLURM_JOB_NUM_NODES"] = "1"
    if g("array_job_id") is not None:
        env["SLURM_ARRAY_JOB_ID"] = str(g("array_job_id"))
        env["SLURM_ARRAY_TASK_ID"] = str(g("array_task_id"))
        # the SLURM_ARRAY_TASK_* a task's job gets (from its spec: array_count...)
        arr = g("array") or {}
        for key, var in (("array_count", "COUNT"), ("array_max", "MAX"), ("array_min", "MIN"),
                         ("array_step", "STEP")):
            if arr.get(key) is not None:
                env[f"SLURM_ARRAY_TASK_{var}"] = str(arr[key])
    for key, var in (("comment", "SLURM_JOB_COMMENT"), ("stdin", "SLURM_JOB_STDIN"),
                     ("stdout", "SLURM_JOB_STDOUT"), ("stderr", "SLURM_JOB_STDERR")):
        if g(key):
            env[var] = str(g(key))
    return env
