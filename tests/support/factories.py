"""Request bodies for the common objects, with sensible defaults."""

from __future__ import annotations

from typing import Any

WELCOME_HTML = (
    "<html><head><style>p { color: #333; }</style></head>"
    "<body><h1>Welcome, {{ first_name }}!</h1><p>Your plan: {{ plan }}.</p>"
    '<p><a href="https://example.com/start">Get started</a></p></body></html>'
)


def template_body(key: str = "welcome", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "category": "transactional",
        "variables": ["first_name", "plan"],
        "variants": [
            {"channel": "email", "locale": "en", "subject": "Welcome, {{ first_name }}", "html": WELCOME_HTML},
            {
                "channel": "email",
                "locale": "es",
                "subject": "Bienvenido, {{ first_name }}",
                "html": "<p>Hola {{ first_name }}, plan {{ plan }}.</p>",
            },
            {"channel": "sms", "locale": "en", "body": "Welcome {{ first_name }}!"},
        ],
    }
    body.update(overrides)
    return body


def publish_template(api: Any, key: str = "welcome", **overrides: Any) -> int:
    created = api.post("/v1/templates", json=template_body(key, **overrides))
    assert created.status_code == 201, created.json
    published = api.post(f"/v1/templates/{key}/publish")
    assert published.status_code == 201, published.json
    return published.json["version"]


def put_profile(api: Any, external_id: str = "u1", **fields: Any) -> dict[str, Any]:
    body = {"email": f"{external_id}@example.com", "attributes": {"first_name": "Ada", "plan": "pro"}, **fields}
    response = api.put(f"/v1/profiles/{external_id}", json=body)
    assert response.status_code in (200, 201), response.json
    return response.json
