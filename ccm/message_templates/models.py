from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ccm.db import Base, utcnow
from ccm.ids import new_id


class MessageTemplate(Base):
    """A template's identity and its editable draft. Sends use published versions only."""

    __tablename__ = "message_template"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("tpl"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    default_locale: Mapped[str] = mapped_column(String(35), default="en")
    variables: Mapped[list[Any]] = mapped_column(default=list)
    variants: Mapped[list[Any]] = mapped_column(default=list)
    latest_version: Mapped[int | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TemplateVersion(Base):
    """An immutable, numbered snapshot of a template, including the layouts and partials it uses."""

    __tablename__ = "template_version"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("tv"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    template_id: Mapped[str] = mapped_column(ForeignKey("message_template.id", ondelete="CASCADE"))
    version: Mapped[int]
    category: Mapped[str] = mapped_column(String(20))
    default_locale: Mapped[str] = mapped_column(String(35))
    variables: Mapped[list[Any]]
    variants: Mapped[list[Any]]
    snippets: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Snippet(Base):
    """A layout or partial (``layouts/base.html``, ``partials/footer.html``) templates may extend
    or include. Publishing a template copies the snippets it uses into the version."""

    __tablename__ = "template_snippet"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("snp"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
