"""Errors in the demo: a problem the user can fix (UserError) is one short sentence in a toast, anything else
one line naming its type (the traceback goes to the server log); and whether the request is still wanted."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable

log = logging.getLogger("cutcore.demo")


class UserError(Exception):
    """A problem the user can fix; `str(e)` is shown in the UI as it is."""


def to_gr_error(e: Exception, where: str = "handler") -> Exception:
    """The gr.Error to show for `e`: a UserError's own sentence, or a short line naming the type of any
    other exception (whose traceback goes to the server log only)."""
    import gradio as gr

    if isinstance(e, gr.Error):
        return e
    if isinstance(e, UserError):
        log.info("%s: %s", where, e)
        return gr.Error(str(e), title="Cannot do that", print_exception=False)
    log.error("unexpected error in %s", where, exc_info=e)
    return gr.Error(f"Something went wrong ({type(e).__name__}). The server log has the details.",
                    print_exception=False)


def error_text(e: Exception) -> str:
    """The one line a gr.Error from `to_gr_error` shows."""
    return str(getattr(e, "message", None) or e)


def user_errors(fn: Callable) -> Callable:
    """Turn UserError into gr.Error (shown as a toast), and any other exception into a short
    gr.Error naming its type, with the traceback going to the server log only. Works for plain
    functions and generator functions."""
    import inspect

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the point is to catch everything
                raise to_gr_error(e, fn.__name__) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            raise to_gr_error(e, fn.__name__) from None

    return wrapper


def event_alive() -> bool:
    """Inside a queued Gradio handler: False once Gradio has dropped the event running it (the client
    disconnected, closed the tab, or cancelled it). True outside Gradio or when it cannot tell.

    Gradio 6 stops feeding a generator whose client went away, but a plain function (or the thread
    a generator started) runs on: long handlers poll this and stop. It reads the queue's active jobs
    the way Gradio's own progress reporting does (`Queue.set_progress`)."""
    try:
        from gradio.context import LocalContext

        blocks = LocalContext.blocks.get(None)
        event_id = LocalContext.event_id.get(None)
        queue = getattr(blocks, "_queue", None)
        if blocks is None or not event_id or queue is None:
            return True
        for job in list(queue.active_jobs):
            for event in job or ():
                if event._id == event_id:
                    return bool(event.alive)
        return False  # no longer among the running events: cancelled (/cancel) or finished
    except Exception:  # noqa: BLE001 - Gradio internals changed: never cancel by mistake
        log.debug("cannot tell whether the client is still there", exc_info=True)
        return True
