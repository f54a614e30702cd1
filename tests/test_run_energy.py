"""A run's lab time, power and energy in its run file (hostctl.runenergy): on the simulated
bench every epoch carries both twins' dissipation, the energy of an inference, of an update
and per parameter, and the bench's clock, each consistent with the others (the power itself
is instruments.sim.energy's, checked against ngspice in tests/test_energy.py); a real bench's
epochs carry its lab time and NaN for what it cannot measure."""

from __future__ import annotations

import numpy as np

from hostctl.cli import main
from hostctl.experiment import builtin_experiment_text
from hostctl.runenergy import EnergyMeter
from hostctl.runfile import load


def _short(tmp_path, name="iris_gen2", epochs=3):
    text = builtin_experiment_text(name).replace("epochs = 100", f"epochs = {epochs}").replace(
        "epochs = 50", f"epochs = {epochs}")
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_every_epoch_of_a_simulated_run_carries_its_lab_time_power_and_energy(tmp_path):
    out = tmp_path / "run.h5"
    assert main(["train", str(_short(tmp_path)), "--out", str(out), "--quiet"]) == 0
    ep = load(out).epochs
    trained = ep[ep.epoch >= 0]
    assert len(trained) == 3
    for col in ("power_free_w", "power_clamped_w", "energy_inference_j", "energy_update_j", "energy_per_parameter_j"):
        assert (trained[col] > 0).all() and np.isfinite(trained[col]).all(), col
    # Gen-2 on its bench: tens to hundreds of uW a twin (shared/physics.md: about 100 uW)
    assert ((trained.power_free_w > 1e-5) & (trained.power_free_w < 5e-3)).all()
    assert (np.diff(ep.lab_time_s) > 0).all()
    # an inference's energy is both twins' power over its hold; per parameter, per edge (32)
    hold = trained.energy_inference_j / (trained.power_free_w + trained.power_clamped_w)
    assert np.allclose(hold, hold.iloc[0], rtol=1e-12) and 1e-6 < hold.iloc[0] < 1.0
    assert np.allclose(trained.energy_per_parameter_j * 32, trained.energy_inference_j, rtol=1e-12)


class _FakeRig:
    bench = None


def test_a_real_bench_has_its_lab_time_and_no_energy():
    now = [10.0]
    meter = EnergyMeter(_FakeRig(), 1e-3, 1e-3, 2.2e-6, lambda: now[0])
    meter.after_inference()
    meter.after_update()
    now[0] = 12.5
    fig = meter.epoch_figures(32)
    assert fig["lab_time_s"] == 2.5
    assert all(np.isnan(fig[k]) for k in fig if k != "lab_time_s")
    state = meter.state()
    now[0] = 100.0
    again = EnergyMeter(_FakeRig(), 1e-3, 1e-3, 2.2e-6, lambda: now[0])
    again.load_state(state)
    assert again.epoch_figures(32)["lab_time_s"] == 2.5  # resumed: the run's time, not the process's


def test_the_report_gives_the_lab_time_power_and_energy(tmp_path):
    from hostctl.report import energy_line, summary

    out = tmp_path / "run.h5"
    assert main(["train", str(_short(tmp_path, epochs=2)), "--out", str(out), "--quiet"]) == 0
    run = load(out)
    line = energy_line(run)
    ep = run.epochs[run.epochs.epoch >= 0]
    assert line in summary(run).splitlines()
    assert line.startswith("energy: power ") and f"{ep.energy_inference_j.mean():.3g} J an inference" in line
    lab = ep.lab_time_s.iloc[-1]
    assert f"of lab time ({1e3 * lab / ep.step.iloc[-1]:.3g} ms a step)" in summary(run)
    assert f"({ep.energy_per_parameter_j.mean():.3g} J a parameter)" in line
    run.epochs.loc[:, "energy_inference_j"] = np.nan  # as a real bench's run
    assert energy_line(run) == "energy: not measured (a real bench has no power meter)"


def test_the_report_draws_power_and_energy_beside_the_fields_figures(tmp_path):
    from hostctl.report import FIELD_ENERGY_J, energy_figure, write_report

    out = tmp_path / "run.h5"
    assert main(["train", str(_short(tmp_path, epochs=2)), "--out", str(out), "--quiet"]) == 0
    written = write_report(out)
    assert out.with_name("run_report") / "energy.png" in written
    assert [v for _, v in FIELD_ENERGY_J] == [1e-11, 1e-12, 1e-14]  # the figures, J a parameter
    run = load(out)
    run.epochs.loc[:, "energy_inference_j"] = np.nan  # as a real bench's run: nothing to draw
    assert energy_figure(run, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
