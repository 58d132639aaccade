"""Sweeps: a Dask cluster gives the same answers as a serial run of the same problems."""

import json

import pytest
from typer.testing import CliRunner

from designer.cli import app
from designer.design import DesignProblem
from designer.spec import NetworkSpec
from designer.schemas import SweepFailedRow, SweepFile
from designer.sweep import Sweep, SweepError, run_sweep, sweep_payload
from tests.test_design import TINY
from tests.test_mapping import random_dag

DESIGN_BASE = dict(family="bottleneck", kernels=[3], max_params=40e3, effectiveness=0.5, **TINY)


def design_sweep() -> Sweep:
    return Sweep("design", base=DESIGN_BASE, grid={"max_macs": [1.5e6, 2.5e6]}, time_limit=30)


def mapping_sweep(tmp_path) -> Sweep:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(random_dag(5, n=8, unit=False).to_dict()))
    return Sweep("mapping", base={"graph": str(path)}, grid={"scratchpad": ["M_R", "M_H"]}, time_limit=20)


def comparable(result: dict) -> dict:
    keep = ("point", "status", "objective", "bound", "spec", "offchip_bytes", "scratchpad_bytes", "baselines")
    return {k: result[k] for k in keep if k in result}


def test_dask_sweep_equals_serial(tmp_path):
    """A local cluster (the default) and a running cluster by address give the serial answers."""
    from dask.distributed import LocalCluster
    results = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for sweep, scheduler in ((design_sweep(), None), (mapping_sweep(tmp_path), cluster.scheduler_address)):
            serial = run_sweep(sweep, scheduler="serial")
            parallel = run_sweep(sweep, scheduler=scheduler, workers=2)
            assert [comparable(r) for r in parallel] == [comparable(r) for r in serial]
            assert [r["point"] for r in serial] == sweep.points()
            assert all(r["status"] == "optimal" for r in serial)
            SweepFile.model_validate(sweep_payload(sweep, serial))  # the documented rows, unknown keys refused
            results[sweep.kind] = serial
    # the design answers hold on recount, and a bigger budget never scores lower (both optimal)
    designs = results["design"]
    for r in designs:
        problem = DesignProblem.from_dict({**DESIGN_BASE, **r["point"]})
        assert problem.violations(NetworkSpec.from_dict(r["spec"])) == []
    assert designs[0]["score"] <= designs[1]["score"] + 1e-9
    for r in results["mapping"]:  # `valid`: the worker replayed its mapping in the simulator
        assert r["valid"] and r["offchip_bytes"] <= min(r["baselines"].values())


@pytest.mark.parametrize("data, message", [
    ({"kind": "schedule", "base": {}}, "kind"),
    ({"kind": "design", "base": {"family": "bottleneck"}, "grid": {"max_flops": [1]}}, "max_flops"),
    ({"kind": "design", "base": {}, "grid": {"max_macs": []}}, "non-empty"),
    ({"kind": "mapping", "base": {"strategy": "cpsat"}}, "base.graph"),
    ({"kind": "mapping", "base": {"mode": "joint"}}, "mode was replaced by strategy divide or order given"),
    ({"kind": "design"}, "missing field"),
    ({"kind": "design", "base": {}, "time_limit": 0}, "time_limit"),
])
def test_sweep_validation(data, message):
    with pytest.raises(SweepError, match=message):
        Sweep.from_dict(data)


def test_bad_grid_point_names_the_point():
    with pytest.raises(SweepError, match="grid point {'max_macs': -1.0}: max_macs"):
        Sweep("design", base=DESIGN_BASE, grid={"max_macs": [-1.0]})  # refused before any task is made


def test_cli_sweep(tmp_path):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(design_sweep().to_dict()))
    out, plot = tmp_path / "results.json", tmp_path / "front.png"
    result = CliRunner().invoke(app, ["sweep", str(path), "--scheduler", "serial", "--grid", "max_macs=1e3,2.5e6",
                                      "--out", str(out), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    written = SweepFile.model_validate(json.loads(out.read_text()))
    assert written.kind == "design" and [r.point["max_macs"] for r in written.rows] == [1e3, 2.5e6]
    assert isinstance(written.rows[0], SweepFailedRow) and written.rows[0].status == "infeasible"
    assert written.rows[1].score is not None
    assert plot.stat().st_size > 0
    bad = CliRunner().invoke(app, ["sweep", str(tmp_path / "missing.json")])
    assert bad.exit_code == 2 and "no such file" in " ".join(bad.output.split())
