"""Expansion of ``--output`` / ``--error`` filename patterns (``slurm-%j.out``).

Follows SLURM 22.05's ``fname_create`` (src/slurmd/slurmstepd/fname.c:
``_create_batch_fname``, ``_batch_path_check``, ``remove_path_slashes``) as
observed on slurm-wlm 22.05.8:

==========  ================================================================
``%%``      a literal ``%``
``%A``      array master job id; the job id when the job is not an array
``%a``      array index; ``4294967294`` (NO_VAL) outside an array
``%J``      ``jobid.stepid``; just ``jobid`` for the batch step
``%j``      job id (an array task's own id)
``%N``      short host name (up to the first dot)
``%n``      node index within the job
``%s``      step id; ``batch`` for the batch step
``%t``      task rank
``%u``      user name
``%x``      job name
==========  ================================================================

``%<digits><letter>`` zero-pads numbers to the width (at most 10; ignored for
text). Digits before anything else print their last digit (``%5q`` -> ``5q``);
any other ``%X`` stays as written (``%b`` is not expanded by 22.05). A
backslash anywhere turns expansion off: ``\\\\`` becomes ``\\``, other
backslashes vanish (``r\\_%j`` -> ``r_%j``).
"""

from __future__ import annotations

__all__ = ["expand_pattern", "NO_ARRAY_TASK_ID", "MAX_PAD"]

#: what ``%a`` prints outside a job array (SLURM's NO_VAL)
NO_ARRAY_TASK_ID = 4294967294
#: fname.c MAX_WIDTH
MAX_PAD = 10

_LETTERS = frozenset("AaJjNnstux")


def _remove_path_slashes(pattern: str) -> str:
    r"""``remove_path_slashes``: ``\\`` -> ``\``; a lone ``\`` is dropped."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            if pattern[i + 1:i + 2] == "\\":
                out.append("\\")
                i += 2
            else:
                i += 1
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def expand_pattern(
    pattern: str,
    *,
    job_id: int,
    array_job_id: int | None = None,
    array_task_id: int | None = None,
    step_id: str | int = "batch",
    task_id: int = 0,
    node: str = "",
    node_index: int = 0,
    user: str = "",
    job_name: str = "",
) -> str:
    """Expand a SLURM filename pattern (see the module docstring for the letters).

    ``job_id`` is the job's own id (for an array task, the task's unique id);
    ``array_job_id``/``array_task_id`` are set only for array tasks;
    ``step_id`` is ``"batch"`` for the batch script or the step number.
    Relative results are left relative: the caller joins them to the job's
    working directory.
    """
    if "\\" in pattern:
        return _remove_path_slashes(pattern)

    is_batch = str(step_id) == "batch"

    def value(letter: str, width: int) -> str:
        def num(n: int) -> str:
            return f"{n:0{width}d}"

        if letter == "A":
            return num(array_job_id if array_task_id is not None and array_job_id is not None
                       else job_id)
        if letter == "a":
            return num(NO_ARRAY_TASK_ID if array_task_id is None else array_task_id)
        if letter == "j":
            return num(job_id)
        if letter == "J":
            return num(job_id) if is_batch else f"{num(job_id)}.{step_id}"
        if letter == "s":
            if isinstance(step_id, int) or str(step_id).isdigit():
                return num(int(step_id))
            return str(step_id)
        if letter == "t":
            return num(task_id)
        if letter == "n":
            return num(node_index)
        if letter == "N":
            return node.split(".", 1)[0]
        if letter == "u":
            return user
        return job_name  # "x"

    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        nxt = pattern[i + 1:i + 2]
        if nxt == "%":
            out.append("%")
            i += 2
        elif nxt.isascii() and nxt.isdigit():
            j = i + 1
            while j < n and pattern[j].isascii() and pattern[j].isdigit():
                j += 1
            width = min(int(pattern[i + 1:j]), MAX_PAD)
            if j < n and pattern[j] in _LETTERS:
                out.append(value(pattern[j], width))
                i = j + 1
            else:
                # fname.c keeps only the last digit when no letter follows
                out.append(pattern[j - 1])
                i = j
        elif nxt and nxt in _LETTERS:
            out.append(value(nxt, 0))
            i += 2
        else:
            out.append("%")
            i += 1
    return "".join(out)
