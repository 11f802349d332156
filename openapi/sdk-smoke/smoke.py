"""Smoke test of the Python SDK generated from the committed document
(openapi-python-client) against a running server: sign up, log in, me,
refresh, create and list tasks, log out, and the 401 afterwards.

Usage: PYTHONPATH=.generated/python PORTCULLIS_URL=http://127.0.0.1:8080 python smoke.py
"""

from __future__ import annotations

import os
import random
import sys
import time
from http import HTTPStatus
from typing import NoReturn, TypeVar

from portcullis_client import AuthenticatedClient, Client
from portcullis_client.api.auth import log_in, log_out, refresh_tokens, sign_up
from portcullis_client.api.tasks import create_task, list_tasks, update_task
from portcullis_client.api.users import get_me
from portcullis_client.models import (
    Credentials,
    LogoutBody,
    LogoutScopeParam,
    NewTask,
    Problem,
    RefreshRequest,
    TaskBody,
    TaskPageBody,
    TaskUpdate,
    TokenPairBody,
    UserBody,
)
from portcullis_client.types import UNSET, Response

T = TypeVar("T")
U = TypeVar("U")


def fail(step: str, what: str) -> NoReturn:
    raise SystemExit(f"Python SDK smoke test failed at {step}: {what}")


def expect(step: str, response: Response[U], status: HTTPStatus, kind: type[T]) -> T:
    """The parsed body of `response`, which must have `status` and be a `kind`."""
    if response.status_code != status:
        fail(step, f"status {response.status_code}, expected {status.value}: {response.content!r}")
    parsed = response.parsed
    if not isinstance(parsed, kind):
        fail(step, f"body is {type(parsed).__name__}, expected {kind.__name__}")
    return parsed


def main() -> None:
    base_url = os.environ.get("PORTCULLIS_URL")
    if not base_url:
        fail("start", "PORTCULLIS_URL is not set")
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    email = f"py-sdk-{time.time_ns()}-{random.randrange(10**6)}@example.com"
    password = "correct horse battery staple 42"

    pair = expect(
        "signUp",
        sign_up.sync_detailed(client=anonymous, body=Credentials(email=email, password=password)),
        HTTPStatus.CREATED,
        TokenPairBody,
    )
    if pair.token_type != "Bearer" or pair.user.email != email:
        fail("signUp", "unexpected token pair")

    pair = expect(
        "logIn",
        log_in.sync_detailed(client=anonymous, body=Credentials(email=email, password=password)),
        HTTPStatus.OK,
        TokenPairBody,
    )
    problem = expect(
        "logIn with a wrong password",
        log_in.sync_detailed(client=anonymous, body=Credentials(email=email, password="not the password at all")),
        HTTPStatus.UNAUTHORIZED,
        Problem,
    )
    if problem.code != "invalid_credentials":
        fail("logIn with a wrong password", f"code {problem.code}")

    client = AuthenticatedClient(base_url=base_url, token=pair.access_token, raise_on_unexpected_status=True)
    me = expect("getMe", get_me.sync_detailed(client=client), HTTPStatus.OK, UserBody)
    if me.email != email or me.id != pair.user.id:
        fail("getMe", "not the signed-up user")

    refreshed = expect(
        "refreshTokens",
        refresh_tokens.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=pair.refresh_token)),
        HTTPStatus.OK,
        TokenPairBody,
    )
    if refreshed.refresh_token == pair.refresh_token:
        fail("refreshTokens", "the refresh token was not rotated")
    client = AuthenticatedClient(base_url=base_url, token=refreshed.access_token, raise_on_unexpected_status=True)

    task = expect(
        "createTask",
        create_task.sync_detailed(
            client=client, body=NewTask(title="Generate the SDKs", description="From the committed document")
        ),
        HTTPStatus.CREATED,
        TaskBody,
    )
    bare = expect(
        "createTask without a description",
        create_task.sync_detailed(client=client, body=NewTask(title="No description")),
        HTTPStatus.CREATED,
        TaskBody,
    )
    if bare.description is not UNSET:
        fail("createTask without a description", f"description is {bare.description!r}")

    updated = expect(
        "updateTask",
        update_task.sync_detailed(task.id, client=client, body=TaskUpdate(done=True, description=None)),
        HTTPStatus.OK,
        TaskBody,
    )
    if not updated.done or updated.description is not UNSET:
        fail("updateTask", "the update was not applied")

    page = expect("listTasks", list_tasks.sync_detailed(client=client, limit=10), HTTPStatus.OK, TaskPageBody)
    listed = {item.id for item in page.items}
    if not {task.id, bare.id} <= listed:
        fail("listTasks", "the created tasks are not listed")
    if page.next_cursor is not UNSET:
        fail("listTasks", "next_cursor on the only page")

    out = expect(
        "logOut",
        log_out.sync_detailed(client=client, scope=LogoutScopeParam.THIS),
        HTTPStatus.OK,
        LogoutBody,
    )
    if len(out.revoked_sessions) != 1:
        fail("logOut", "not exactly one session revoked")

    after = expect("getMe after logOut", get_me.sync_detailed(client=client), HTTPStatus.UNAUTHORIZED, Problem)
    if after.code != "invalid_token":
        fail("getMe after logOut", f"code {after.code}")

    print(
        "Python SDK smoke test passed: signUp, logIn, getMe, refreshTokens, createTask, updateTask, "
        "listTasks, logOut, 401"
    )


if __name__ == "__main__":
    main()
    sys.exit(0)
