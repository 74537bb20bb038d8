"""nix/shell.nix and nix/cuda-shell.nix: they parse, and evaluate against a stand-in nixpkgs (no network)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

NIX = Path(__file__).resolve().parents[1] / "nix"

# Just what the shells use of nixpkgs: enough to evaluate them without a nixpkgs checkout.
STAND_IN = """
let
  pkgs = {
    python311 = { withPackages = select: "/nix/store/python"; };
    mkShell = attributes: attributes;
    pandoc = "/nix/store/pandoc";
    git = "/nix/store/git";
    lib = { optionalString = condition: text: if condition then text else ""; };
  };
in {
  cpu = import NIX/shell.nix { inherit pkgs; };
  cuda = import NIX/cuda-shell.nix { inherit pkgs; };
}
"""


def nix_instantiate() -> str:
    found = shutil.which("nix-instantiate")
    if found is None:
        message = "nix-instantiate is missing: apt-get install nix-bin (scripts/install.sh does)"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@pytest.mark.parametrize("name", ["shell.nix", "cuda-shell.nix"])
def test_nix_shell_parses(name):
    done = subprocess.run([nix_instantiate(), "--parse", str(NIX / name)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_nix_shells_evaluate(tmp_path):
    expression = tmp_path / "shells.nix"
    expression.write_text(STAND_IN.replace("NIX/", f"{NIX}/"), encoding="utf-8")
    done = subprocess.run([nix_instantiate(), "--eval", "--strict", "--json", str(expression)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shells = json.loads(done.stdout)
    assert shells["cpu"]["name"] == "wikiluigi" and shells["cuda"]["name"] == "wikiluigi-cuda"
    for shell in shells.values():
        assert "/nix/store/pandoc" in shell["packages"]
        assert "--no-deps gpt-2-simple==0.8.1" in shell["shellHook"]
        assert f"--editable {NIX.parent}" in shell["shellHook"]
    assert "/run/opengl-driver/lib" in shells["cuda"]["shellHook"]
    assert "opengl-driver" not in shells["cpu"]["shellHook"]
