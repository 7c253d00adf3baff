"""One owner of a message's status: no module of ``ccm`` but :mod:`ccm.messages.state` writes it.

The scan reads the source (``ast``) and finds every way code writes the column: a Core or ORM
``update(...)`` whose ``.values(...)`` or parameters set ``status``, a message inserted with a
status other than ``queued``, ``<message>.status = ...`` on an ORM object, and raw SQL. The
second half proves the scan on the nine writers the code had before the owner existed."""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import ccm

OWNER = Path(ccm.__file__).parent / "messages" / "state.py"
MODELS = frozenset({"Message"})
_OBJECT_NAME = re.compile(r"^(m|msg|.*message)$", re.IGNORECASE)
_RAW_SQL = re.compile(r"\bupdate\s+message\s+set\b[^;]*\bstatus\b", re.IGNORECASE | re.DOTALL)


class _Scan:
    """The status writes in one module's source."""

    def __init__(self, source: str) -> None:
        self.tree = ast.parse(source)
        self.models = set(MODELS)
        self.tables: set[str] = set()
        self.bound: dict[str, ast.expr] = {}
        self.with_status: dict[str, ast.expr] = {}
        """Names of dicts given a ``status`` (to pass to ``.values(...)``), with the value."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom):
                self.models |= {alias.asname for alias in node.names if alias.name in MODELS and alias.asname}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind(target, node.value)
            self._note_status_key(node)

    def _note_status_key(self, node: ast.AST) -> None:
        """``d = {"status": ...}``, ``d["status"] = ...`` and ``d.update(status=...)``."""
        if isinstance(node, ast.Assign):
            for target in node.targets:
                key = target.slice if isinstance(target, ast.Subscript) else None
                if isinstance(key, ast.Constant) and key.value == "status" and isinstance(target.value, ast.Name):
                    self.with_status[target.value.id] = node.value
                status = next(_params_status(node.value), None)
                if isinstance(target, ast.Name) and status is not None:
                    self.with_status[target.id] = status
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update":
            status = _status_in(node)
            if isinstance(node.func.value, ast.Name) and status is not None:
                self.with_status[node.func.value.id] = status

    def _bind(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            for one, other in zip(target.elts, value.elts, strict=True):
                self._bind(one, other)
        elif isinstance(target, ast.Name):
            self.bound[target.id] = value
            if self.is_message(value):
                self.tables.add(target.id)

    def is_message(self, node: ast.expr) -> bool:
        """``Message``, ``Message.__table__`` or a name bound to either."""
        if isinstance(node, ast.Name):
            return node.id in self.models or node.id in self.tables
        return isinstance(node, ast.Attribute) and node.attr == "__table__" and self.is_message(node.value)

    def statement(self, node: ast.expr, seen: frozenset[str] = frozenset()) -> str | None:
        """``update`` or ``insert`` when ``node`` is (built from) such a statement on the message table."""
        while True:
            if isinstance(node, ast.Name) and node.id in self.bound and node.id not in seen:
                seen, node = seen | {node.id}, self.bound[node.id]
            elif isinstance(node, ast.Call) and _name(node.func) in ("update", "insert"):
                return _name(node.func) if node.args and self.is_message(node.args[0]) else None
            elif isinstance(node, ast.Call) and "insert" in (_name(node.func) or ""):
                return "insert" if any(self.is_message(arg) for arg in node.args) else None
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                node = node.func.value
            elif isinstance(node, ast.Attribute):
                node = node.value
            else:
                return None

    def _status_passed(self, call: ast.Call) -> ast.expr | None:
        """The status in a dict variable given to ``.values(d)`` or ``.values(**d)``."""
        passed = [*call.args, *(keyword.value for keyword in call.keywords if keyword.arg is None)]
        for arg in passed:
            if isinstance(arg, ast.Name) and arg.id in self.with_status:
                return self.with_status[arg.id]
        return None

    def writes(self) -> Iterator[tuple[int, str]]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                yield from self._call(node)
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in _flattened(targets):
                    if _is_object_status(target):
                        yield node.lineno, f"assigns {ast.unparse(target)}"
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _RAW_SQL.search(node.value):
                yield node.lineno, "raw SQL sets message.status"

    def _call(self, node: ast.Call) -> Iterator[tuple[int, str]]:
        if isinstance(node.func, ast.Attribute) and node.func.attr == "values":
            kind = self.statement(node.func.value)
            status = _status_in(node) or self._status_passed(node)
            if kind and status is not None and (kind == "update" or not _is_queued(status)):
                yield node.lineno, f"{kind}(message).values(status={ast.unparse(status)})"
        if self.is_message(node.func):
            status = _status_in(node)
            if status is not None and not _is_queued(status):
                yield node.lineno, f"Message(status={ast.unparse(status)})"
        if _name(node.func) == "setattr" and len(node.args) == 3:
            target, attribute = node.args[0], node.args[1]
            if isinstance(attribute, ast.Constant) and attribute.value == "status" and _is_object_name(target):
                yield node.lineno, f"setattr({ast.unparse(target)}, 'status', ...)"
        kinds = [self.statement(arg) for arg in node.args[:1]]
        if kinds and kinds[0]:
            for params in node.args[1:]:
                for status in _params_status(params):
                    if kinds[0] == "update" or not _is_queued(status):
                        yield node.lineno, f"executes {kinds[0]}(message) with status={ast.unparse(status)}"


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _flattened(targets: list[ast.expr]) -> Iterator[ast.expr]:
    for target in targets:
        if isinstance(target, (ast.Tuple, ast.List)):
            yield from _flattened(list(target.elts))
        else:
            yield target


def _is_object_name(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and bool(_OBJECT_NAME.match(node.id))


def _is_object_status(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "status" and _is_object_name(node.value)


def _status_in(call: ast.Call) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "status":
            return keyword.value
    for arg in call.args:
        found = list(_params_status(arg))
        if found:
            return found[0]
    return None


def _params_status(node: ast.expr) -> Iterator[ast.expr]:
    """``status`` in a parameter dict (literal or ``dict(...)``), or in a list of them."""
    if isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "status":
                yield value
    elif isinstance(node, ast.Call) and _name(node.func) == "dict":
        yield from (keyword.value for keyword in node.keywords if keyword.arg == "status")
    elif isinstance(node, (ast.List, ast.Tuple)):
        for element in node.elts:
            yield from _params_status(element)


def _is_queued(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "QUEUED") or (
        isinstance(node, ast.Constant) and node.value == "queued"
    )


def status_writes(source: str) -> list[tuple[int, str]]:
    return sorted(set(_Scan(textwrap.dedent(source)).writes()))


def test_only_the_lifecycle_owner_writes_a_message_status():
    root = Path(ccm.__file__).parent
    found = {
        f"{path.relative_to(root.parent)}:{line}": what
        for path in sorted(root.rglob("*.py"))
        if path != OWNER
        for line, what in status_writes(path.read_text())
    }
    assert found == {}, "write a message's status through ccm.messages.state"


def test_the_owner_itself_is_seen_writing():
    """The scan is not blind to the way the owner writes (a prebuilt statement's ``.values``)."""
    assert status_writes(OWNER.read_text())


# The nine writers of the status before ccm.messages.state, as they read then (abridged to the write).
FORMER_WRITERS = {
    "delivery._CLAIM": """
        _m, _a = Message.__table__, DeliveryAttempt.__table__
        _CLAIM = (
            update(_m)
            .where(_m.c.id == bindparam("b_id"), _m.c.status == bindparam("b_status"))
            .values(status=MessageStatus.SENDING, claim_token=bindparam("b_new_token"))
        )
    """,
    "outcomes._FINISH_OWNED": """
        _m, _a = Message.__table__, DeliveryAttempt.__table__
        _FINISH_OWNED = (
            update(_m)
            .where(_m.c.id == bindparam("b_id"), _m.c.claim_token == bindparam("b_token"))
            .values(
                status=case((bindparam("b_status") == MessageStatus.SENT, _m.c.status), else_=bindparam("b_status")),
                reason=bindparam("b_reason"),
            )
        )
    """,
    "outcomes._fall_back": """
        _m, _a = Message.__table__, DeliveryAttempt.__table__
        def _fall_back(runtime, session, claimed, message):
            requeued = session.execute(
                update(_m)
                .where(_m.c.id == claimed.message_id, _m.c.claim_token == claimed.token)
                .values(status=MessageStatus.QUEUED, claim_token=None, next_attempt_at=None, updated_at=utcnow())
            )
    """,
    "outcomes.release": """
        _m, _a = Message.__table__, DeliveryAttempt.__table__
        def release(session, claimed):
            now = utcnow()
            session.execute(
                update(_m)
                .where(_m.c.id == claimed.message_id, _m.c.claim_token == claimed.token)
                .values(status=MessageStatus.RETRYING, claim_token=None, next_attempt_at=now, updated_at=now)
            )
    """,
    "outcomes.defer": """
        _m, _a = Message.__table__, DeliveryAttempt.__table__
        def defer(runtime, session, pending, deferred):
            deferred_now = session.execute(
                update(_m)
                .where(_m.c.id == pending.id, *_unchanged(pending))
                .values(status=MessageStatus.QUEUED, reason=deferred.reason, next_attempt_at=deferred.until)
            )
    """,
    "outcomes.finish_message": """
        _m, _a = Message.__table__, DeliveryAttempt.__table__
        def finish_message(session, pending, status, reason, **values):
            now = utcnow()
            ended = session.execute(
                update(_m)
                .where(_m.c.id == pending.id, *_unchanged(pending))
                .values(status=status, reason=reason, finished_at=now, updated_at=now, next_attempt_at=None, **values)
            )
    """,
    "outcomes._retry_or_give_up": """
        _m, _a = Message.__table__, DeliveryAttempt.__table__
        def _retry_or_give_up(runtime, session, claimed, hops, provider, message, retry_after, pin):
            retried = session.execute(
                update(_m)
                .where(_m.c.id == claimed.message_id, _m.c.claim_token == claimed.token)
                .values(status=MessageStatus.RETRYING, reason=message, next_attempt_at=retry_at, claim_token=None)
            )
    """,
    "service.cancel_pending_messages": """
        from ccm.messages.models import PENDING_STATUSES, Message, MessageStatus
        def cancel_pending_messages(*, session, profile_id, reason):
            now = utcnow()
            result = session.execute(
                update(Message)
                .where(Message.profile_id == profile_id, Message.status.in_(PENDING_STATUSES))
                .values(status=MessageStatus.SKIPPED, reason=reason, finished_at=now, updated_at=now)
            )
    """,
    "engagement.status._move": """
        _m = Message.__table__
        def _move(session, message, status, reason):
            moved = session.execute(
                update(_m)
                .where(_m.c.id == message.id, _m.c.status.in_(OPEN))
                .values(status=status, reason=reason, updated_at=utcnow(), finished_at=utcnow())
            )
    """,
}
OTHER_WRITES = {
    "ORM attribute": "def end(message):\n    message.status = MessageStatus.SENT\n",
    "ORM tuple assignment": "def end(msg):\n    msg.status, msg.reason = 'failed', 'x'\n",
    "setattr": "def end(message):\n    setattr(message, 'status', 'sent')\n",
    "ORM insert, not queued": "session.add(Message(id='m', status=MessageStatus.SENT))\n",
    "Core insert, not queued": (
        "_message = Message.__table__\nsession.execute(insert(_message), dict(id='m', status='sent'))\n"
    ),
    "insert helper, not queued": (
        "_message = Message.__table__\n"
        "session.execute(insert_ignoring_conflicts(d, _message, _message.c.id), {'id': 'm', 'status': 'failed'})\n"
    ),
    "bulk ORM update": "session.execute(update(Message), [{'id': 'm', 'status': 'skipped'}])\n",
    "prebuilt statement": "_BASE = update(Message.__table__).where(x)\nSTMT = _BASE.values(status='sent')\n",
    "values from a dict": "values = {'reason': r}\nvalues['status'] = 'sent'\nupdate(Message).values(values)\n",
    "values from a dict, updated": "v = {}\nv.update(status='sent')\nupdate(Message).where(x).values(**v)\n",
    "aliased import": "from ccm.messages.models import Message as M\nupdate(M).values(status='sent')\n",
    "raw SQL": "session.execute(text('UPDATE message SET status = :s WHERE id = :id'))\n",
}
NOT_WRITES = {
    "a queued insert (the accept path)": (
        "_message = Message.__table__\n"
        "session.execute(insert_ignoring_conflicts(d, _message), dict(id='m', status=MessageStatus.QUEUED))\n"
        "session.add(Message(id='m', status=MessageStatus.QUEUED))\n"
    ),
    "another table's status": (
        "conversation.status = 'open'\n"
        "delivery.status, delivery.last_error = 'failed', 'x'\n"
        "session.execute(update(WebhookDelivery).values(status='failed'))\n"
    ),
    "reading the status": "select(_m.c.status).where(Message.status == 'sent')\nreplace(pending, claims=1)\n",
}


@pytest.mark.parametrize("name", sorted(FORMER_WRITERS))
def test_the_scan_catches_each_former_writer(name):
    assert status_writes(FORMER_WRITERS[name]), name


@pytest.mark.parametrize("name", sorted(OTHER_WRITES))
def test_the_scan_catches_other_ways_of_writing(name):
    assert status_writes(OTHER_WRITES[name]), name


@pytest.mark.parametrize("name", sorted(NOT_WRITES))
def test_the_scan_leaves_other_code_alone(name):
    assert status_writes(NOT_WRITES[name]) == []
