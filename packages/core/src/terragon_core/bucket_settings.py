"""How a process reaches a bucket (the object store's payloads, the archive): one declaration of
the S3 variables, shared by the service's and the dashboard's settings (neither imports the other).
Credentials are the `AWS_*` variables, which the S3 clients read themselves."""

from __future__ import annotations

from dataclasses import dataclass

from terragon_core.env import setting


@dataclass(frozen=True, slots=True)
class BucketSettings:
    S3_ENDPOINT: str | None = setting(
        "OBJECT_STORE_S3_ENDPOINT",
        "url",
        None,
        "The S3 API's URL for R2/MinIO/…, for payloads and the archive (`http://` allowed only "
        "when it says so); credentials come from `AWS_*`.",
        shown_default="unset → AWS",
    )
    TIMEOUT: float = setting(
        "OBJECT_STORE_TIMEOUT",
        "float",
        30.0,
        "Seconds per object-store request (connect: at most 5), two retries: a wrong endpoint "
        "fails within about three times this, never hangs.",
    )
    REGION: str | None = setting(
        "AWS_REGION",
        "str",
        None,
        "The bucket's region (`auto` for R2); `AWS_DEFAULT_REGION` when unset.",
        shown_default="`AWS_DEFAULT_REGION`, else `us-east-1`",
        fallbacks=("AWS_DEFAULT_REGION",),
    )
