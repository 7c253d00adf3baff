from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from flask import Blueprint, current_app

from ccm.access import Permission
from ccm.audit.api import audit
from ccm.audit.service import Target
from ccm.auth.api import current_workspace_id, require_api_key
from ccm.channels import accounts, removal
from ccm.channels.models import ProviderAccount
from ccm.channels.schemas import ProviderCheckOut, ProviderIn, ProviderList, ProviderOut, ProviderPatch
from ccm.db import after_commit, end_transaction
from ccm.http import db_session, endpoint, permissions
from ccm.validation import id_field

if TYPE_CHECKING:
    from ccm.runtime import Runtime

AccountId = Annotated[str, id_field("prv")]

bp = Blueprint("providers", __name__, url_prefix="/v1/providers")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.ADMIN, reads=Permission.ADMIN)


def _runtime() -> Runtime:
    return current_app.extensions["ccm"]


def _forget_after_commit() -> None:
    """Drop this process's cached provider lists once the change is committed (others refresh
    within ``CACHE_SECONDS``); dropping them before, a concurrent send would cache the old list."""
    workspace_id, providers = current_workspace_id(), _runtime().providers
    after_commit(db_session(), lambda: providers.forget(workspace_id))


def _out(account: ProviderAccount) -> ProviderOut:
    return ProviderOut(
        id=account.id,
        kind=account.kind,
        channel=account.channel,
        label=account.label,
        priority=account.priority,
        enabled=account.enabled,
        config=accounts.public_config(account, _runtime().secret_box),
        created_at=account.created_at,
        updated_at=account.updated_at,
    )


@endpoint(
    bp,
    "",
    method="POST",
    body=ProviderIn,
    responses={201: ProviderOut},
    errors=(409,),
    summary="Add a provider account (secrets are encrypted at rest and never returned)",
)
def create_provider(body: ProviderIn) -> tuple[ProviderOut, int]:
    account = accounts.create_account(
        session=db_session(), box=_runtime().secret_box, workspace_id=current_workspace_id(), data=body
    )
    _forget_after_commit()
    out = _out(account)
    audit("provider.create", Target("provider", account.id), after=out.model_dump(mode="json"))
    return out, 201


@endpoint(bp, "", method="GET", responses={200: ProviderList}, summary="List provider accounts")
def list_providers() -> ProviderList:
    items = accounts.list_accounts(session=db_session(), workspace_id=current_workspace_id())
    return ProviderList(items=[_out(account) for account in items])


@endpoint(bp, "/<account_id>", method="GET", responses={200: ProviderOut}, summary="Read a provider account")
def get_provider(account_id: AccountId) -> ProviderOut:
    return _out(accounts.get_account(session=db_session(), workspace_id=current_workspace_id(), account_id=account_id))


@endpoint(
    bp,
    "/<account_id>",
    method="PATCH",
    body=ProviderPatch,
    responses={200: ProviderOut},
    errors=(409,),
    summary="Change a provider account; config is merged and secrets left out keep their value",
)
def patch_provider(account_id: AccountId, body: ProviderPatch) -> ProviderOut:
    before = get_provider(account_id).model_dump(mode="json")
    account = accounts.update_account(
        session=db_session(),
        box=_runtime().secret_box,
        workspace_id=current_workspace_id(),
        account_id=account_id,
        data=body,
    )
    _forget_after_commit()
    out = _out(account)
    audit("provider.update", Target("provider", account_id), before=before, after=out.model_dump(mode="json"))
    return out


@endpoint(
    bp,
    "/<account_id>",
    method="DELETE",
    responses={204: None},
    errors=(409,),
    summary="Remove a provider account; 409 when it is the last enabled one of its channel and messages wait to be "
    "sent (disable it first)",
)
def delete_provider(account_id: AccountId) -> tuple[None, int]:
    before = get_provider(account_id).model_dump(mode="json")
    removal.delete_account(
        session=db_session(),
        workspace_id=current_workspace_id(),
        account_id=account_id,
        default_channels=_runtime().providers.default_channels,
    )
    _forget_after_commit()
    audit("provider.delete", Target("provider", account_id), before=before)
    return None, 204


@endpoint(
    bp,
    "/<account_id>/check",
    method="POST",
    responses={200: ProviderCheckOut},
    summary="Test the account's credentials against the provider",
)
def check_provider(account_id: AccountId) -> ProviderCheckOut:
    account = accounts.get_account(session=db_session(), workspace_id=current_workspace_id(), account_id=account_id)
    end_transaction(db_session())  # the check is a network call: no lock may be held during it
    error = accounts.check_account(box=_runtime().secret_box, db=_runtime().db, account=account)
    return ProviderCheckOut(ok=error is None, error=error)
