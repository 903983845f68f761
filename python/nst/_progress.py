"""The progress display of a run (stylize's `progress=`): tqdm when it is importable
(tqdm.auto in a notebook), else one line on stderr rewritten in place. Both show
iteration/total over all scales, iterations per second, the time left and the loss."""
import sys
import time


def in_notebook():
    """Whether this is a Jupyter kernel (IPython's ZMQ shell), where stderr is no terminal
    but a display is still wanted."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell"


def interactive():
    """Whether someone is watching: stderr or stdout is a terminal, or a notebook."""
    for stream in (sys.stderr, sys.stdout):
        try:
            if stream is not None and stream.isatty():
                return True
        except (AttributeError, ValueError):  # a replaced or closed stream
            pass
    return in_notebook()


def progress_display(progress):
    """The display for stylize's `progress` (None: when interactive()), or None for none."""
    if progress is None:
        progress = interactive()
    if not progress:
        return None
    try:
        if in_notebook():
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
    except ImportError:
        return LineDisplay(sys.stderr)
    return TqdmDisplay(tqdm)


class TqdmDisplay:
    def __init__(self, tqdm):
        self._tqdm = tqdm
        self._bar = None

    def update(self, report):
        if self._bar is None:  # opened at iteration 0, so that the set-up does not count as iterations
            self._bar = self._tqdm(total=report.run_iterations, desc="nst", unit="it", dynamic_ncols=True)
        if report.scales > 1:
            self._bar.set_description(f"nst {report.scale + 1}/{report.scales} ({report.size} px)", refresh=False)
        self._bar.set_postfix_str(f"loss={report.loss:.4e}", refresh=False)
        self._bar.update(report.run_iteration - self._bar.n)

    def close(self):
        if self._bar is not None:
            self._bar.close()


def duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class LineDisplay:
    """`nst: 120/500 [8.31 it/s, ETA 0:46] loss 1.2345e+05`, rewritten at most ten times a second."""

    def __init__(self, stream):
        self._stream = stream
        self._start = None  # (time, run_iteration) of the first report
        self._last = None
        self._shown = 0.0
        self._width = 0

    def update(self, report):
        now = time.monotonic()
        if self._start is None:
            self._start = (now, report.run_iteration)
        self._last = report
        if now - self._shown >= 0.1:
            self._show(report, now)

    def _show(self, report, now):
        done = report.run_iteration - self._start[1]
        elapsed = now - self._start[0]
        rate = done / elapsed if done > 0 and elapsed > 0 else 0.0
        left = duration((report.run_iterations - report.run_iteration) / rate) if rate > 0 else "?"
        scale = f" scale {report.scale + 1}/{report.scales}" if report.scales > 1 else ""
        line = (f"nst:{scale} {report.run_iteration}/{report.run_iterations} "
                f"[{rate:.2f} it/s, ETA {left}] loss {report.loss:.4e}")
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = len(line)
        self._shown = now

    def close(self):
        if self._last is not None:
            self._show(self._last, time.monotonic())
            self._stream.write("\n")
            self._stream.flush()
