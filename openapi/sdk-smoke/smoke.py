"""Smoke test of the Python SDK generated from the committed document
(openapi-python-client) against a running server: sign up, confirm the email
address through the emailed link, log in, me, refresh, create and list tasks,
log out, and the 401 afterwards; then reset the password through the emailed
link: the old access token gets 401, the new password logs in, and the link
works only once; then turn TOTP on (codes computed here, RFC 6238) and log in
with the second step: a TOTP code (amr pwd, otp, mfa) and a recovery code,
which works once.

Usage: PYTHONPATH=.generated/python PORTCULLIS_URL=http://127.0.0.1:8080 MAIL_DIR=/path/to/data/mail python smoke.py
The server must run without SMTP (it writes its emails as .eml files into
MAIL_DIR) and with its PUBLIC_URL equal to PORTCULLIS_URL.
"""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import hashlib
import hmac
import json
import os
import random
import re
import sys
import time
from http import HTTPStatus
from pathlib import Path
from typing import NoReturn, TypeVar

from portcullis_client import AuthenticatedClient, Client
from portcullis_client.api.account import forgot_password, reset_password, verify_email
from portcullis_client.api.auth import log_in, log_out, refresh_tokens, sign_up
from portcullis_client.api.mfa import confirm_totp, enrol_totp, get_mfa, verify_mfa
from portcullis_client.api.tasks import create_task, list_tasks, update_task
from portcullis_client.api.users import get_me
from portcullis_client.models import (
    AcceptedBody,
    ConfirmTotpRequest,
    Credentials,
    EnrolTotpRequest,
    FactorState,
    ForgotPasswordRequest,
    LogoutBody,
    LogoutScopeParam,
    MfaStatusBody,
    NewTask,
    Problem,
    RecoveryCodesBody,
    RefreshRequest,
    ResetPasswordRequest,
    SecondStepRequest,
    TaskBody,
    TaskPageBody,
    TaskUpdate,
    TokenPairBody,
    TotpEnrolmentBody,
    UserBody,
    VerifiedBody,
    VerifyEmailRequest,
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


def expect_no_content(step: str, response: Response[U]) -> None:
    """Checks that `response` is a 204 without a body."""
    if response.status_code != HTTPStatus.NO_CONTENT:
        fail(step, f"status {response.status_code}, expected 204: {response.content!r}")
    if response.content:
        fail(step, f"a 204 with a body: {response.content!r}")


TOTP_STEP_S = 30


def totp_code(secret: str, counter: int) -> str:
    """The 6-digit TOTP code (RFC 6238: HMAC-SHA1) of the base32 `secret` for the time step `counter`."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, counter.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[offset : offset + 4], 'big') & 0x7FFFFFFF) % 1_000_000:06d}"


def current_totp_step() -> int:
    """The TOTP time step of now."""
    return int(time.time()) // TOTP_STEP_S


# RFC 6238 appendix B, SHA-1, T = 59 s (step 1): 94287082, of which 6 digits.
if totp_code("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 1) != "287082":
    raise SystemExit("Python SDK smoke test failed: the TOTP implementation fails the RFC 6238 test vector")


def jwt_amr(step: str, token: str) -> object:
    """The `amr` claim of the JWT `token` (its payload base64url-decoded, unverified), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        fail(step, "the access token is not a JWT")
    payload = parts[1]
    claims: object = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if not isinstance(claims, dict):
        fail(step, "the JWT payload is not an object")
    amr: object = claims.get("amr")
    return amr


LOG_IN_RETRY_S = 60.0


def log_in_request(client: Client, body: Credentials) -> Response[Problem | TokenPairBody]:
    """Logs in (POST /api/v1/auth/login). A 429 is waited out (its Retry-After)
    and retried for up to LOG_IN_RETRY_S: the log-in budget per client address
    (a burst of 10 by default) is shared by the fuzzing set-up and both smoke
    programs, which run back to back from one address. A 429 is answered
    before the password is checked, so it counts toward no lockout."""
    deadline = time.monotonic() + LOG_IN_RETRY_S
    while True:
        response = log_in.sync_detailed(client=client, body=body)
        if response.status_code != HTTPStatus.TOO_MANY_REQUESTS or time.monotonic() >= deadline:
            return response
        try:
            wait_s = max(1, int(response.headers.get("retry-after", "1")))
        except ValueError:
            wait_s = 1
        print(f"logIn: the log-in budget is spent (429); retrying in {wait_s} s", flush=True)
        time.sleep(wait_s)


MAIL_TIMEOUT_S = 20.0


def mail_token(step: str, mail_dir: Path, base_url: str, address: str, subject: str, path: str) -> str:
    """The token of the `{base_url}{path}#token=` link in the newest email to
    `address` with `subject` in `mail_dir`, waiting up to MAIL_TIMEOUT_S for it."""
    marker = f"{base_url}{path}#token="
    link = re.compile(rf"https?://\S+?{re.escape(path)}#token=([A-Za-z0-9_-]{{43}})(?![A-Za-z0-9_-])")
    deadline = time.monotonic() + MAIL_TIMEOUT_S
    seen: list[str] = []
    problems: list[str] = []
    while True:
        seen, problems = [], []
        found: list[tuple[float, str]] = []
        try:
            files = sorted(mail_dir.glob("*.eml"))
        except OSError:
            files = []
        for file in files:
            try:
                raw = file.read_bytes()
                modified = file.stat().st_mtime
            except OSError:
                continue
            message = email.message_from_bytes(raw, policy=email.policy.default)
            boundary = message.get_boundary()
            if message.is_multipart() and (boundary is None or f"--{boundary}--".encode() not in raw):
                continue  # Still being written: the next round reads it whole.
            to = str(message.get("To", ""))
            got_subject = str(message.get("Subject", ""))
            seen.append(f"{file.name} to {to!r}: {got_subject!r}")
            recipients = {addr.lower() for _, addr in email.utils.getaddresses([to])}
            if address.lower() not in recipients or got_subject != subject:
                continue
            part = message.get_body(preferencelist=("plain",))
            text = part.get_content() if part is not None else None
            if not isinstance(text, str):
                problems.append(f"{file.name}: no text/plain part")
                continue
            match = link.search(text)
            if match is None:
                problems.append(f"{file.name}: no {path}#token=<43 base64url characters> link in:\n{text}")
            elif not match.group(0).startswith(marker):
                problems.append(f"{file.name}: the link {match.group(0)} does not start with {marker}")
            else:
                found.append((modified, match.group(1)))
        if found:
            return max(found)[1]
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if problems:
        fail(step, "\n".join(problems))
    listing = "\n  ".join(seen[-20:]) or "(none)"
    fail(step, f"no {subject!r} email to {address} in {mail_dir} after {MAIL_TIMEOUT_S:.0f} s; saw:\n  {listing}")


def main() -> None:
    base_url = os.environ.get("PORTCULLIS_URL")
    if not base_url:
        fail("start", "PORTCULLIS_URL is not set")
    base_url = base_url.rstrip("/")
    mail_dir_name = os.environ.get("MAIL_DIR")
    if not mail_dir_name:
        fail("start", "MAIL_DIR is not set (the server's $PORTCULLIS_DATA_DIR/mail, where it writes its emails)")
    mail_dir = Path(mail_dir_name)
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
    if pair.user.email_verified:
        fail("signUp", "the new user's email is already verified")

    signed_up = AuthenticatedClient(base_url=base_url, token=pair.access_token, raise_on_unexpected_status=True)
    token = mail_token(
        "verification email", mail_dir, base_url, email, "Confirm your email address", "/account/verify-email"
    )
    verified = expect(
        "verifyEmail",
        verify_email.sync_detailed(client=anonymous, body=VerifyEmailRequest(token=token)),
        HTTPStatus.OK,
        VerifiedBody,
    )
    if verified.user.id != pair.user.id or verified.user.email != email or not verified.user.email_verified:
        fail("verifyEmail", f"unexpected user {verified.user.to_dict()}")
    me = expect("getMe after verifyEmail", get_me.sync_detailed(client=signed_up), HTTPStatus.OK, UserBody)
    if me.email_verified is not True:
        fail("getMe after verifyEmail", "email_verified is not true")

    pair = expect(
        "logIn",
        log_in_request(anonymous, body=Credentials(email=email, password=password)),
        HTTPStatus.OK,
        TokenPairBody,
    )
    problem = expect(
        "logIn with a wrong password",
        log_in_request(anonymous, body=Credentials(email=email, password="not the password at all")),
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

    # Password reset: a fresh session that the reset must sign out.
    pair = expect(
        "logIn before the reset",
        log_in_request(anonymous, body=Credentials(email=email, password=password)),
        HTTPStatus.OK,
        TokenPairBody,
    )
    old_session = AuthenticatedClient(base_url=base_url, token=pair.access_token, raise_on_unexpected_status=True)
    expect("getMe before the reset", get_me.sync_detailed(client=old_session), HTTPStatus.OK, UserBody)

    accepted = expect(
        "forgotPassword",
        forgot_password.sync_detailed(client=anonymous, body=ForgotPasswordRequest(email=email)),
        HTTPStatus.ACCEPTED,
        AcceptedBody,
    )
    if not accepted.message:
        fail("forgotPassword", "an empty message")
    token = mail_token("reset email", mail_dir, base_url, email, "Reset your password", "/account/reset-password")

    new_password = f"a brand new passphrase {random.randrange(16**8):08x} at dusk"
    expect_no_content(
        "resetPassword",
        reset_password.sync_detailed(
            client=anonymous, body=ResetPasswordRequest(token=token, new_password=new_password)
        ),
    )
    revoked = expect(
        "getMe with the access token from before the reset",
        get_me.sync_detailed(client=old_session),
        HTTPStatus.UNAUTHORIZED,
        Problem,
    )
    if revoked.code != "invalid_token":
        fail("getMe with the access token from before the reset", f"code {revoked.code}")
    expect(
        "logIn with the old password",
        log_in_request(anonymous, body=Credentials(email=email, password=password)),
        HTTPStatus.UNAUTHORIZED,
        Problem,
    )
    pair = expect(
        "logIn with the new password",
        log_in_request(anonymous, body=Credentials(email=email, password=new_password)),
        HTTPStatus.OK,
        TokenPairBody,
    )
    if pair.user.email != email:
        fail("logIn with the new password", "not the signed-up user")

    reused = expect(
        "resetPassword with a used token",
        reset_password.sync_detailed(
            client=anonymous, body=ResetPasswordRequest(token=token, new_password=f"{new_password} again")
        ),
        HTTPStatus.BAD_REQUEST,
        Problem,
    )
    if reused.code != "invalid_token":
        fail("resetPassword with a used token", f"code {reused.code}")

    # Second factor: TOTP on, with the session of the new password.
    client = AuthenticatedClient(base_url=base_url, token=pair.access_token, raise_on_unexpected_status=True)
    enrol_response = enrol_totp.sync_detailed(client=client, body=EnrolTotpRequest(current_password=new_password))
    enrolment = expect("enrolTotp", enrol_response, HTTPStatus.CREATED, TotpEnrolmentBody)
    if enrol_response.headers.get("cache-control") != "no-store":
        fail("enrolTotp", "no Cache-Control: no-store")
    secret = enrolment.secret
    if not re.fullmatch(r"[A-Z2-7]+=*", secret):
        fail("enrolTotp", f"the secret {secret!r} is not base32")
    if not enrolment.otpauth_uri.startswith("otpauth://totp/") or f"secret={secret}" not in enrolment.otpauth_uri:
        fail("enrolTotp", f"otpauth_uri {enrolment.otpauth_uri!r} is not an otpauth://totp/ URI with the secret")
    if "<svg" not in enrolment.qr_svg:
        fail("enrolTotp", "qr_svg is not an SVG document")

    # The confirmation spends the time step of now: the second step below sends
    # the code of now + 30 s (one step of drift is accepted, and it is later).
    recovery = expect(
        "confirmTotp",
        confirm_totp.sync_detailed(client=client, body=ConfirmTotpRequest(code=totp_code(secret, current_totp_step()))),
        HTTPStatus.OK,
        RecoveryCodesBody,
    )
    recovery_codes = recovery.recovery_codes
    if len(recovery_codes) != 10 or len(set(recovery_codes)) != 10:
        fail("confirmTotp", f"{len(recovery_codes)} recovery codes ({len(set(recovery_codes))} distinct), expected 10")
    if not all(re.fullmatch(r"[a-z2-7]{4}(?:-[a-z2-7]{4}){3}", code) for code in recovery_codes):
        fail("confirmTotp", f"recovery codes not of the form xxxx-xxxx-xxxx-xxxx: {recovery_codes}")

    status = expect("getMfa", get_mfa.sync_detailed(client=client), HTTPStatus.OK, MfaStatusBody)
    if status.totp != FactorState.ACTIVE:
        fail("getMfa", f"totp is {status.totp}, expected active")
    if status.recovery_codes_left != 10:
        fail("getMfa", f"recovery_codes_left is {status.recovery_codes_left}, expected 10")

    def mfa_challenge(step: str) -> str:
        """Logs in with the right password, expecting the 401 mfa_required challenge; its mfa_token."""
        response = log_in_request(anonymous, body=Credentials(email=email, password=new_password))
        challenge = expect(step, response, HTTPStatus.UNAUTHORIZED, Problem)
        if not response.headers.get("content-type", "").startswith("application/problem+json"):
            fail(step, "the error is not problem+json")
        if challenge.code != "mfa_required":
            fail(step, f"code {challenge.code}, expected mfa_required")
        if challenge.methods != ["totp", "recovery_code"]:
            fail(step, f"methods {challenge.methods!r}")
        if not isinstance(challenge.mfa_token, str) or not challenge.mfa_token:
            fail(step, "no mfa_token")
        return challenge.mfa_token

    mfa_token = mfa_challenge("logIn with TOTP active")
    verify_response = verify_mfa.sync_detailed(
        client=anonymous,
        body=SecondStepRequest(mfa_token=mfa_token, totp_code=totp_code(secret, current_totp_step() + 1)),
    )
    pair = expect("verifyMfa with a TOTP code", verify_response, HTTPStatus.OK, TokenPairBody)
    if pair.user.email != email:
        fail("verifyMfa with a TOTP code", "not the signed-up user")
    if verify_response.headers.get("cache-control") != "no-store":
        fail("verifyMfa with a TOTP code", "no Cache-Control: no-store")
    amr = jwt_amr("verifyMfa with a TOTP code", pair.access_token)
    if amr != ["pwd", "otp", "mfa"]:
        fail("verifyMfa with a TOTP code", f"amr {amr!r}, expected ['pwd', 'otp', 'mfa']")
    mfa_session = AuthenticatedClient(base_url=base_url, token=pair.access_token, raise_on_unexpected_status=True)
    me = expect(
        "getMe with the second-factor session", get_me.sync_detailed(client=mfa_session), HTTPStatus.OK, UserBody
    )
    if me.email != email:
        fail("getMe with the second-factor session", "not the signed-up user")

    recovery_code = recovery_codes[0]
    pair = expect(
        "verifyMfa with a recovery code",
        verify_mfa.sync_detailed(
            client=anonymous,
            body=SecondStepRequest(mfa_token=mfa_challenge("logIn for a recovery code"), recovery_code=recovery_code),
        ),
        HTTPStatus.OK,
        TokenPairBody,
    )
    if pair.user.email != email:
        fail("verifyMfa with a recovery code", "not the signed-up user")

    spent = expect(
        "verifyMfa with a spent recovery code",
        verify_mfa.sync_detailed(
            client=anonymous,
            body=SecondStepRequest(
                mfa_token=mfa_challenge("logIn for a spent recovery code"), recovery_code=recovery_code
            ),
        ),
        HTTPStatus.FORBIDDEN,
        Problem,
    )
    if spent.code != "invalid_second_factor":
        fail("verifyMfa with a spent recovery code", f"code {spent.code}, expected invalid_second_factor")

    print(
        "Python SDK smoke test passed: signUp, verification email, verifyEmail, getMe (email_verified), logIn, "
        "getMe, refreshTokens, createTask, updateTask, listTasks, logOut, 401, forgotPassword, reset email, "
        "resetPassword, old token 401, logIn with the new password, used reset token 400, enrolTotp, confirmTotp "
        "(10 recovery codes), getMfa (active, 10 left), logIn 401 mfa_required, verifyMfa with TOTP "
        "(amr pwd,otp,mfa), verifyMfa with a recovery code, spent recovery code 403"
    )


if __name__ == "__main__":
    main()
    sys.exit(0)
