"""Render the app to an SVG, with the app itself (for the README pictures): the dashboard of a run,
or a step of the new-run wizard on the shipped demo draft, as this machine shows it.

    python -m cockpit.screenshot RUN_DIR OUT.svg [--size 120x36] [--title TITLE]
    python -m cockpit.screenshot --wizard preset OUT.svg [--size 120x36]

The run is best a finished one; for a live run the picture shows the state after catching up. A
wizard step is taken once its background work (checks, machine memory) has finished.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from cockpit.app import CockpitApp, make_app
from cockpit.wizard import STEP_KEYS, WizardState
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


async def render_wizard_svg(step: str, size: tuple[int, int] = (120, 36), title: str | None = None) -> str:
    app = CockpitApp(wizard=WizardState().go(step))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        svg = app.export_screenshot(title=title or f"cockpit — new run: {app.wizard.current.title}")
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
    parser.add_argument("run_dir", type=Path, nargs="?", help="the run whose dashboard to render")
    parser.add_argument("out", type=Path, help="SVG file to write")
    parser.add_argument("--wizard", choices=STEP_KEYS, help="render this step of the new-run wizard instead")
    parser.add_argument("--size", type=_size, default=(120, 36), help="terminal size, WxH (120x36)")
    parser.add_argument("--title", default=None, help="window title in the picture")
    args = parser.parse_args(argv)
    if args.wizard:
        if args.run_dir is not None:
            parser.error("give a run directory or --wizard STEP, not both")
        svg = asyncio.run(render_wizard_svg(args.wizard, args.size, args.title))
        return _write(args.out, svg, args.size)
    if args.run_dir is None:
        parser.error("a run directory (or --wizard STEP) is required")
    events = RunPaths(args.run_dir).events
    if not events.is_file():
        print(f"cockpit.screenshot: {args.run_dir}: not a run directory (no {events.name})", file=sys.stderr)
        return 2
    svg = asyncio.run(render_svg(args.run_dir, args.size, args.title))
    return _write(args.out, svg, args.size)


def _write(out: Path, svg: str, size: tuple[int, int]) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg, encoding="utf-8")
    print(f"wrote {out} ({size[0]}x{size[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
