"""Domain errors shared by the API and the CLI. The API maps them to ``{"error": {"code", "message"}}``
with the status below; the CLI prints the message on one line and exits non-zero."""

from __future__ import annotations

import json
import re
import sys
import weakref

# an error message's length at most: a message names what the caller sent, and a 200 KB model name or job id was
# echoed whole (security audit); the longest SFAI writes (ten validation errors) stay well under it
MAX_MESSAGE_CHARS = 2000


def cut_message(message: str, most: int = MAX_MESSAGE_CHARS) -> str:
    """``message``, or its first ``most`` characters and how long it was."""
    if len(message) <= most:
        return message
    return f"{message[:most]}... (message cut: {len(message):,} characters)"


def shown(value: object) -> str:
    """A cell as an error message names it: ``'abc'``, ``-50.0``, ``an empty cell`` (never ``np.float64(nan)``)."""
    if hasattr(value, "item") and not isinstance(value, str):  # a numpy scalar: its Python value
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and not value.strip()):
        return "an empty cell"
    return repr(value)


# a UTF-16 surrogate escape: JSON allows a lone one, but it is no character, and text holding one cannot be written
# anywhere (UTF-8, SQLite, Arrow, CP-SAT names). Where the raw body has any (a pair is fine: an emoji), the parsed
# document is searched for a lone one; most bodies have none, and the scan costs a millisecond per 2 MB.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# ... and one written straight into the bytes (ED A0..BF ..): not UTF-8, yet ``json.loads`` decodes bytes with
# "surrogatepass" and lets it through
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")


class _RepeatedKey(Exception):
    pass


class _TooLarge(Exception):
    pass


_FLOAT_MAX = int(sys.float_info.max)


def _bounded_int(text: str) -> int:
    """A JSON integer, refused where no 64-bit float holds it: every SFAI number is read as one at last, and a
    400-digit integer (valid JSON) had raised OverflowError there, a 500 (security audit)."""
    value = int(text)
    if len(text) > 300 and abs(value) > _FLOAT_MAX:
        raise _TooLarge(text[:12])
    return value



def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """An object hook that refuses a name given twice in one object (``json`` would silently keep the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _RepeatedKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj


def parse_json(raw: bytes | str, what: str = "the body", *, unique_keys: bool = False) -> object:
    """``json.loads`` that answers every unreadable document with :class:`InvalidInput`: bad syntax, bad UTF-8,
    nesting deeper than the parser's recursion limit (which ``json`` raises as ``RecursionError``), or a string
    holding a lone surrogate (escaped such as ``"\\ud800"``, or encoded in the bytes). With ``unique_keys``, an
    object naming a key twice is refused too (rows of data: which of the two values is true?)."""
    try:
        doc = json.loads(raw, object_pairs_hook=_unique_keys if unique_keys else None, parse_int=_bounded_int)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply to read as JSON") from None
    except _RepeatedKey as e:
        raise InvalidInput(f"{what} names the key {e.args[0]!r} twice in one object") from None
    except _TooLarge as e:
        raise InvalidInput(f"{what} holds a number ({e.args[0]}...) beyond the range of a 64-bit float") from None
    except ValueError:  # Python's limit on integer digits (4,300): no reading or id has that many
        raise InvalidInput(f"{what} holds a number with more than 4,300 digits") from None
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if (_SURROGATE_ESCAPE.search(data) or _SURROGATE_BYTES.search(data)) and _has_surrogate(doc):
        raise InvalidInput(f"{what} holds a lone UTF-16 surrogate (such as the escape \\ud800), which is not text")
    return doc


INLINE_JSON_BYTES = 64 * 1024  # bodies up to this are parsed on the event loop (well under a millisecond)


async def parse_json_off_loop(raw: bytes, what: str = "the body", *, unique_keys: bool = False,
                              then=None) -> object:  # noqa: ANN001 - then: doc -> value, run beside the parse
    """:func:`parse_json` (and ``then`` on its document), in a worker thread for a body over ``INLINE_JSON_BYTES``:
    Python's parser with its object hook reads about 10 MB a second, so a 90-MB body held the event loop, and every
    tenant's calls and /healthz with it, for 7 s (performance audit)."""
    def read() -> object:
        doc = parse_json(raw, what, unique_keys=unique_keys)
        return doc if then is None else then(doc)

    if len(raw) <= INLINE_JSON_BYTES:
        return read()
    from starlette.concurrency import run_in_threadpool

    budget = _budget()
    taken = await budget.take(len(raw))
    try:
        return await run_in_threadpool(read)
    finally:
        await budget.give(taken)


# the bytes of JSON bodies being parsed at once in a process: each takes about 6 x its size in memory while it is
# read, so twenty 7.9-MB bodies at once peaked at 3.8 GB (review), four 87-MB ones at 1.5 GB (performance audit);
# the others wait their turn, and a body bigger than this is read alone
PARSE_BUDGET_BYTES = 32 * 1024 * 1024


class _Budget:
    def __init__(self, total: int) -> None:
        import asyncio

        self.total, self.used = total, 0
        self.changed = asyncio.Condition()

    async def take(self, n: int) -> int:
        n = min(n, self.total)
        async with self.changed:
            await self.changed.wait_for(lambda: self.used + n <= self.total)
            self.used += n
        return n

    async def give(self, n: int) -> None:
        async with self.changed:
            self.used -= n
            self.changed.notify_all()


_budgets: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> its budget


def _budget() -> _Budget:
    import asyncio

    loop = asyncio.get_running_loop()
    budget = _budgets.get(loop)
    if budget is None or budget.total != PARSE_BUDGET_BYTES:
        budget = _budgets[loop] = _Budget(PARSE_BUDGET_BYTES)
    return budget


def _has_surrogate(doc: object) -> bool:
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= ch <= "\udfff" for ch in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class SfaiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}  # sent with the error response (e.g. Retry-After)


class InvalidInput(SfaiError):
    status = 422
    code = "invalid_input"


class NotFound(SfaiError):
    status = 404
    code = "not_found"


class Conflict(SfaiError):
    status = 409
    code = "conflict"


class OperatorManaged(Conflict):
    """A tenant admin's change to a subscription whose terms the SFAI operator set."""

    code = "managed_by_operator"


class Unauthenticated(SfaiError):
    status = 401
    code = "unauthenticated"


class Forbidden(SfaiError):
    status = 403
    code = "forbidden"


class NotSubscribed(Forbidden):
    code = "not_subscribed"


class PayloadTooLarge(SfaiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(SfaiError):
    status = 415
    code = "unsupported_media_type"


class TooManyRequests(SfaiError):
    """429 with ``Retry-After``: the caller may try again in ``retry_after_s`` seconds."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        self.retry_after_s = max(1, int(-(-retry_after_s // 1)))  # whole seconds, rounded up
        super().__init__(message, code=code, headers={"Retry-After": str(self.retry_after_s)})


class QuotaExceeded(TooManyRequests):
    code = "quota_exceeded"


class RateLimited(TooManyRequests):
    code = "rate_limited"


class Unavailable(SfaiError):
    status = 503
    code = "unavailable"


# a whole API key in a path (DELETE /v1/apikeys/<the key>, pasted from a leak report): its secret would stay three
# years in the append-only usage log, or in the server log; the id is kept, the secret is not
_KEY_IN_TEXT = re.compile(r"(sfai_k[0-9A-Za-z]{1,32})_[^/?#\s]+")


def redact_keys(text: str) -> str:
    """``text`` with the secret of every API key in it replaced by ``***`` (every path SFAI logs goes through it)."""
    return _KEY_IN_TEXT.sub(r"\1_***", text) if "sfai_" in text else text
