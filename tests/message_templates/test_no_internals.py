"""End to end: a published template never delivers a function, class, module or address of the host.

Each source of the corpus is saved, published and sent through the API with the worker running,
once as the HTML part and once as the text part (autoescape on, then off). Whatever the save-time
checks refuse is safe; everything else must end failed with a render error, the outbox holding
nothing of it.
"""

from __future__ import annotations

import email
import email.policy

from tests.support.api import wait_for
from tests.support.factories import put_profile, template_body

MACRO = "{% macro m() %}x{% endmacro %}"
CALLER = "{% macro m() %}{{ caller is defined }}{{ PRINT }}{% endmacro %}{% call m() %}y{% endcall %}"

CORPUS = [
    # Functions and classes, through every filter that makes text.
    '{{ "%s"|format(range) }}',
    "{{ range|string }}",
    "{{ dict|string }}",
    "{{ namespace|string }}",
    "{{ range|pprint }}",
    "{{ range|e }}",
    "{{ range|forceescape }}",
    "{{ range|safe }}",
    "{{ range|title }}",
    "{{ range|lower }}",
    "{{ range|upper }}",
    "{{ range|capitalize }}",
    "{{ range|trim }}",
    "{{ range|center }}",
    "{{ range|indent }}",
    "{{ range|truncate }}",
    "{{ range|wordwrap }}",
    "{{ range|striptags }}",
    "{{ range|urlize }}",
    "{{ 'a'|replace('a', range) }}",
    "{{ 'x'|indent(range) }}",
    "{{ [range]|join(', ') }}",
    "{{ [1, 2]|join(dict) }}",
    "{{ ['a']|join(attribute='upper') }}",
    "{{ {'a': range}|urlencode }}",
    "{{ {'a': dict}|xmlattr }}",
    "{{ {'a': range}|tojson }}",
    "{% filter format(range) %}%s{% endfilter %}",
    "{{ [range]|map('string')|join }}",
    # Inside containers, whose text is the repr of everything in them.
    "{{ [namespace] }}",
    "{{ [dict] }}",
    "{{ (range,) }}",
    "{{ {'f': range} }}",
    "{{ {range: 1} }}",
    "{{ dict(a=range) }}",
    "{{ [[[range]]] }}",
    "{{ ['text'.upper] }}",
    "{{ [dict.fromkeys] }}",
    "{{ [range]|batch(1)|list }}",
    "{{ [range]|sort|first|string }}",
    # Concatenation and printf-style formatting.
    "{{ range ~ '' }}",
    "{{ 'x' ~ [dict] ~ 'y' }}",
    "{{ '%s' % range }}",
    "{{ '%s and %s' % (1, dict) }}",
    "{{ '%(a)s' % {'a': namespace} }}",
    "{{ '%s' % [range] }}",
    "{{ '%r' % 'text' }}",
    "{{ '%a'|format(1) }}",
    # Jinja's own objects: namespaces, loops, macros, callers, undefined values, Markup.
    "{{ namespace() }}",
    "{{ namespace(a=1)|string }}",
    "{% set ns = namespace(f=range) %}{{ ns.f|string }}",
    "{% for i in [1] %}{{ [loop] }}{% endfor %}",
    "{% for i in [1] %}{{ loop|string }}{% endfor %}",
    "{% for i in [1] %}{{ loop.cycle|string }}{% endfor %}",
    "{% for i in [1] %}{{ 'a' ~ loop }}{% endfor %}",
    MACRO + "{{ [m] }}",
    MACRO + "{{ m|string }}",
    MACRO + "{{ '%s' % m }}",
    CALLER.replace("PRINT", "caller|string"),
    CALLER.replace("PRINT", "[caller]"),
    "{{ [profile.nickname] }}",
    "{{ {'a': profile.nickname} }}",
    "{{ profile.nickname|pprint }}",
    "{{ ('x'|safe).join([range]) }}",
    "{{ ('x'|safe).escape(dict) }}",
    "{{ ('%s'|safe) % dict }}",
    # Lazy sequences and other values whose text is a Python repr.
    "{{ range(3) }}",
    "{{ [1, 2]|map('string') }}",
    "{{ [2, 1]|reverse }}",
    "{{ {'a': 1}.items() }}",
    "{{ {'a': 1}.keys() }}",
    "{{ profile|items|string }}",
    "{{ 'x'.encode() }}",
    "{{ (1).to_bytes(1, 'big') }}",
    # Error messages that would quote a repr.
    "{{ {}[range] }}",
    "{% for i in [1] %}{{ loop.nothing }}{% endfor %}",
    "{% include [range] %}",
    # Refused when saved.
    "{{ self }}",
    "{{ [self] }}",
    "{{ lipsum }}",
    "{{ [cycler] }}",
]

INTERNALS = (
    "<function",
    "<class",
    "<module",
    "<built-in",
    "<bound method",
    "object at 0x",
    " at 0x",
    "0x7f",
    "jinja2.",
    "markupsafe",
    "Namespace",
    "LoopContext",
    "Macro",
    "Undefined",
    "TemplateReference",
    "Markup(",
    "<generator",
    "range(",
    "dict_items",
    "dict_keys",
    "iterator",
    "b'",
)


def finished(api, message_id):
    def probe():
        body = api.get(f"/v1/messages/{message_id}").json
        return body if body["status"] in ("delivered", "sent", "failed", "skipped") else None

    return wait_for(probe, timeout=30, message=f"message {message_id} to finish")


def create_and_publish(api, key, variant) -> bool:
    """True once published; False if saving or publishing refused the source."""
    created = api.post("/v1/templates", json=template_body(key, variables=[], variants=[variant]))
    if created.status_code == 422:
        return False
    assert created.status_code == 201, created.json
    published = api.post(f"/v1/templates/{key}/publish")
    assert published.status_code in (201, 422), published.json
    return published.status_code == 201


def send(api, key) -> str:
    accepted = api.post("/v1/messages", json={"to": {"external_id": "u1"}, "template": key})
    assert accepted.status_code == 202, accepted.json
    return accepted.json["id"]


def delivered_text(api, message_id) -> str:
    """Every outbox entry of the message: its raw bytes and each part decoded (a part may be base64)."""
    texts = []
    for item in api.get(f"/v1/outbox?message_id={message_id}").json["items"]:
        parsed = email.message_from_string(item["raw"], policy=email.policy.default)
        texts += [item["raw"], *(part.get_content() for part in parsed.walk() if not part.is_multipart())]
    return "\n".join(texts)


def leaks(text: str) -> list[str]:
    return [internal for internal in INTERNALS if internal in text]


def test_no_published_template_delivers_python_internals(api, worker):
    put_profile(api, "u1")
    sent: dict[str, tuple[str, str]] = {}
    for index, source in enumerate(CORPUS):
        for part in ("html", "text"):
            variant = {"channel": "email", "subject": "Corpus", "html": source if part == "html" else "<p>ok</p>"}
            if part == "text":
                variant["text"] = source
            key = f"internals-{index}-{part}"
            if create_and_publish(api, key, variant):
                sent[send(api, key)] = (part, source)
    assert len(sent) >= 2 * (len(CORPUS) - 4)  # all but the four refused at save reach the renderer

    problems = []
    for message_id, (part, source) in sent.items():
        message = finished(api, message_id)
        raw = delivered_text(api, message_id)
        if leaks(raw) or message["status"] != "failed" or not message["reason"].startswith("render_error: "):
            problems.append((part, source, message["status"], message["reason"], leaks(raw)))
        elif leaks(message["reason"]):
            problems.append((part, source, "reason shows", message["reason"], leaks(message["reason"])))
    assert problems == [], "\n".join(map(repr, problems))
    assert api.get("/v1/outbox?limit=500").json["items"] == []


def test_plain_data_still_prints_through_the_api(api, worker):
    put_profile(api, "u1")
    source = (
        "{{ [1, 'a', none, true, 1.5] }} {{ {'k': ('v', 2)} }} {{ [{'a': 1}]|groupby('a') }} "
        "{{ ['<b>'|safe, '<i>']|join(' ') }} {{ '%s-%05.1f' % ('x', 2.25) }} {{ range(3)|list }} "
        "{{ ['x'|safe] }} {{ 'x'|safe|pprint }}"
    )
    assert create_and_publish(
        api, "plain", {"channel": "email", "subject": "Plain", "html": "<p>ok</p>", "text": source}
    )
    message = finished(api, send(api, "plain"))
    assert message["status"] == "delivered", message["reason"]
    assert (
        "[1, 'a', None, True, 1.5] {'k': ('v', 2)} [(1, [{'a': 1}])] <b> <i> x-002.2 [0, 1, 2] ['x'] 'x'"
        in delivered_text(api, message["id"])
    )
