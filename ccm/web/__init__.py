"""The web app: server-rendered pages for people (users), beside the /v1 API for systems (keys)."""
