"""``buildmatrix ci``: the job matrices of the release workflow, written to ``$GITHUB_OUTPUT``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from buildmatrix import ci
from buildmatrix._paths import output_file
from buildmatrix.cli import ui
from buildmatrix.cli.options import add_format, add_release
from buildmatrix.expand import expand
from buildmatrix.loader import load_matrix, select_releases
from buildmatrix.model import Release

HELP = (
    "plan the CI pipeline: wheel jobs per package and arch, image jobs per framework and arch, "
    "manifest merges, sharded at 256 jobs; written to $GITHUB_OUTPUT"
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_release(parser, purpose="plan this release", default="the release --ref builds, else every release")
    parser.add_argument(
        "--ref",
        metavar="REF",
        help=(
            "a Git ref such as $GITHUB_REF: refs/tags/v0.7.1 builds v0.7.1, a branch builds the "
            "release of its name or else the development release"
        ),
    )
    parser.add_argument(
        "--event",
        default=os.environ.get("GITHUB_EVENT_NAME", ""),
        metavar="NAME",
        help="the run's event (push, workflow_dispatch; default: $GITHUB_EVENT_NAME): with --ref, "
        "decides publish_images and publish_pypi",
    )
    parser.add_argument(
        "--ref-protected",
        choices=["true", "false"],
        default=os.environ.get("GITHUB_REF_PROTECTED", "false") or "false",
        help="whether --ref is protected (default: $GITHUB_REF_PROTECTED)",
    )
    parser.add_argument(
        "--github-output",
        type=Path,
        metavar="PATH",
        default=_env_path("GITHUB_OUTPUT"),
        help="append the outputs to this file (default: $GITHUB_OUTPUT when set)",
    )
    add_format(parser, help="table: a summary; json: the outputs as one JSON object on stdout")


def _output_path(path: Path | None, flag: str) -> Path | None:
    """An output file checked up front (its folder exists and is writable), or None."""
    if path is None:
        return None
    if flag == "--github-output" and "GITHUB_OUTPUT" in os.environ and path == _env_path("GITHUB_OUTPUT"):
        flag = "$GITHUB_OUTPUT"
    return output_file(path, flag)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def run(args: argparse.Namespace) -> int:
    github_output = _output_path(args.github_output, "--github-output")
    summary_path = _output_path(_env_path("GITHUB_STEP_SUMMARY"), "$GITHUB_STEP_SUMMARY")
    matrix = load_matrix(args.matrix)
    releases: tuple[Release, ...]
    if args.release:
        releases = select_releases(matrix, args.release)
    elif args.ref:
        releases = (ci.release_for_ref(matrix, args.ref),)
    else:
        releases = matrix.releases
    # On a tag, a plan of any other release than the tag's is refused here (exit 2).
    publish = ci.publishing(
        matrix, releases, args.ref, event=args.event, protected=args.ref_protected == "true"
    )
    plan = expand(matrix, releases=releases)
    outputs = ci.pipeline_outputs(plan, releases, runners=matrix.runners, publish=publish)
    ui.stderr.print(
        f"publish images: {outputs['publish_images']}, PyPI: {outputs['publish_pypi']} ({publish.reason})",
        markup=False,
    )

    if github_output is not None:
        ci.write_github_output(github_output, outputs)
        ui.stderr.print(f"wrote {len(outputs)} outputs to {github_output}", markup=False)
    if summary_path is not None:
        with summary_path.open("a", encoding="utf-8") as handle:
            handle.write(f"Publishing: {publish.reason}\n\n")
            handle.write(_markdown_summary(outputs))

    if args.format == "json":
        ui.emit_json({name: _decoded(value) for name, value in outputs.items()})
    else:
        rows = []
        for name in ("wheels", "images", "manifests"):
            shards = json.loads(outputs[name])
            jobs = sum(len(s["include"]) for s in shards)
            rows.append([name, str(jobs), str(len(shards))])
        title = f"CI plan for {', '.join(r.name for r in releases)} ({len(plan)} targets)"
        ui.stdout.print(ui.table(title, ["jobs", "count", f"shards (<= {ci.MAX_JOBS} jobs each)"], rows))
    return 0


def _decoded(value: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _markdown_summary(outputs: dict[str, str]) -> str:
    lines = ["### buildmatrix CI plan", "", "| job | runner | id |", "| :-- | :-- | :-- |"]
    for name in ("wheels", "images", "manifests"):
        for shard in json.loads(outputs[name]):
            lines.extend(f"| {name} | {_runner(job)} | `{job['id']}` |" for job in shard["include"])
    return "\n".join(lines) + "\n\n"


def _runner(job: dict[str, object]) -> str:
    runner = job.get("runner", "ubuntu-24.04")
    return ", ".join(runner) if isinstance(runner, list) else str(runner)
