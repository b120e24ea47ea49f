"""Upload target: reachable and writable, when the config names one."""

from __future__ import annotations

from cockpit.checks.base import CheckContext, CheckResult, result


def check_upload(ctx: CheckContext) -> list[CheckResult]:
    if ctx.cfg is None:
        return []
    target = getattr(ctx.cfg, "upload", None)
    if not target:
        return [
            result(
                "upload.target",
                "Upload target",
                "skip",
                "no upload target configured: checkpoints stay in the run directory",
            )
        ]
    return [result("upload.target", "Upload target", "skip", f"upload target {target!r}: not checked yet")]
