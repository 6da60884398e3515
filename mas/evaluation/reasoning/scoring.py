"""Answer extraction and scoring (docs/algorithms.md, "Reasoning evaluation").

Math: the text after the last `</think>` (if any) is parsed with math-verify
`parse(resp, [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()])`, the gold is
wrapped in `$...$` and parsed the same way, and `verify(gold, pred)` decides. An explicit final-answer
marker wins over numbers elsewhere: the last `\boxed{}` (math-verify ranks it first, rightmost
winning) or GSM8K's `#### N` line, whichever comes later; a `####` line is parsed alone, since
math-verify would otherwise prefer a number near the word "answer" ("express the answer as a
percentage: ... = 33.333%, which rounds down to 33%\n#### 33" gave 33.333). Choice: the last
`Answer: X` (A-E) against the gold letter.

Scoring runs in spawned worker processes: math-verify's timeouts and ours use SIGALRM, which only
works on a process's main thread, and sympy can hang in C code where no signal lands. Each response
gets `timeout` seconds (an alarm in the worker); a worker that overruns its item's whole budget is
killed and replaced. Either way the response counts wrong and is reported as timed out."""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import re
import signal
import threading
import time
from collections import deque
from functools import lru_cache
from multiprocessing.connection import wait

from mas.evaluation.reasoning.loaders import Item
from mas.evaluation.reasoning.metrics import Report

# "Answer: X" (also "answer is X", markdown, "(X)", "\boxed{X}"); the letter itself must be upper case
CHOICE_RE = re.compile(r"(?i:answer)\s*(?:(?i:is))?\s*[:：]?\s*[*_\s]*(?:\\boxed\{|\\text\{|\()?\s*([A-E])\b(?![\w'])")
# GSM8K's final-answer line, "#### 1,234": a number alone on its line after the marker, so that a
# markdown heading ("#### Step 2: ...", "#### 1. Read the problem") is not taken for one
FINAL_LINE_RE = re.compile(r"^[ \t]*####[ \t]*\$?[ \t]*(-?(?:\d[\d,]*(?:\.\d+)?|\.\d+))[ \t]*%?\.?[ \t]*$",
                           re.MULTILINE)
KILL_GRACE_S = 5.0  # the hard per-item limit: timeout x samples + this


class ScoringTimeout(BaseException):
    """Raised by our alarm; a BaseException so math-verify's `except Exception` cannot swallow it."""


def after_think(response: str) -> str:
    """The text after the last `</think>`, or the whole response when there is none."""
    return response.rsplit("</think>", 1)[1] if "</think>" in response else response


@lru_cache(maxsize=1)
def _quiet() -> None:
    """math-verify warns on every call made without its own alarm and on every timeout; ours
    handles timeouts and reports them in the Report instead."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)


@lru_cache(maxsize=1)
def _extraction_config():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


def _parse(text: str, signals: bool) -> list:
    from math_verify import parse

    _quiet()
    # math-verify's own alarm only where signals are allowed (and not nested inside ours)
    return parse(text, _extraction_config(), parsing_timeout=5 if signals else None)


def _final_line(text: str) -> str | None:
    """The number on the last `#### N` line when no `\\boxed` comes after it, commas dropped as the
    loader drops them from the gold ("#### 1,234" -> "1234"), else None."""
    found = list(FINAL_LINE_RE.finditer(text))
    if not found or found[-1].start() < text.rfind("\\boxed"):
        return None
    return found[-1].group(1).replace(",", "")


def _parse_response(response: str, signals: bool) -> list:
    """math-verify's reading of a response after its last `</think>`: the `#### N` line alone where
    it is the final marker, the whole text otherwise (a `\\boxed{}` or, without a marker, the
    current ranking of numbers)."""
    text = after_think(response)
    final = _final_line(text)
    return _parse(text if final is None else final, signals)


def _choice(response: str) -> str | None:
    found = CHOICE_RE.findall(after_think(response))
    return found[-1].upper() if found else None


def extract_answer(response: str, kind: str) -> str | None:
    """The answer a response gives, as text (math: the matched expression), or None."""
    if kind == "choice":
        return _choice(response)
    if kind != "math":
        raise ValueError(f"unknown answer kind '{kind}'; expected math or choice")
    parsed = _parse_response(response, threading.current_thread() is threading.main_thread())
    return str(parsed[-1]) if parsed else None


# --- one item, inside a worker ----------------------------------------------------------------
_armed = False  # our alarm only interrupts while a response is being scored


def _alarm(signum, frame):
    if _armed:
        raise ScoringTimeout()


def score_item(gold: str, kind: str, responses: list[str], timeout: float, use_alarm: bool = True) -> list[tuple]:
    """(correct, extracted, timed_out) per response. With `use_alarm` each response gets `timeout`
    seconds of SIGALRM-guarded time (main thread only) and math-verify's own alarms stay off."""
    global _armed
    if kind == "choice":
        return [(_choice(r) == gold.strip().upper(), _choice(r), False) for r in responses]
    from math_verify import verify

    results, gold_parsed = [], None
    if use_alarm:  # borrow SIGALRM; an alarm someone else had pending (pytest-timeout) is put back
        previous, pending = signal.signal(signal.SIGALRM, _alarm), signal.getitimer(signal.ITIMER_REAL)
        started = time.monotonic()
    try:
        for response in responses:
            extracted, correct, timed_out = None, False, False
            try:
                if use_alarm:
                    _armed = True
                    signal.setitimer(signal.ITIMER_REAL, timeout)
                if gold_parsed is None:
                    gold_parsed = _parse(f"${gold}$", signals=False) or [gold]
                pred = _parse_response(response, signals=False)
                extracted = str(pred[-1]) if pred else None
                correct = bool(pred) and verify(gold_parsed, pred, timeout_seconds=None)
                _armed = False
            except ScoringTimeout:
                _armed, correct, timed_out = False, False, True
            except Exception:  # noqa: BLE001 - math-verify swallows most errors; anything left counts wrong
                correct = False
            finally:
                _armed = False
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            results.append((bool(correct), extracted, timed_out))
    finally:
        if use_alarm:
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
            if pending[0] > 0:
                signal.setitimer(signal.ITIMER_REAL, max(pending[0] - (time.monotonic() - started), 1e-3), pending[1])
    return results


def warm_up() -> None:
    """Import and exercise math-verify once (regexes, the LaTeX grammar, sympy), so a worker's
    first item is not charged seconds of start-up against its timeout."""
    score_item("\\frac{1}{2}", "math", ["$\\boxed{0.5}$", "(1, 2]"], timeout=60.0)


def _worker(conn) -> None:
    """Worker loop: import once, then score (task_id, gold, kind, responses, timeout) messages."""
    try:
        warm_up()
        conn.send(("ready",))
    except Exception as err:  # noqa: BLE001 - report the import failure to the parent
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        task_id, gold, kind, responses, timeout = task
        conn.send(("done", task_id, score_item(gold, kind, responses, timeout)))


# --- the pool ---------------------------------------------------------------------------------
class _Worker:
    def __init__(self, ctx, target):
        self.target = target
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.task: tuple[int, float] | None = None  # (task id, kill deadline)

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _run_pool(tasks: list[tuple], workers: int, timeout: float, target=_worker) -> list[list[tuple]]:
    """Score every task (gold, kind, responses) in `workers` spawned processes running `target`
    (the worker loop; tests swap in one that hangs or dies), one item per message."""
    ctx = mp.get_context("spawn")
    results: list[list[tuple] | None] = [None] * len(tasks)
    pending = deque(range(len(tasks)))
    pool = [_Worker(ctx, target) for _ in range(min(workers, len(tasks)))]
    try:
        while pending or any(w.task for w in pool):
            for w in pool:
                if w.ready and w.task is None and pending:
                    task_id = pending.popleft()
                    gold, kind, responses = tasks[task_id]
                    w.conn.send((task_id, gold, kind, responses, timeout))
                    w.task = (task_id, time.monotonic() + timeout * len(responses) + KILL_GRACE_S)
            deadlines = [w.task[1] for w in pool if w.task]
            wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for conn in wait([w.conn for w in pool], timeout=wait_s):
                w = next(w for w in pool if w.conn is conn)
                try:
                    message = conn.recv()
                except EOFError:  # the worker died (crash, out of memory): its item counts as timed out
                    message = ("died",)
                if message[0] == "ready":
                    w.ready = True
                elif message[0] == "error":
                    raise RuntimeError(f"scoring worker failed to start: {message[1]}")
                elif message[0] == "done":
                    results[message[1]] = message[2]
                    w.task = None
                elif message[0] == "died":
                    _replace(pool, w, ctx, results, tasks)
            now = time.monotonic()
            for w in list(pool):
                if w.task and now > w.task[1]:
                    _replace(pool, w, ctx, results, tasks)
    finally:
        for w in pool:
            w.stop(kill=w.task is not None)
    return results  # type: ignore[return-value]


def _replace(pool: list[_Worker], w: _Worker, ctx, results: list, tasks: list) -> None:
    """Kill a stuck or dead worker, mark its item timed out, start a fresh one in its place."""
    if w.task is None and not w.ready:
        raise RuntimeError("scoring worker exited before it was ready (a script that scores must guard its "
                           "top level with `if __name__ == '__main__':`, or pass workers=0)")
    if w.task is not None:
        task_id = w.task[0]
        results[task_id] = [(False, None, True)] * len(tasks[task_id][2])
        w.task = None
    w.stop(kill=True)
    pool[pool.index(w)] = _Worker(ctx, w.target)


# --- entry point ------------------------------------------------------------------------------
def score_responses(items: list[Item], responses: list[tuple[int, str]], *, workers: int | None = None,
                    timeout: float = 5.0) -> Report:
    """Score (item index, response) pairs; several pairs per index are several samples. `workers`:
    scoring processes (default: the CPU count; 0 scores in this process, with alarms only on the
    main thread). Items without responses are left out of the metrics and counted as `missing`."""
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    by_index = {item.index: item for item in items}
    samples: dict[int, list[str]] = {}
    for position, (index, text) in enumerate(responses):
        if index not in by_index:
            span = f"{min(by_index)}..{max(by_index)}" if by_index else "none"
            raise ValueError(f"response {position}: index {index} is not an item of the benchmark (items {span})")
        samples.setdefault(index, []).append(text)
    scored = [item for item in items if item.index in samples]
    tasks = [(item.gold, item.kind, samples[item.index]) for item in scored]
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers == 0 or not tasks:
        main = threading.current_thread() is threading.main_thread()
        outcomes = [score_item(*task, timeout, use_alarm=main) for task in tasks]
    else:
        outcomes = _run_pool(tasks, workers, timeout)
    per_item = [{"index": item.index, "gold": item.gold, "samples": len(result),
                 "correct": [r[0] for r in result], "extracted": [r[1] for r in result],
                 "timed_out": [r[2] for r in result]}
                for item, result in zip(scored, outcomes)]
    return Report.from_items(per_item, missing=len(items) - len(scored))
