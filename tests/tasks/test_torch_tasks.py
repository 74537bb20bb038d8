"""Train --backend torch and Generate on its run, through luigi.build with a local scheduler (on the CPU)."""
import json

import pytest

from tests.tasks.test_model import TRAIN, build, config, startrek  # noqa: F401  (startrek: a fixture)
from wikiluigi import paths
from wikiluigi.tasks.model import Generate
from wikiluigi.training import runfolder


@pytest.mark.slow
def test_generate_trains_a_torch_run_and_samples_it(startrek):  # noqa: F811
    with config({"Train": {**TRAIN, "steps": "12", "validate_every": "6", "backend": "torch"}}):
        assert build(Generate(run_name="trek", nsamples=4, length=40, seed=1)) == (True, [])
    run = paths.checkpoint_dir("trek")
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert info["backend"] == "torch" and info["latest"]["step"] == 12
    assert info["settings"]["device"] == "auto" and info["settings"]["compile"] == "auto"
    assert (run / "latest" / "model.pt").is_file() and (run / "latest" / "optimizer.pt").is_file()
    assert runfolder.checkpoint_info(run / "best")["backend"] == "torch"
    index = json.loads((paths.generated_dir("trek") / "index.json").read_text(encoding="utf-8"))
    assert index["step"] == info["best"]["step"] and len(index["samples"]) == 4
    assert all((paths.generated_dir("trek") / name).read_text(encoding="utf-8").strip() for name in index["samples"])
