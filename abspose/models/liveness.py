"""When an imported graph's intermediate tensors die: the names each step is the last reader of.

The graph runtimes keep tensors in a name -> tensor dict while they run; dropping each one after its last
reader, instead of holding every layer's output to the end of the call, bounds a call's activation memory by
what is live at once (the landmark model on 16 crops: 868 -> 111 MiB; docs/speed.md).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def last_reads(reads: Sequence[Collection[str]], keep: Collection[str]) -> list[list[str]]:
    """Per step, the names (of ``reads[i]``: what step i reads) that no later step reads and that are not in
    ``keep`` (the graph's outputs, constants): the step's caller may drop them once the step has run."""
    last: dict[str, int] = {}
    for i, names in enumerate(reads):
        for name in names:
            last[name] = i
    keep = set(keep)
    dead: list[list[str]] = [[] for _ in reads]
    for name, i in last.items():
        if name not in keep:
            dead[i].append(name)
    return dead
