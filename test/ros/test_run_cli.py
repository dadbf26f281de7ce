"""`abspose run`'s own helpers (the command itself is exercised in test_runner.py and test_hostile_files.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from abspose.cli import main
from abspose.ros.run_cli import cube

from conftest import data_path


def test_the_plot_cube_holds_every_point_with_equal_sides():
    rng = np.random.default_rng(0)
    points = rng.normal([2.0, 0.5, -6.0], [0.3, 1.5, 0.2], size=(50, 3))  # far off the origin, one axis long
    points[3] = np.nan  # a joint nobody saw
    centre, half = cube(points, margin=0.2)
    seen = points[np.isfinite(points).all(-1)]
    assert np.all(seen >= centre - half) and np.all(seen <= centre + half)
    span = seen.max(0) - seen.min(0)
    assert half == pytest.approx(span.max() / 2 + 0.2)  # the longest axis with the margin: no larger
    np.testing.assert_allclose(centre, (seen.max(0) + seen.min(0)) / 2)
    assert np.all(np.isfinite(centre))


def test_a_line_per_frame_says_who_is_where_and_why_nothing_was_published(tmp_path, capsys):
    """``--verbose``: each frame's people with their distance, what placed them and their track state; a run
    whose tracks never reach ``tracking.confirm_hits`` says why its bag holds no skeleton markers or TF."""
    bag = data_path("rgbd", "tue_hero", "tue_hero_rgbd_ros2_mcap")
    args = ["run", str(bag), "-o", str(tmp_path / "out.mcap"), "-p", "depth_slop=0.5", "--verbose", "-q"]
    assert main([*args, "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("t=")]
    assert len(lines) == 5  # five frames ~40 s apart: nobody is seen three times
    near = re.compile(r"p\d+ (1\.[6-9]|2\.[01]) m \(depth, tentative\)")  # the near person, placed by depth
    assert all(near.search(line) for line in lines), lines
    assert re.match(r"t=1556880098\.\d\d s: p1 ", lines[0]) and "(monocular, tentative)" in lines[0]
    assert "nobody was confirmed" in captured.out and "tracking.confirm_hits = 3 sightings" in captured.out
