"""Render the dashboard of a run to an SVG, with the app itself (for the README picture).

    python -m cockpit.screenshot RUN_DIR OUT.svg [--size 120x36] [--title TITLE]

The run is best a finished one; for a live run the picture shows the state after catching up.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from cockpit.app import CockpitApp, make_app
from engine.rundir import RunPaths


async def wait_until_loaded(app: CockpitApp, timeout: float = 30.0) -> bool:
    """Wait until the dashboard has caught up with the run: the event stream ended (a finished
    run), or its history is read and only live events still come. False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dashboard = app.dashboard
        if dashboard is not None and (dashboard.intake_done or dashboard.caught_up):
            await asyncio.sleep(0.05)
            return True
        await asyncio.sleep(0.05)
    return False


async def render_svg(
    run_dir: Path, size: tuple[int, int] = (120, 36), title: str | None = None, timeout: float = 30.0
) -> str:
    app = make_app(run_dir)
    async with app.run_test(size=size) as pilot:
        await wait_until_loaded(app, timeout)
        await pilot.pause()
        svg = app.export_screenshot(title=title or f"cockpit — {Path(run_dir).name}")
        app.exit()
    return svg


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 120x36, not {text!r}") from None
    if w < 40 or h < 12:
        raise argparse.ArgumentTypeError("size must be at least 40x12")
    return w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cockpit.screenshot", description="Render the dashboard of a run to an SVG file."
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path, help="SVG file to write")
    parser.add_argument("--size", type=_size, default=(120, 36), help="terminal size, WxH (120x36)")
    parser.add_argument("--title", default=None, help="window title in the picture")
    args = parser.parse_args(argv)
    events = RunPaths(args.run_dir).events
    if not events.is_file():
        print(f"cockpit.screenshot: {args.run_dir}: not a run directory (no {events.name})", file=sys.stderr)
        return 2
    svg = asyncio.run(render_svg(args.run_dir, args.size, args.title))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(svg, encoding="utf-8")
    print(f"wrote {args.out} ({args.size[0]}x{args.size[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
