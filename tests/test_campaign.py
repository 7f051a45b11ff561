"""The campaign driver: its argument checks and its plan (dry run: no evaluation is started)."""

import pytest

from scripts import campaign


def test_unknown_argument_is_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exc:
        campaign.main(["sutes=[libero_object]"])
    assert "unknown argument" in str(exc.value.code)
    assert "wave" not in capsys.readouterr().out


def test_help_prints_usage_and_runs_nothing(capsys):
    campaign.main(["--help"])
    out = capsys.readouterr().out
    assert "python -m scripts.campaign" in out and "workers=" in out
    assert "wave 1/" not in out


def test_dry_run_plans_specprune_before_matched_methods(capsys):
    campaign.main(["dry_run=true", "stages=[main]", "suites=[libero_object]"])
    out = capsys.readouterr().out
    lines = [x.strip() for x in out.splitlines() if x.strip().startswith("python -m bench.run")]
    assert len(lines) == 7
    first_wave = out.split("wave 2/")[0]
    assert "method=specprune" in first_wave and "method=fastv" not in first_wave
