"""Job arrays in the controller: one record whose tasks are created as they start.

``sbatch --array=0-99999`` stores one row, the array's record (task id = the
array's job id A), whose ``array_pending`` lists every index that has no
task yet. The scheduler is handed only a *window* of tasks per array: enough
to fill every machine twice over, never more than the ``%N`` throttle. A
task in the window has its job id (JobIDRaw) already but no row: it gets its
row when it starts, as SLURM splits a task from the array's record when it
starts it. The last index takes over the record and its id, as SLURM's last
task keeps the array's job id (so it is handed out only once every other
index has started). The scheduler counts the tasks it has not been handed
(:class:`~fleetslurm.scheduler.ArrayTasks`), so a dependency on the whole
array still judges every one of them. Nothing here is O(tasks) per step: a
top-up costs O(window) and the pending indices are a few ranges.

A pending index named on its own (``scontrol hold A_7``) is *split out*: it
gets its row (and, unless it is the last, a new id) at once, and waits
outside the window until there is room. ``scancel A_7`` of an index without
a row drops the index, as SLURM does (no record of it remains, and a
dependency on the whole array no longer counts it); ``scancel A`` cancels
the record, which keeps the cancelled remainder (``A_[7-99999]`` CANCELLED
in squeue and sacct, as in SLURM). A controller restart forgets the window
(its ids are never reused) and hands out new tasks from the record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..scheduler import ArrayTasks, JobEnded, JobSubmitted
from ..slurm.arrays import IndexSet
from .lifecycle import end_task, is_array_record

if TYPE_CHECKING:
    from .context import Context

__all__ = ["ArrayFeeds", "Feed"]

#: a window never smaller than this many tasks per array
MIN_WINDOW = 32


@dataclass(eq=False)
class Feed:
    """One array that still has indices without a task, or tasks to hand out."""

    job_id: int
    throttle: Optional[int]
    pending: IndexSet                                      # the record's array_pending
    remaining: IndexSet                                    # pending, not handed out yet
    window: dict[int, int] = field(default_factory=dict)  # task id -> index, no row yet
    split: list[int] = field(default_factory=list)        # pending task rows not handed out
    fed: set[int] = field(default_factory=set)            # task rows the scheduler has

    @property
    def unsubmitted(self) -> int:
        return len(self.remaining) + len(self.split)

    def in_scheduler(self) -> int:
        return len(self.window) + len(self.fed)

    def index_task(self, index: int) -> Optional[int]:
        """The window task of ``index``, if it is in the window."""
        for task_id, i in self.window.items():
            if i == index:
                return task_id
        return None


class ArrayFeeds:
    """The controller's arrays: which tasks the scheduler sees, and creating them."""

    def __init__(self, ctx: "Context") -> None:
        self.ctx = ctx
        self.feeds: dict[int, Feed] = {}
        self.of_task: dict[int, int] = {}   # task id in the scheduler -> its array's job id
        #: arrays the scheduler has counts for (told at submission or since start)
        self.told: set[int] = set()
        #: per told array: [COMPLETED, other] tasks that ended without the
        #: scheduler seeing them one by one (a cancelled remainder; at start-up,
        #: every task that had ended)
        self.base: dict[int, list[int]] = {}
        #: array tasks the scheduler was given one by one since the start
        self.ever_fed: set[int] = set()

    # -- the window ---------------------------------------------------------------
    def window(self) -> int:
        """Tasks per array the scheduler sees at once: every CPU of the fleet twice
        over (at most half can be starting while the rest wait their turn)."""
        cpus = sum(n.get("cpus") or 1 for n in self.ctx.node_snapshot) \
            or sum(self.ctx.node_spec(name).cpus for name in self.ctx.config.machines)
        return max(MIN_WINDOW, 2 * cpus + 16)

    def _room(self, feed: Feed) -> int:
        limit = self.window()
        if feed.throttle:
            limit = min(limit, feed.throttle)
        return limit - feed.in_scheduler()

    def window_tasks(self, job_id: int) -> list[int]:
        """Ids of the tasks of array ``job_id`` in the scheduler without a row of their own."""
        feed = self.feeds.get(job_id)
        return [t for t in feed.window if t != job_id] if feed else []

    def is_window_task(self, task_id: int) -> bool:
        job_id = self.of_task.get(task_id)
        return job_id is not None and task_id != job_id and task_id in self.feeds[job_id].window

    # -- submission and restart -------------------------------------------------------
    def _new_feed(self, record: dict, job: dict) -> Feed:
        pending = IndexSet.from_text(record["array_pending"] or "")
        feed = Feed(record["task_id"], job["spec"].get("array_throttle"), pending, pending.copy())
        self.feeds[feed.job_id] = feed
        return feed

    def submit(self, record: dict, job: dict) -> None:
        """A new array (its record is in the store): hand out its first tasks."""
        feed = self._new_feed(record, job)
        self.told.add(feed.job_id)
        self.top_up(feed)

    def restore_record(self, record: dict, job: dict) -> None:
        """At start-up: an array record still pending (its tasks are restored next)."""
        self._new_feed(record, job)

    def restore_pending(self, task: dict, job: dict) -> None:
        """At start-up: a pending task that has a row; handed out by :meth:`finish_restore`."""
        self._feed_of(task, job).split.append(task["task_id"])

    def _feed_of(self, task: dict, job: dict) -> Feed:
        feed = self.feeds.get(task["job_id"])
        if feed is None:  # no index left without a task: a feed for the rows alone
            feed = self.feeds[task["job_id"]] = Feed(
                task["job_id"], job["spec"].get("array_throttle"), IndexSet(), IndexSet())
        return feed

    def note_fed(self, task: dict, job: Optional[dict] = None) -> None:
        """An array task row the scheduler now has (restored running, requeued...)."""
        if task.get("array_index") is None:
            return
        job = job or self.ctx.store.job(task["job_id"])
        feed = self._feed_of(task, job)  # type: ignore[arg-type]
        feed.fed.add(task["task_id"])
        if task["task_id"] in feed.split:
            feed.split.remove(task["task_id"])
        self.of_task[task["task_id"]] = feed.job_id
        self.ever_fed.add(task["task_id"])

    def finish_restore(self) -> None:
        """At start-up, once every row was seen: count what ended, hand out tasks."""
        for feed in list(self.feeds.values()):
            feed.split.sort()
            self.base[feed.job_id] = list(self.ctx.store.array_outcomes(feed.job_id))
            self.told.add(feed.job_id)
            self.top_up(feed)

    # -- handing tasks to the scheduler ----------------------------------------------------
    def top_up(self, feed: Feed) -> None:
        """Fill the array's window: split-out tasks first, then indices of the record."""
        room = self._room(feed)
        store = self.ctx.store
        job = store.job(feed.job_id)
        assert job is not None
        while room > 0 and feed.split:
            task = store.task(feed.split.pop(0))
            if task is not None and task["state"] == "PENDING":
                self._hand_out(feed, self.ctx.request_of(task, job))
                feed.fed.add(task["task_id"])
                room -= 1
        if room > 0 and feed.remaining:
            record = store.task(feed.job_id)
            assert record is not None
            if record["state"] == "PENDING":
                self._hand_out_indices(feed, record, job, room)
        self._tell(feed)

    def _hand_out_indices(self, feed: Feed, record: dict, job: dict, room: int) -> None:
        count = min(room, len(feed.remaining))
        # the last index keeps the record's id: it goes out once no other index waits
        if count == len(feed.remaining):
            count -= 1
            last = not feed.window and count == 0
        else:
            last = False
        first_id = self.ctx.store.allocate_ids(count) if count else 0
        for n in range(count):
            self._hand_out_index(feed, record, job, first_id + n, feed.remaining.pop_first())
        if last:
            self._hand_out_index(feed, record, job, feed.job_id, feed.remaining.pop_first())

    def _hand_out_index(self, feed: Feed, record: dict, job: dict, task_id: int,
                        index: int) -> None:
        task = dict(record, task_id=task_id, array_index=index, array_pending=None)
        self._hand_out(feed, self.ctx.request_of(task, job))
        feed.window[task_id] = index

    def _hand_out(self, feed: Feed, request) -> None:  # type: ignore[no-untyped-def]
        self.ctx.emit(JobSubmitted(request))
        self.ctx.fed.add(request.job_id)
        self.of_task[request.job_id] = feed.job_id
        self.ever_fed.add(request.job_id)

    def _count_ended(self, job_id: int, ok: bool, delta: int = 1) -> list[int]:
        base = self.base.setdefault(job_id, [0, 0])
        base[0 if ok else 1] += delta
        return base

    def _tell(self, feed: Feed) -> None:
        """The scheduler's counts of the tasks it does not see; done arrays are dropped."""
        ok, bad = self.base.setdefault(feed.job_id, [0, 0])
        self.ctx.emit(ArrayTasks(feed.job_id, feed.unsubmitted, ok, bad))
        if not feed.unsubmitted and not feed.in_scheduler() and not feed.pending:
            del self.feeds[feed.job_id]

    def uncount(self, job_id: int, ok: bool) -> None:
        """An ended task the scheduler only counted is now told to it one by one."""
        base = self._count_ended(job_id, ok, -1)
        feed = self.feeds.get(job_id)
        if feed is not None:
            self._tell(feed)
        else:
            self.ctx.emit(ArrayTasks(job_id, 0, base[0], base[1]))

    # -- a window task starts --------------------------------------------------------------
    def materialize(self, task_id: int) -> Optional[dict]:
        """The row of a window task, created now (it starts, or is named on its own);
        None if ``task_id`` is not a window task."""
        job_id = self.of_task.get(task_id)
        feed = self.feeds.get(job_id) if job_id is not None else None
        if feed is None or task_id not in feed.window:
            return None
        index = feed.window.pop(task_id)
        feed.pending.discard(index)
        feed.fed.add(task_id)
        store, now = self.ctx.store, self.ctx.now
        record = store.task(feed.job_id)
        assert record is not None
        if task_id == feed.job_id:  # the last index: the record becomes its task
            store.update_task(task_id, array_index=index, array_pending=None)
            store.log(task_id, now, "task", f"the array's last index {index}")
        else:
            store.add_task(task_id, feed.job_id, index, record["req"], record["submit_time"],
                           record["held"], logged_at=now)
            store.update_task(feed.job_id, array_pending=feed.pending.to_text())
        if not feed.window and len(feed.remaining) == 1:
            self.top_up(feed)  # every other index has started: the last may go out now
        return store.task(task_id)

    # -- tasks leaving the scheduler -------------------------------------------------------
    def forget(self, task_id: int) -> None:
        """The scheduler no longer has this task (it ended)."""
        job_id = self.of_task.pop(task_id, None)
        feed = self.feeds.get(job_id) if job_id is not None else None
        if feed is not None:
            feed.fed.discard(task_id)

    def task_finished(self, task: dict) -> None:
        """A task ended (or was cancelled): its array may hand out the next ones."""
        if task.get("array_index") is None and not is_array_record(task):
            return
        feed = self.feeds.get(task["job_id"])
        if feed is None:
            return
        if task["task_id"] in feed.split:  # cancelled before the scheduler saw it
            feed.split.remove(task["task_id"])
            self._count_ended(feed.job_id, False)
        self.top_up(feed)

    def refill(self, job_id: int) -> None:
        """After a request changed an array's tasks: hand out what now has room."""
        feed = self.feeds.get(job_id)
        if feed is not None:
            self.top_up(feed)

    # -- one index, or the whole remainder ---------------------------------------------------
    def split(self, record: dict, index: int) -> dict:
        """Give pending index ``index`` its own task row now (to hold or update it)."""
        feed = self.feeds[record["task_id"]]
        in_window = feed.index_task(index)
        if in_window is not None:
            return self.materialize(in_window)  # type: ignore[return-value]
        feed.remaining.discard(index)
        feed.pending.discard(index)
        store = self.ctx.store
        if not feed.pending:  # the last index: the record becomes its task
            store.update_task(feed.job_id, array_index=index, array_pending=None)
            task_id = feed.job_id
        else:
            task_id = store.allocate_ids(1)
            store.add_task(task_id, feed.job_id, index, record["req"], record["submit_time"],
                           record["held"], logged_at=self.ctx.now)
            store.update_task(feed.job_id, array_pending=feed.pending.to_text())
        feed.split.append(task_id)
        self._tell(feed)
        return store.task(task_id)  # type: ignore[return-value]

    def drop_index(self, record: dict, index: int, uid: int, now: float) -> None:
        """``scancel A_i`` of an index without a row: it is gone, as in SLURM, which
        keeps no record of it; the last one cancels the record as that task."""
        feed = self.feeds[record["task_id"]]
        store = self.ctx.store
        if feed.pending == IndexSet.of([index]):
            self._end_window(feed, now)
            feed.remaining.discard(index)
            feed.pending.discard(index)
            end_task(self.ctx, record, "CANCELLED", now, f"CANCELLED by {uid}",
                     tell_scheduler=False, array_index=index, array_pending=None,
                     cancelled_by=uid)
            self._count_ended(feed.job_id, False)
            self._tell(feed)
            return
        in_window = feed.index_task(index)
        if in_window is not None:
            # the scheduler counts it as cancelled; the array's counts take it back out
            feed.window.pop(in_window)
            self.ctx.emit(JobEnded(in_window, "CANCELLED", now))
            self.ctx.forget_fed(in_window)
            self._count_ended(feed.job_id, False, -1)
        feed.remaining.discard(index)
        feed.pending.discard(index)
        store.update_task(feed.job_id, array_pending=feed.pending.to_text())
        store.log(feed.job_id, now, "cancel", f"index {index} by {uid}")
        self.top_up(feed)

    def _end_window(self, feed: Feed, now: float) -> None:
        for task_id in list(feed.window):
            self.ctx.emit(JobEnded(task_id, "CANCELLED", now))
            self.ctx.forget_fed(task_id)
        feed.window.clear()

    def cancel_remainder(self, record: dict, uid: int, now: float, reason: str = "None") -> None:
        """``scancel A``: the indices without a task end CANCELLED on the record."""
        feed = self.feeds.get(record["task_id"])
        end_task(self.ctx, record, "CANCELLED", now,
                 f"CANCELLED by {uid} (indices {record['array_pending']})",
                 tell_scheduler=False, cancelled_by=uid, reason=reason)
        if feed is not None:
            self._end_window(feed, now)  # the scheduler counts these itself
            self._count_ended(feed.job_id, False, len(feed.remaining))
            feed.remaining = IndexSet()
            feed.pending = IndexSet()
            self._tell(feed)

    def revive(self, record: dict, job: dict) -> None:
        """``scontrol requeue A`` of a cancelled remainder: its indices are pending again."""
        feed = self.feeds.get(record["task_id"]) or self._new_feed(record, job)
        feed.pending = IndexSet.from_text(record["array_pending"])
        feed.remaining = feed.pending.copy()
        if feed.job_id in self.told:
            self._count_ended(feed.job_id, False, -len(feed.remaining))
        self.told.add(feed.job_id)
        self.top_up(feed)

    # -- what squeue shows for the record -----------------------------------------------
    def record_reasons(self, reasons: dict[int, str]) -> dict[int, str]:
        """The reason each pending array record shows (its first waiting task's, or
        ``JobArrayTaskLimit`` when the throttle holds the rest back); window tasks,
        which have no row, are taken out of ``reasons``."""
        out = {}
        for feed in self.feeds.values():
            waiting = sorted(t for t in feed.window if t in reasons)
            first = reasons[waiting[0]] if waiting else None
            for task_id in waiting:
                if task_id != feed.job_id:
                    del reasons[task_id]
            if not feed.pending:
                continue
            if first is not None:
                out[feed.job_id] = first
            elif feed.throttle and feed.in_scheduler() >= feed.throttle:
                out[feed.job_id] = "JobArrayTaskLimit"
        return out
