"""The sources of a merge pinned by digest, before any manifest list is made.

A merge joins the per-arch images that native runners pushed (``<tag>-<arch>``)
into one manifest list. A tag can move between the runners' push (and the
verify that checked it) and the merge, so each source is added by digest: the
one given for its platform (``--digest linux/arm64=sha256:...``, what the
per-arch job printed and verify checked), else the digest its tag names now,
read from the registry. Either way the registry must hold it and it must be an
image of that platform only, or the merge stops naming the source.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace

from buildmatrix.errors import UsageError
from buildmatrix.images.plan import MergeStep
from buildmatrix.layers.digest import parse_digest

__all__ = ["parse_digest_flags", "pin_merge_sources", "with_given_digests"]


def parse_digest_flags(values: list[str], platforms: tuple[str, ...] | None = None) -> dict[str, str]:
    """``--digest OS/ARCH=sha256:...`` flags as ``{platform: digest}`` (exit 2 on a bad one)."""
    digests: dict[str, str] = {}
    for value in values:
        platform, sep, digest = value.partition("=")
        if not sep or platform.count("/") not in (1, 2):
            msg = f"--digest {value!r}: give OS/ARCH=DIGEST, e.g. linux/arm64=sha256:..."
            raise UsageError(msg)
        try:
            parse_digest(digest)
        except ValueError as error:
            msg = f"--digest {value!r}: {error}"
            raise UsageError(msg) from None
        if platform in digests:
            msg = f"--digest: {platform} is given twice"
            raise UsageError(msg)
        if platforms is not None and platform not in platforms:
            msg = f"--digest {platform}: not a platform of the merge ({', '.join(platforms)})"
            raise UsageError(msg)
        digests[platform] = digest
    return digests


def with_given_digests(step: MergeStep, digests: Mapping[str, str]) -> MergeStep:
    """The sources as a dry run shows them: ``REPO@DIGEST`` where a digest is given."""
    sources = tuple(
        f"{source.rsplit(':', 1)[0]}@{digests[platform]}" if platform in digests else source
        for source, platform in zip(step.sources, step.platforms, strict=True)
    )
    return replace(step, sources=sources)


def _os_arch(platform: Mapping[str, object] | str) -> str:
    if isinstance(platform, str):
        return "/".join(platform.split("/")[:2])
    return f"{platform.get('os')}/{platform.get('architecture')}"


def pin_merge_sources(step: MergeStep, digests: Mapping[str, str], *, tls_verify: bool = True) -> MergeStep:
    """``step`` with every source as ``REPO@DIGEST``, each checked to be its platform's image."""
    from buildmatrix.layers.registry import RegistryClient, RegistryStore, find_credentials, parse_reference

    pinned = []
    for source, platform in zip(step.sources, step.platforms, strict=True):
        reference = parse_reference(f"docker://{source}")
        client = RegistryClient(
            reference.host,
            tls_verify=tls_verify,
            credentials=find_credentials(reference.host, reference.repository),
        )
        store = RegistryStore(client, reference.repository)
        given = digests.get(platform)
        at = replace(reference, tag=None, digest=given) if given else reference
        descriptor = store.top(at)  # a given digest is checked against the bytes served
        document = json.loads(store.read_manifest(descriptor["digest"], None))
        if "manifests" in document:
            found = {
                _os_arch(entry.get("platform") or {})
                for entry in document["manifests"]
                if (entry.get("platform") or {}).get("os") != "unknown"
            }
        else:
            config = json.loads(
                store.read_blob(document["config"]["digest"], document["config"].get("size"), "config")
            )
            found = {_os_arch(config)}
        if found != {_os_arch(platform)}:
            msg = (
                f"merge {step.tag}: {source}@{descriptor['digest']} holds {', '.join(sorted(found))}, "
                f"not only {platform}"
            )
            raise UsageError(msg)
        pinned.append(f"{reference.host}/{reference.repository}@{descriptor['digest']}")
    return replace(step, sources=tuple(pinned))
